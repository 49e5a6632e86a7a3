"""Eltwise. Caffe: src/caffe/layers/eltwise_layer.cpp.

Each step writes into the top's own tensor in Caffe's order, so an in-place Eltwise
(top == bottom 0) computes what Caffe does (SUM zeroes the top first, for one).
"""

import torch

from ..checks import check, fatal
from ..layer import Layer, register_layer
from ..math_functions import scal

PROD, SUM, MAX = 0, 1, 2  # EltwiseParameter.EltwiseOp
FLT_MAX = 3.4028234663852886e38


@register_layer("Eltwise")
class EltwiseLayer(Layer):
    @classmethod
    def in_place_hazard(cls, param):
        return "Forward_cpu (eltwise_layer.cpp) overwrites bottom 0 while combining the bottoms"

    min_bottom_blobs = 2
    exact_num_top_blobs = 1

    def layer_setup(self, bottom, top):
        p = self.param.eltwise_param
        check(
            len(p.coeff) == 0 or len(p.coeff) == len(bottom),
            "this->layer_param().eltwise_param().coeff_size() == 0 "
            "|| this->layer_param().eltwise_param().coeff_size() == bottom.size()",
            "Eltwise Layer takes one coefficient per bottom blob.",
        )
        check(
            not (p.operation == PROD and len(p.coeff)),
            "!(this->layer_param().eltwise_param().operation() == EltwiseParameter_EltwiseOp_PROD "
            "&& this->layer_param().eltwise_param().coeff_size())",
            "Eltwise layer only takes coefficients for summation.",
        )
        self.op = p.operation
        self.coeffs = list(p.coeff) if len(p.coeff) else [1.0] * len(bottom)
        self.stable_prod_grad = p.stable_prod_grad

    def reshape(self, bottom, top):
        for i in range(1, len(bottom)):
            check(
                bottom[0].shape == bottom[i].shape,
                "bottom[0]->shape() == bottom[i]->shape()",
                f"bottom[0]: {bottom[0].shape_string()}, bottom[{i}]: {bottom[i].shape_string()}",
            )
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        y = top[0].data
        if self.op == PROD:
            torch.mul(bottom[0].data, bottom[1].data, out=y)
            for b in bottom[2:]:
                y.mul_(b.data)
        elif self.op == SUM:
            y.zero_()
            for coeff, b in zip(self.coeffs, bottom):
                if coeff != 0:  # caffe_axpy with alpha 0 leaves the sum alone, NaN or not
                    y.add_(b.data, alpha=coeff)
        elif self.op == MAX:
            # Bottom 0 against 1 with '>': a tie goes to bottom 1. Later bottoms need to be
            # strictly greater: a tie keeps the earlier one.
            a, b = bottom[0].data, bottom[1].data
            first = a > b
            mask = torch.where(first, 0, 1)
            torch.where(first, a, b, out=y)
            for index in range(2, len(bottom)):
                c = bottom[index].data
                wins = c > y
                mask = torch.where(wins, index, mask)
                torch.where(wins, c, y, out=y)
            self.max_idx = mask
        else:
            fatal("Unknown elementwise operation.")

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff
        for i, b in enumerate(bottom):
            if not propagate_down[i]:
                continue
            if self.op == PROD:
                if self.stable_prod_grad:
                    others = [other for j, other in enumerate(bottom) if j != i]
                    product = others[0].data.clone()
                    for other in others[1:]:
                        product.mul_(other.data)
                else:
                    product = top[0].data / b.data
                torch.mul(product, dy, out=b.diff)
            elif self.op == SUM:
                if self.coeffs[i] == 1:
                    b.diff.copy_(dy)
                else:
                    b.diff.copy_(scal(self.coeffs[i], dy))
            elif self.op == MAX:
                torch.where(self.max_idx == i, dy, torch.zeros_like(dy), out=b.diff)
            else:
                fatal("Unknown elementwise operation.")
