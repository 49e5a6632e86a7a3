"""TanH. Caffe: src/caffe/layers/tanh_layer.cpp."""

import torch

from ..layer import register_layer
from .neuron import NeuronLayer, libm


@register_layer("TanH")
class TanHLayer(NeuronLayer):
    """y = tanh(x)."""

    may_run_in_place = True

    def forward(self, bottom, top):
        top[0].data.copy_(libm(torch.tanh, bottom[0].data))

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        y = top[0].data
        bottom[0].diff.copy_(top[0].diff * (1 - y * y))
