"""Reduction. Caffe: src/caffe/layers/reduction_layer.cpp.

Reduces every axis from `axis` to the end; MEAN is SUM with coeff / dim.
"""

import torch

from ..checks import check_eq, fatal
from ..layer import Layer, register_layer
from ..math_functions import scal, sign

SUM, ASUM, SUMSQ, MEAN = 1, 2, 3, 4  # ReductionParameter.ReductionOp


@register_layer("Reduction")
class ReductionLayer(Layer):
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom, top):
        self.op = self.param.reduction_param.operation

    def reshape(self, bottom, top):
        p = self.param.reduction_param
        self.axis = bottom[0].canonical_axis_index(p.axis)
        top[0].reshape(bottom[0].shape[: self.axis])
        self.num = bottom[0].count(0, self.axis)
        self.dim = bottom[0].count(self.axis)
        check_eq(self.num, top[0].count(), "num_", "top[0]->count()")
        self.coeff = torch.tensor(p.coeff, dtype=self.dtype)
        if self.op == MEAN:
            self.coeff = self.coeff / self.dim

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.num, self.dim)
        if self.op in (SUM, MEAN):
            y = x.sum(1)
        elif self.op == ASUM:
            y = x.abs().sum(1)
        elif self.op == SUMSQ:
            y = (x * x).sum(1)
        else:
            fatal(f"Unknown reduction op: {self.op}")
        if self.coeff != 1:
            y = scal(self.coeff.to(y.device), y)
        top[0].data.copy_(y.view_as(top[0].data))

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x = bottom[0].data.reshape(self.num, self.dim)
        bottom_coeff = top[0].diff.reshape(self.num, 1) * self.coeff.to(x.device)
        dx = bottom[0].diff.view(self.num, self.dim)
        if self.op in (SUM, MEAN):
            dx.copy_(bottom_coeff.expand(-1, self.dim))
        elif self.op == ASUM:
            dx.copy_(scal(bottom_coeff, sign(x)))
        elif self.op == SUMSQ:
            dx.copy_(scal(2 * bottom_coeff, x))  # caffe_cpu_scale, per row
        else:
            fatal(f"Unknown reduction op: {self.op}")
