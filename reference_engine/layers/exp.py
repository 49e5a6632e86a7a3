"""Exp. Caffe: src/caffe/layers/exp_layer.cpp."""

import math

import torch

from ..checks import check, check_gt
from ..layer import register_layer
from .neuron import NeuronLayer, libm


def checked_log_base(layer, base):
    """log(base) as a Dtype, base -1 meaning e, after the checks ExpLayer::LayerSetUp and
    LogLayer::LayerSetUp both make (exp_layer.cpp, log_layer.cpp)."""
    if base != -1:
        check_gt(base, 0, "base", "0", "base must be strictly positive.")
    # With base -1, log(base) is taken as exactly 1 rather than computed.
    log_base = 1.0 if base == -1 else layer.dtype_value(math.log(base))
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
    return log_base


@register_layer("Exp")
class ExpLayer(NeuronLayer):
    """y = base ^ (shift + scale * x), computed as outer * exp(inner * x); base -1 means e."""

    may_run_in_place = True

    def layer_setup(self, bottom, top):
        p = self.param.exp_param
        base = p.base
        log_base = checked_log_base(self, base)
        self.inner_scale = self.dtype_value(log_base * p.scale)
        if p.shift == 0:
            self.outer_scale = 1.0
        elif base != -1:
            self.outer_scale = self.dtype_value(math.pow(base, p.shift))
        else:
            self.outer_scale = self.dtype_value(math.exp(p.shift))

    def forward(self, bottom, top):
        x = bottom[0].data
        y = libm(torch.exp, x if self.inner_scale == 1 else x * self.inner_scale)
        if self.outer_scale != 1:
            y = y * self.outer_scale
        top[0].data.copy_(y)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = top[0].data * top[0].diff
        if self.inner_scale != 1:
            dx = dx * self.inner_scale
        bottom[0].diff.copy_(dx)
