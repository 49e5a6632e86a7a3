"""Threshold. Caffe: src/caffe/layers/threshold_layer.cpp, include/caffe/layers/threshold_layer.hpp."""

from ..checks import not_implemented
from ..layer import register_layer
from .neuron import NeuronLayer


@register_layer("Threshold")
class ThresholdLayer(NeuronLayer):
    """y = 1 if x > threshold else 0 (strict)."""

    may_run_in_place = True
    has_backward = False

    def forward(self, bottom, top):
        x = bottom[0].data
        top[0].data.copy_((x > self.param.threshold_param.threshold).to(x.dtype))

    def backward(self, top, propagate_down, bottom):
        # Backward_cpu is NOT_IMPLEMENTED whatever propagate_down says.
        not_implemented()
