"""NeuronLayer: the base of the element-wise layers, and what they share.

Caffe: include/caffe/layers/neuron_layer.hpp, src/caffe/layers/neuron_layer.cpp.
One bottom, one top of the bottom's shape; running in place (top 0 is bottom 0, the
same Blob object) is allowed unless a layer says otherwise.
"""

import torch

from ..checks import check, check_ge, check_le, check_lt
from ..layer import LAYERS, Layer


class NeuronLayer(Layer):
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def reshape(self, bottom, top):
        top[0].reshape_like(bottom[0])

    def dtype_value(self, value) -> float:
        """A value stored in a Dtype member (Exp's inner_scale_, Power's diff_scale_): rounded
        once to the blob's type."""
        return float(torch.tensor(value, dtype=self.dtype))


def check_type_known(layer):
    """LayerRegistry::CreateLayer under Caffe 1.0 for a type that only master registers.

    Called from the constructor, as Caffe fails while creating the layer, before any
    blob-count check or setup."""
    if layer.semantics.has_clip_and_swish:
        return
    known = ", ".join(sorted(t for t, cls in LAYERS.items() if not cls.master_only))
    check(
        False,
        "registry.count(type) == 1",
        f"Unknown layer type: {layer.type} (known types: {known})",
    )


def legacy_shape(blob, index: int) -> int:
    """Blob::LegacyShape, behind num()/channels()/height()/width(): missing axes read as 1.

    Belongs on Blob; kept here until blob.py grows it."""
    check_le(blob.num_axes, 4, "num_axes()", "4", "Cannot use legacy accessors on Blobs with > 4 axes.")
    check_lt(index, 4, "index", "4")
    check_ge(index, -4, "index", "-4")
    if index >= blob.num_axes or index < -blob.num_axes:
        return 1
    return blob.shape[blob.canonical_axis_index(index)]


def scale_and_shift(x, scale, shift):
    """shift + scale * x, each step taken only when Caffe takes it (caffe_scal when
    scale != 1, then caffe_add_scalar when shift != 0: log_layer.cpp, power_layer.cpp), so
    the rounding matches."""
    if scale != 1:
        x = x * scale
    if shift != 0:
        x = x + shift
    return x


def std_max(a, b):
    """std::max(a, b) = (a < b) ? b : a, element-wise: a NaN in ``a`` survives, one in ``b`` does not."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    return torch.where(a < b, b, a)


def std_min(a, b):
    """std::min(a, b) = (b < a) ? b : a, element-wise."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    return torch.where(b < a, b, a)


def libm(fn, x, *args):
    """A C math function applied to each element as Caffe's float build applies it.

    Caffe calls exp/log/tanh/pow unqualified on floats; with the 1.0 image's GCC 5
    libstdc++ these resolve to the double functions (docs/semantics.md §8.3), so the value
    is the double result rounded once to the blob's type. torch's float32 kernels are
    only within an ulp of that, so we compute in double here."""
    return fn(x.to(torch.float64), *args).to(x.dtype)
