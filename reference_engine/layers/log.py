"""Log. Caffe: src/caffe/layers/log_layer.cpp."""

import math

import torch

from ..checks import check, check_gt
from ..layer import register_layer
from .neuron import NeuronLayer, libm


@register_layer("Log")
class LogLayer(NeuronLayer):
    """y = log_base(shift + scale * x); base -1 means e.

    Backward reads x, so in place it is wrong, as in Caffe."""

    def layer_setup(self, bottom, top):
        p = self.param.log_param
        base = p.base
        if base != -1:
            check_gt(base, 0, "base", "0", "base must be strictly positive.")
        log_base = 1.0 if base == -1 else self._dtype(math.log(base))
        check(
            not math.isnan(log_base),
            "!isnan(log_base)",
            f"NaN result: log(base) = log({base:g}) = {log_base:g}",
        )
        check(
            not math.isinf(log_base),
            "!isinf(log_base)",
            f"Inf result: log(base) = log({base:g}) = {log_base:g}",
        )
        # base 1 gives log_base 0, and 1/0 is inf in C++ (Python would raise).
        self.base_scale = self._dtype(1.0 / log_base if log_base != 0 else math.inf)
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
        self.backward_num_scale = self._dtype(self.input_scale / log_base)

    def _dtype(self, value):
        """A value stored in a Dtype member: rounded to the blob's type."""
        return float(torch.tensor(value, dtype=self.dtype))

    def _affine(self, x):
        if self.input_scale != 1:
            x = x * self.input_scale
        if self.input_shift != 0:
            x = x + self.input_shift
        return x

    def forward(self, bottom, top):
        y = libm(torch.log, self._affine(bottom[0].data))
        if self.base_scale != 1:
            y = y * self.base_scale
        top[0].data.copy_(y)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = libm(torch.pow, self._affine(bottom[0].data), -1.0)  # caffe_powx(., -1)
        if self.backward_num_scale != 1:
            dx = dx * self.backward_num_scale
        bottom[0].diff.copy_(top[0].diff * dx)
