"""Power. Caffe: src/caffe/layers/power_layer.cpp."""

import math

import torch

from ..layer import register_layer
from .neuron import NeuronLayer, libm, scale_and_shift


@register_layer("Power")
class PowerLayer(NeuronLayer):
    """y = (shift + scale * x) ^ power, with Caffe's special cases followed branch by branch.

    Each optional step (scale, shift, power) is skipped when it is the identity, as in
    Caffe, so rounding matches; in place the layer is wrong when backward reads x, as in
    Caffe (it reads the overwritten bottom)."""

    @classmethod
    def in_place_hazard(cls, param):
        q = param.power_param
        if q.power == 1 or q.power * q.scale == 0:
            return None
        return "Backward_cpu (power_layer.cpp) reads the input x, which the forward overwrote"

    def layer_setup(self, bottom, top):
        p = self.param.power_param
        self.power, self.scale, self.shift = p.power, p.scale, p.shift
        # diff_scale_ is a Dtype product: one rounding, so a double product rounded on use matches.
        self.diff_scale = self.dtype_value(self.power * self.scale)

    def forward(self, bottom, top):
        if self.diff_scale == 0:
            # scale or power is 0: the output ignores x.
            value = 1.0 if self.power == 0 else self.dtype_value(math.pow(self.shift, self.power))
            top[0].data.fill_(value)
            return
        y = scale_and_shift(bottom[0].data, self.scale, self.shift)
        if self.power != 1:
            y = libm(torch.pow, y, self.power)
        top[0].data.copy_(y)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].diff
        if self.diff_scale == 0 or self.power == 1:
            # A constant; for diff_scale 0 it is not multiplied by the top diff, so a
            # NaN/inf there does not reach the bottom.
            dx.fill_(self.diff_scale)
        else:
            x, y = bottom[0].data, top[0].data
            if self.power == 2:
                # d/dx (shift + scale x)^2 = diff_scale * scale * x + diff_scale * shift
                value = x * self.dtype_value(self.diff_scale * self.scale)
                if self.shift != 0:
                    value = value + self.dtype_value(self.diff_scale * self.shift)
            elif self.shift == 0:
                # power * y / x: NaN (0/0) or inf at x == 0, as in Caffe.
                value = (y / x) * self.power
            else:
                value = y / scale_and_shift(x, self.scale, self.shift)
                if self.diff_scale != 1:
                    value = value * self.diff_scale
            dx.copy_(value)
        if self.diff_scale != 0:
            dx.copy_(top[0].diff * dx)
