"""Log. Caffe: src/caffe/layers/log_layer.cpp."""

import math

import torch

from ..checks import check
from ..layer import register_layer
from .exp import checked_log_base
from .neuron import NeuronLayer, libm, scale_and_shift


@register_layer("Log")
class LogLayer(NeuronLayer):
    """y = log_base(shift + scale * x); base -1 means e.

    Backward reads x, so in place it is wrong, as in Caffe."""

    @classmethod
    def in_place_hazard(cls, param):
        return "Backward_cpu (log_layer.cpp) reads the input x, which the forward overwrote"

    def layer_setup(self, bottom, top):
        p = self.param.log_param
        base = p.base
        log_base = checked_log_base(self, base)
        # base 1 gives log_base 0, and 1/0 is inf in C++ (Python would raise).
        self.base_scale = self.dtype_value(1.0 / log_base if log_base != 0 else math.inf)
        check(
            not math.isnan(self.base_scale),
            "!isnan(base_scale_)",
            f"NaN result: 1/log(base) = 1/log({base:g}) = {self.base_scale:g}",
        )
        check(
            not math.isinf(self.base_scale),
            "!isinf(base_scale_)",
            f"Inf result: 1/log(base) = 1/log({base:g}) = {self.base_scale:g}",
        )
        self.input_scale, self.input_shift = p.scale, p.shift
        self.backward_num_scale = self.dtype_value(self.input_scale / log_base)

    def forward(self, bottom, top):
        y = libm(torch.log, scale_and_shift(bottom[0].data, self.input_scale, self.input_shift))
        if self.base_scale != 1:
            y = y * self.base_scale
        top[0].data.copy_(y)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x = scale_and_shift(bottom[0].data, self.input_scale, self.input_shift)
        dx = libm(torch.pow, x, -1.0)  # caffe_powx(., -1)
        if self.backward_num_scale != 1:
            dx = dx * self.backward_num_scale
        bottom[0].diff.copy_(top[0].diff * dx)
