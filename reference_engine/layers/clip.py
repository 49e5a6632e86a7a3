"""Clip (master only). Caffe: src/caffe/layers/clip_layer.cpp."""

from ..layer import register_layer
from .neuron import NeuronLayer, check_type_known, std_max, std_min


@register_layer("Clip")
class ClipLayer(NeuronLayer):
    """y = max(min, min(x, max)); a NaN input becomes min, as std::max/std::min order it.

    Backward reads x, so in place it is wrong, as in Caffe."""

    master_only = True

    @classmethod
    def in_place_hazard(cls, param):
        return "Backward_cpu (clip_layer.cpp) reads the input x, which the forward overwrote"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        check_type_known(self)

    def forward(self, bottom, top):
        p = self.param.clip_param
        top[0].data.copy_(std_max(p.min, std_min(bottom[0].data, p.max)))

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        p = self.param.clip_param
        x = bottom[0].data
        # Both bounds inclusive: the gradient passes at x == min and x == max.
        inside = ((x >= p.min) & (x <= p.max)).to(x.dtype)
        bottom[0].diff.copy_(top[0].diff * inside)
