"""Sigmoid. Caffe: src/caffe/layers/sigmoid_layer.cpp."""

import torch

from ..layer import register_layer
from .neuron import NeuronLayer


def caffe_sigmoid(x):
    """Caffe's sigmoid, 0.5 * tanh(0.5 x) + 0.5: its double literals make it a double
    computation even for float blobs, rounded once to the blob's type."""
    return (0.5 * torch.tanh(0.5 * x.to(torch.float64)) + 0.5).to(x.dtype)


@register_layer("Sigmoid")
class SigmoidLayer(NeuronLayer):
    """y = 1 / (1 + exp(-x)), in the tanh form."""

    may_run_in_place = True

    def forward(self, bottom, top):
        top[0].data.copy_(caffe_sigmoid(bottom[0].data))

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        y = top[0].data
        # dy * y in the blob's type, then times (1. - y) in double, as C++ promotes it.
        product = (top[0].diff * y).to(torch.float64) * (1.0 - y.to(torch.float64))
        bottom[0].diff.copy_(product.to(y.dtype))
