"""ELU. Caffe: src/caffe/layers/elu_layer.cpp."""

import torch

from ..layer import register_layer
from .neuron import NeuronLayer, libm, std_max, std_min


@register_layer("ELU")
class ELULayer(NeuronLayer):
    """y = max(x, 0) + alpha * (exp(min(x, 0)) - 1)."""

    may_run_in_place = True

    @classmethod
    def in_place_hazard(cls, param):
        if param.elu_param.alpha < 0:
            return "with alpha < 0 the backward reads the output, whose sign no longer tells x"
        return None

    def forward(self, bottom, top):
        x = bottom[0].data
        alpha = self.param.elu_param.alpha
        top[0].data.copy_(std_max(x, 0.0) + alpha * (libm(torch.exp, std_min(x, 0.0)) - 1))

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x, y = bottom[0].data, top[0].data
        alpha = self.param.elu_param.alpha
        # For x <= 0, dy/dx = alpha * exp(x) = alpha + y; the gradient at 0 is alpha.
        factor = (x > 0).to(x.dtype) + (alpha + y) * (x <= 0).to(x.dtype)
        bottom[0].diff.copy_(top[0].diff * factor)
