"""SoftmaxWithLoss. Caffe: src/caffe/layers/softmax_loss_layer.cpp."""

import torch

from ..checks import check_eq, fatal
from ..layer import register_layer
from .loss import FLT_MIN, LossLayer, get_normalizer, label_indices, normalization_mode
from .neuron import libm, std_max
from .softmax import SoftmaxLayer


@register_layer("SoftmaxWithLoss")
class SoftmaxWithLossLayer(LossLayer):
    """loss = -sum over non-ignored labels of log(softmax(x)[label]) / normalizer.

    Top 1 (optional) is the softmax itself. The internal Softmax is built, as in Caffe,
    from a copy of this layer's param after LossLayer added its loss weight; so two tops
    cannot be set up (BVLC/caffe#2968): the copy's weights never fit the Softmax's one top."""

    exact_num_top_blobs = -1
    min_top_blobs = 1
    max_top_blobs = 2

    def layer_setup(self, bottom, top):
        super().layer_setup(bottom, top)
        softmax_param = type(self.param)()
        softmax_param.CopyFrom(self.param)
        softmax_param.type = "Softmax"
        self.softmax_layer = SoftmaxLayer(
            softmax_param, self.phase, self.dtype, self.device, self.semantics
        )
        self.prob = self.new_blob([])
        self.softmax_layer.setup([bottom[0]], [self.prob])
        p = self.param.loss_param
        self.ignore_label = p.ignore_label if p.HasField("ignore_label") else None
        self.normalization = normalization_mode(p, p.normalization)

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        self.softmax_layer.reshape([bottom[0]], [self.prob])
        self.axis = bottom[0].canonical_axis_index(self.param.softmax_param.axis)
        self.outer_num = bottom[0].count(0, self.axis)
        self.inner_num = bottom[0].count(self.axis + 1)
        check_eq(
            self.outer_num * self.inner_num,
            bottom[1].count(),
            "outer_num_ * inner_num_",
            "bottom[1]->count()",
            "Number of labels must match number of predictions; e.g., if softmax axis == 1 and prediction "
            "shape is (N, C, H, W), label count (number of labels) must be N*H*W, with integer values in "
            "{0, 1, ..., C-1}.",
        )
        if len(top) >= 2:
            top[1].reshape_like(bottom[0])

    def _labels(self, bottom):
        """(outer, 1, inner) int labels, and the mask of those that count."""
        num_labels = bottom[0].shape[self.axis]
        labels = label_indices(bottom[1].data.reshape(-1), num_labels, self.type, self.ignore_label)
        labels = labels.reshape(self.outer_num, 1, self.inner_num)
        valid = (
            torch.ones_like(labels, dtype=torch.bool)
            if self.ignore_label is None
            else labels != self.ignore_label
        )
        # Ignored positions may hold any value; gather at a safe index and mask them out.
        return torch.where(valid, labels, 0), valid

    def forward(self, bottom, top):
        self.softmax_layer.forward_layer([bottom[0]], [self.prob])
        prob = self.prob.data.reshape(self.outer_num, -1, self.inner_num)
        labels, valid = self._labels(bottom)
        picked = prob.gather(1, labels)
        log_p = libm(torch.log, std_max(picked, FLT_MIN))
        loss = -torch.where(valid, log_p, 0.0).sum()
        count = int(valid.sum())
        top[0].data.copy_(
            loss / get_normalizer(self.normalization, count, self.outer_num, self.inner_num)
        )
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
        count = int(valid.sum())
        scale = self.loss_weight(top) / get_normalizer(
            self.normalization, count, self.outer_num, self.inner_num
        )
        bottom[0].diff.copy_((dx * scale).reshape(bottom[0].diff.shape))
