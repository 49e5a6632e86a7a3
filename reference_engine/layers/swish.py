"""Swish (master only). Caffe: src/caffe/layers/swish_layer.cpp."""

import torch

from ..layer import register_layer
from .neuron import NeuronLayer, check_type_known
from .sigmoid import caffe_sigmoid


@register_layer("Swish")
class SwishLayer(NeuronLayer):
    """y = x * sigmoid(beta * x), the sigmoid being Caffe's (tanh form) on beta * x."""

    master_only = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        check_type_known(self)

    def forward(self, bottom, top):
        x = bottom[0].data
        beta = self.param.swish_param.beta
        # Kept for backward, as Caffe keeps its internal Sigmoid's output.
        self.sigmoid_output = caffe_sigmoid(x * beta)
        top[0].data.copy_(x * self.sigmoid_output)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        y, s = top[0].data, self.sigmoid_output
        beta_y = y * self.param.swish_param.beta
        # beta*y + s*(1. - beta*y): the double literal makes the bracket, and so the
        # product with the top diff, a double expression.
        bracket = beta_y.to(torch.float64) + s.to(torch.float64) * (1.0 - beta_y.to(torch.float64))
        bottom[0].diff.copy_((top[0].diff.to(torch.float64) * bracket).to(y.dtype))
