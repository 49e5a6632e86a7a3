"""LossLayer: the base of the loss layers, and the loss normalizer they share.

Caffe: include/caffe/layers/loss_layer.hpp, src/caffe/layers/loss_layer.cpp. The
normalizer is written out three times in Caffe (softmax_loss_layer.cpp,
sigmoid_cross_entropy_loss_layer.cpp, infogain_loss_layer.cpp, each
``get_normalizer``); the copies are identical, so here it is one function.
"""

import torch

from .. import caffe_pb2
from ..checks import Unsupported, check_eq, fatal
from ..layer import Layer

LossParameter = caffe_pb2.LossParameter

# loss_layer.hpp: kLOG_THRESHOLD, the floor under a probability before its log. It is a
# C++ float, so even a double blob gets float(1e-20) = 9.99999968e-21.
LOG_THRESHOLD = float(torch.tensor(1e-20, dtype=torch.float32))
# <cfloat> FLT_MIN, SoftmaxWithLoss's floor (also used for double blobs).
FLT_MIN = 1.17549435082228750797e-38


class LossLayer(Layer):
    exact_num_bottom_blobs = 2
    exact_num_top_blobs = 1
    auto_top_blobs = True
    is_loss = True
    label_backward_fatal = True

    @classmethod
    def allow_force_backward(cls, bottom_index: int) -> bool:
        # Bottom 1 holds the labels: force_backward must not ask for their gradient.
        return bottom_index != 1

    def layer_setup(self, bottom, top):
        # LossLayer::LayerSetUp edits the layer's own copy of its param: internal layers
        # built later from that copy (SoftmaxWithLoss's Softmax) inherit the weight.
        if not self.param.loss_weight:
            self.param.loss_weight.append(1.0)

    def reshape(self, bottom, top):
        check_eq(
            _shape(bottom[0], 0),
            _shape(bottom[1], 0),
            "bottom[0]->shape(0)",
            "bottom[1]->shape(0)",
            "The data and label should have the same first dimension.",
        )
        top[0].reshape([])  # a loss is a 0-axis blob

    def valid_normalizer(self, valid) -> float:
        """get_normalizer for this layer's normalization, outer_num and inner_num, counting
        the positions ``valid`` marks (each pass passes the mask it built itself)."""
        count = int(valid.sum())
        return get_normalizer(self.normalization, count, self.outer_num, self.inner_num)

    def loss_weight(self, top):
        """The weight backward scales by: whatever top 0's diff holds now (docs/semantics.md §3.2)."""
        return top[0].diff.reshape(-1)[0]


def _shape(blob, axis):
    """Blob::shape(i), with CanonicalAxisIndex's check."""
    return blob.shape[blob.canonical_axis_index(axis)]


def normalization_mode(loss_param, when_unset):
    """The mode a loss layer normalizes by: ``normalization`` if set, else the legacy
    ``normalize`` bool (true: VALID, false: BATCH_SIZE), else ``when_unset``.

    SoftmaxWithLoss passes the proto default (VALID); SigmoidCrossEntropyLoss passes
    BATCH_SIZE (its LayerSetUp)."""
    if loss_param.HasField("normalization"):
        return loss_param.normalization
    if loss_param.HasField("normalize"):
        return LossParameter.VALID if loss_param.normalize else LossParameter.BATCH_SIZE
    return when_unset


def get_normalizer(mode, valid_count: int, outer_num: int, inner_num: int) -> float:
    """get_normalizer in softmax_loss_layer.cpp; ``valid_count`` -1 means "all valid"."""
    if mode == LossParameter.FULL:
        normalizer = float(outer_num * inner_num)
    elif mode == LossParameter.VALID:
        normalizer = float(outer_num * inner_num) if valid_count == -1 else float(valid_count)
    elif mode == LossParameter.BATCH_SIZE:
        normalizer = float(outer_num)
    elif mode == LossParameter.NONE:
        normalizer = 1.0
    else:
        fatal(f"Unknown normalization mode: {LossParameter.NormalizationMode.Name(mode)}")
    # Caffe's max(1, .) keeps an all-ignored batch from dividing by zero.
    return max(1.0, normalizer)


def label_indices(label_data, num_labels: int, layer_type: str, ignore_label=None):
    """Labels as Caffe reads them: static_cast<int> of the float (truncation toward zero).

    Caffe checks the range only with DCHECK, so a release build reads out of bounds; we
    refuse instead of guessing what that memory held."""
    labels = label_data.to(torch.int64)
    used = labels if ignore_label is None else labels[labels != ignore_label]
    bad = (used < 0) | (used >= num_labels)
    if bool(bad.any()):
        raise Unsupported(
            f"{layer_type}: label {int(used[bad][0])} is outside [0, {num_labels}); Caffe "
            f"only DCHECKs the range and would read out of bounds"
        )
    return labels


def valid_labels(label_data, num_labels: int, layer_type: str, ignore_label=None):
    """label_indices, with the mask of the labels that count (not ``ignore_label``).

    An ignored position may hold any value, so its label reads as 0: a safe index to
    gather at, masked out after."""
    labels = label_indices(label_data, num_labels, layer_type, ignore_label)
    valid = torch.ones_like(labels, dtype=torch.bool) if ignore_label is None else labels != ignore_label
    return torch.where(valid, labels, 0), valid


def label_axes(bottom, axis: int, axis_name: str):
    """(axis, outer_num, inner_num) of scores bottom[0] with one label in bottom[1] per
    position outside ``axis``, after the label-count CHECK that SoftmaxWithLoss,
    InfogainLoss and Accuracy each make in Reshape; ``axis_name`` is the word their
    messages differ by ("softmax", "infogain", "label")."""
    canonical = bottom[0].canonical_axis_index(axis)
    outer_num = bottom[0].count(0, canonical)
    inner_num = bottom[0].count(canonical + 1)
    check_eq(
        outer_num * inner_num,
        bottom[1].count(),
        "outer_num_ * inner_num_",
        "bottom[1]->count()",
        f"Number of labels must match number of predictions; e.g., if {axis_name} axis == 1 and "
        "prediction shape is (N, C, H, W), label count (number of labels) must be N*H*W, with "
        "integer values in {0, 1, ..., C-1}.",
    )
    return canonical, outer_num, inner_num
