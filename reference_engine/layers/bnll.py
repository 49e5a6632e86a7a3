"""BNLL (binomial normal log likelihood, softplus). Caffe: src/caffe/layers/bnll_layer.cpp."""

import torch

from ..layer import register_layer
from .neuron import NeuronLayer, libm, std_min

# bnll_layer.cpp: kBNLL_THRESHOLD caps x before exp in backward.
BNLL_THRESHOLD = 50.0


@register_layer("BNLL")
class BNLLLayer(NeuronLayer):
    """y = x + log(1 + exp(-x)) for x > 0, else log(1 + exp(x))."""

    @classmethod
    def in_place_hazard(cls, param):
        return "Backward_cpu (bnll_layer.cpp) reads the input x, which the forward overwrote"

    def forward(self, bottom, top):
        x = bottom[0].data
        # `log(1. + exp(.))` is a double expression in Caffe; it is rounded once on store.
        x64 = x.to(torch.float64)
        y = torch.where(x64 > 0, x64 + torch.log(1.0 + torch.exp(-x64)), torch.log(1.0 + torch.exp(x64)))
        top[0].data.copy_(y.to(x.dtype))

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x = bottom[0].data
        e = libm(torch.exp, std_min(x, BNLL_THRESHOLD))  # stored in the blob's type
        # dy * e in the blob's type, then divided by (e + 1.) in double.
        value = (top[0].diff * e).to(torch.float64) / (e.to(torch.float64) + 1.0)
        bottom[0].diff.copy_(value.to(x.dtype))
