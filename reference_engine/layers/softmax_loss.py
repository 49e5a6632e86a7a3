"""SoftmaxWithLoss. Caffe: src/caffe/layers/softmax_loss_layer.cpp."""

import torch

from ..checks import fatal
from ..layer import register_layer
from ..math_functions import scal
from .loss import (
    FLT_MIN,
    LossLayer,
    label_axes,
    normalization_mode,
    valid_labels,
)
from .neuron import libm, std_max
from .softmax import SoftmaxLayer


@register_layer("SoftmaxWithLoss")
class SoftmaxWithLossLayer(LossLayer):
    """loss = -sum over non-ignored labels of log(softmax(x)[label]) / normalizer.

    Top 1 (optional) is the softmax itself. The internal Softmax is built, as in Caffe,
    from a copy of this layer's param after LossLayer added its loss weight; so two tops
    cannot be set up (BVLC/caffe#2968): the copy's weights never fit the Softmax's one top."""

    bottom_roles = {1: "label"}
    label_axis_param = "softmax_param"

    exact_num_top_blobs = -1
    min_top_blobs = 1
    max_top_blobs = 2

    def layer_setup(self, bottom, top):
        super().layer_setup(bottom, top)
        softmax_param = type(self.param)()
        softmax_param.CopyFrom(self.param)
        softmax_param.type = "Softmax"
        self.softmax_layer = SoftmaxLayer(softmax_param, self.phase, self.dtype, self.device, self.semantics)
        self.prob = self.new_blob([])
        self.softmax_layer.setup([bottom[0]], [self.prob])
        p = self.param.loss_param
        self.ignore_label = p.ignore_label if p.HasField("ignore_label") else None
        self.normalization = normalization_mode(p, p.normalization)

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        self.softmax_layer.reshape([bottom[0]], [self.prob])
        self.axis, self.outer_num, self.inner_num = label_axes(
            bottom, self.param.softmax_param.axis, "softmax"
        )
        if len(top) >= 2:
            top[1].reshape_like(bottom[0])

    def _labels(self, bottom):
        """(outer, 1, inner) int labels, and the mask of those that count."""
        return valid_labels(
            bottom[1].data.reshape(self.outer_num, 1, self.inner_num),
            bottom[0].shape[self.axis],
            self.type,
            self.ignore_label,
        )

    def forward(self, bottom, top):
        self.softmax_layer.forward_layer([bottom[0]], [self.prob])
        prob = self.prob.data.reshape(self.outer_num, -1, self.inner_num)
        labels, valid = self._labels(bottom)
        picked = prob.gather(1, labels)
        log_p = libm(torch.log, std_max(picked, FLT_MIN))
        loss = -torch.where(valid, log_p, 0.0).sum()
        top[0].data.copy_(loss / self.valid_normalizer(valid))
        if len(top) == 2:
            top[1].share_data(self.prob)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            fatal(f"{self.type} Layer cannot backpropagate to label inputs.")
        if not propagate_down[0]:
            return
        prob = self.prob.data.reshape(self.outer_num, -1, self.inner_num)
        labels, valid = self._labels(bottom)
        dx = prob.clone()
        dx.scatter_add_(1, labels, -valid.to(dx.dtype))
        dx = torch.where(valid, dx, 0.0)  # an ignored position gets 0 over all classes
        # The normalizer is recomputed from backward's own count; the loss weight is
        # whatever top 0's diff holds now.
        scale = self.loss_weight(top) / self.valid_normalizer(valid)
        bottom[0].diff.copy_(scal(scale, dx).reshape(bottom[0].diff.shape))
