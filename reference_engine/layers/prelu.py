"""PReLU. Caffe: src/caffe/layers/prelu_layer.cpp."""

from .. import caffe_pb2
from ..checks import check_eq, check_ge
from ..fillers import fill
from ..layer import register_layer
from .neuron import NeuronLayer, legacy_shape, std_max, std_min


@register_layer("PReLU")
class PReLULayer(NeuronLayer):
    """y = max(x, 0) + a_c * min(x, 0), one slope per channel (axis 1) or one shared.

    Param 0 is the slope: shape (C,) or () with channel_shared. Its diff accumulates.
    In place, forward saves a copy of x for backward, as Caffe does (bottom_memory_)."""

    may_run_in_place = True

    generator = None  # the net may give a torch.Generator for the slope filler

    @classmethod
    def param_blob_count(cls, param, num_bottoms: int) -> int:
        return 1

    def layer_setup(self, bottom, top):
        check_ge(
            bottom[0].num_axes,
            2,
            "bottom[0]->num_axes()",
            "2",
            "Number of axes of bottom blob must be >=2.",
        )
        p = self.param.prelu_param
        channels = legacy_shape(bottom[0], 1)
        self.channel_shared = p.channel_shared
        if not self.blobs:
            slope = self.new_blob([] if self.channel_shared else [channels])
            if p.HasField("filler"):
                fill(slope, p.filler, self.generator)
            else:
                # Caffe's default when no filler is given: constant 0.25.
                fill(slope, caffe_pb2.FillerParameter(type="constant", value=0.25), self.generator)
            self.blobs = [slope]
        expected = 1 if self.channel_shared else channels
        check_eq(
            self.blobs[0].count(),
            expected,
            "this->blobs_[0]->count()",
            "1" if self.channel_shared else "channels",
            "Negative slope size is inconsistent with prototxt config",
        )
        # param_propagate_down_.resize(blobs.size(), true): keeps what the net already set.
        self.param_propagate_down += [True] * (len(self.blobs) - len(self.param_propagate_down))

    def reshape(self, bottom, top):
        check_ge(
            bottom[0].num_axes,
            2,
            "bottom[0]->num_axes()",
            "2",
            "Number of axes of bottom blob must be >=2.",
        )
        top[0].reshape_like(bottom[0])
        if bottom[0] is top[0]:
            if getattr(self, "bottom_memory", None) is None:
                self.bottom_memory = self.new_blob(bottom[0].shape)
            self.bottom_memory.reshape_like(bottom[0])

    def _slope(self, x):
        """The slope for each element of x, broadcast over (outer, C, inner)."""
        if self.channel_shared:
            return self.blobs[0].data.reshape(1, 1, 1)
        return self.blobs[0].data.reshape(1, -1, 1)

    def _grouped(self, tensor, bottom):
        # Element i has channel (i / count(2)) % channels: view as (count(0, 1), C, count(2)).
        return tensor.reshape(-1, legacy_shape(bottom[0], 1), bottom[0].count(2))

    def forward(self, bottom, top):
        x = bottom[0].data
        if bottom[0] is top[0]:
            self.bottom_memory.data.copy_(x)
        x3 = self._grouped(x, bottom)
        y = std_max(x3, 0.0) + self._slope(x3) * std_min(x3, 0.0)
        top[0].data.copy_(y.reshape(x.shape))

    def backward(self, top, propagate_down, bottom):
        x = self.bottom_memory.data if top[0] is bottom[0] else bottom[0].data
        x3 = self._grouped(x, bottom)
        dy3 = self._grouped(top[0].diff, bottom)
        negative = (x3 <= 0).to(x.dtype)
        # The slope's diff first: in place, writing the bottom diff overwrites the top diff.
        if self.param_propagate_down[0]:
            contribution = (dy3 * x3 * negative).sum(dim=(0, 2))
            if self.channel_shared:
                self.blobs[0].diff.add_(contribution.sum().reshape(self.blobs[0].diff.shape))
            else:
                self.blobs[0].diff.add_(contribution)
        if propagate_down[0]:
            dx = dy3 * ((x3 > 0).to(x.dtype) + self._slope(x3) * negative)
            bottom[0].diff.copy_(dx.reshape(x.shape))
