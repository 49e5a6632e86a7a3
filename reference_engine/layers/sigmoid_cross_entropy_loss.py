"""SigmoidCrossEntropyLoss. Caffe: src/caffe/layers/sigmoid_cross_entropy_loss_layer.cpp."""

import torch

from ..checks import check_eq, fatal
from ..layer import register_layer
from ..math_functions import scal
from .loss import LossLayer, LossParameter, normalization_mode
from .sigmoid import caffe_sigmoid


@register_layer("SigmoidCrossEntropyLoss")
class SigmoidCrossEntropyLossLayer(LossLayer):
    """loss = -sum over non-ignored t of [x (t - (x >= 0)) - log(1 + exp(x - 2 x (x >= 0)))] / normalizer.

    Targets may be fractional; ignore_label compares int(t). Unlike SoftmaxWithLoss, an
    unset normalization means BATCH_SIZE. Backward uses Caffe's (tanh form) sigmoid and
    the normalizer cached by forward."""

    bottom_roles = {1: "binary"}

    def layer_setup(self, bottom, top):
        super().layer_setup(bottom, top)
        p = self.param.loss_param
        self.ignore_label = p.ignore_label if p.HasField("ignore_label") else None
        self.normalization = normalization_mode(p, LossParameter.BATCH_SIZE)

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        self.outer_num = bottom[0].shape[0]
        self.inner_num = bottom[0].count(1)
        check_eq(
            bottom[0].count(),
            bottom[1].count(),
            "bottom[0]->count()",
            "bottom[1]->count()",
            "SIGMOID_CROSS_ENTROPY_LOSS layer inputs must have the same count.",
        )

    def _valid(self, target):
        if self.ignore_label is None:
            return torch.ones_like(target, dtype=torch.bool)
        return target.to(torch.int64) != self.ignore_label

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(-1)
        t = bottom[1].data.reshape(-1)
        self.sigmoid_output = caffe_sigmoid(x)
        positive = (x >= 0).to(x.dtype)
        # log(1 + exp(.)) binds to the double functions, so each term is a double
        # expression; Caffe accumulates them into a Dtype loss.
        softplus = torch.log(1 + torch.exp((x - 2 * x * positive).to(torch.float64)))
        term = (x * (t - positive)).to(torch.float64) - softplus
        valid = self._valid(t)
        loss = -torch.where(valid, term, 0.0).sum().to(x.dtype)
        self.normalizer = self.valid_normalizer(valid)
        top[0].data.copy_(loss / self.normalizer)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            fatal(f"{self.type} Layer cannot backpropagate to label inputs.")
        if not propagate_down[0]:
            return
        t = bottom[1].data.reshape(-1)
        dx = torch.where(self._valid(t), self.sigmoid_output - t, 0.0)  # ignored: exactly 0
        scale = self.loss_weight(top) / self.normalizer
        bottom[0].diff.copy_(scal(scale, dx).reshape(bottom[0].diff.shape))
