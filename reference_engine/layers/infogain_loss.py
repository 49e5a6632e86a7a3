"""InfogainLoss. Caffe: src/caffe/layers/infogain_loss_layer.cpp (the same in 1.0)."""

import torch

from ..checks import Unsupported, check, check_eq, fatal
from ..layer import register_layer
from ..math_functions import scal
from .loss import LOG_THRESHOLD, LossLayer, label_axes, valid_labels
from .neuron import libm, std_max
from .softmax import SoftmaxLayer


@register_layer("InfogainLoss")
class InfogainLossLayer(LossLayer):
    """loss = -sum over non-ignored labels of sum_l H[label, l] log(max(p_l, 1e-20)) / normalizer,
    p = softmax(x) along ``axis`` (scores in, as for SoftmaxWithLoss).

    H (K x K) comes from bottom 2. Intended difference: reading H from
    ``infogain_loss_param.source`` (a binaryproto file) is refused as Unsupported. Top 1
    (optional) is the softmax. force_backward may ask for bottom 2 (LossLayer only
    protects bottom 1), and backward then aborts, as in Caffe."""

    bottom_roles = {1: "label", 2: "infogain"}
    label_axis_param = "infogain_loss_param"
    optional_file_field = "infogain_loss_param.source"

    exact_num_bottom_blobs = -1
    min_bottom_blobs = 2
    max_bottom_blobs = 3
    exact_num_top_blobs = -1
    min_top_blobs = 1
    max_top_blobs = 2

    def layer_setup(self, bottom, top):
        super().layer_setup(bottom, top)
        # The internal Softmax: a copy of this param, with the infogain axis and a
        # single loss weight of 1 (so, unlike SoftmaxWithLoss, two tops can be set up).
        softmax_param = type(self.param)()
        softmax_param.CopyFrom(self.param)
        softmax_param.softmax_param.axis = self.param.infogain_loss_param.axis
        softmax_param.type = "Softmax"
        del softmax_param.loss_weight[:]
        softmax_param.loss_weight.append(1.0)
        self.softmax_layer = SoftmaxLayer(softmax_param, self.phase, self.dtype, self.device, self.semantics)
        self.prob = self.new_blob([])
        self.softmax_layer.setup([bottom[0]], [self.prob])
        p = self.param.loss_param
        self.ignore_label = p.ignore_label if p.HasField("ignore_label") else None
        check(
            not p.HasField("normalize"),
            "!this->layer_param_.loss_param().has_normalize()",
            'normalize is deprecated. use "normalization"',
        )
        self.normalization = p.normalization
        if len(bottom) < 3:
            check(
                self.param.infogain_loss_param.HasField("source"),
                "this->layer_param_.infogain_loss_param().has_source()",
                "Infogain matrix source must be specified.",
            )
            raise Unsupported(
                f"InfogainLoss: infogain_loss_param.source={self.param.infogain_loss_param.source!r}: reading H "
                f"from a binaryproto file is not supported; give H as a third bottom"
            )

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        self.softmax_layer.reshape([bottom[0]], [self.prob])
        self.axis, self.outer_num, self.inner_num = label_axes(
            bottom, self.param.infogain_loss_param.axis, "infogain"
        )
        self.num_labels = bottom[0].shape[self.axis]
        check_eq(
            bottom[2].count(),
            self.num_labels * self.num_labels,
            "infogain->count()",
            "num_labels_*num_labels_",
        )
        if len(top) >= 2:
            top[1].reshape_like(bottom[0])

    def _labels(self, bottom):
        return valid_labels(
            bottom[1].data.reshape(self.outer_num, self.inner_num),
            self.num_labels,
            self.type,
            self.ignore_label,
        )

    def _infogain(self, bottom):
        return bottom[2].data.reshape(self.num_labels, self.num_labels)

    def forward(self, bottom, top):
        self.softmax_layer.forward_layer([bottom[0]], [self.prob])
        prob = self.prob.data.reshape(self.outer_num, self.num_labels, self.inner_num)
        labels, valid = self._labels(bottom)
        rows = self._infogain(bottom)[labels].permute(0, 2, 1)  # H[label, l] at (i, l, j)
        log_p = libm(torch.log, std_max(prob, LOG_THRESHOLD))
        per_label = (rows * log_p).sum(dim=1)
        loss = -torch.where(valid, per_label, 0.0).sum()
        top[0].data.copy_(loss / self.valid_normalizer(valid))
        if len(top) == 2:
            top[1].share_data(self.prob)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            fatal(f"{self.type} Layer cannot backpropagate to label inputs.")
        if len(propagate_down) > 2 and propagate_down[2]:
            fatal(f"{self.type} Layer cannot backpropagate to infogain inputs.")
        if not propagate_down[0]:
            return
        prob = self.prob.data.reshape(self.outer_num, self.num_labels, self.inner_num)
        labels, valid = self._labels(bottom)
        h = self._infogain(bottom)
        sum_rows = h.sum(dim=1)  # re-summed each backward: a bottom H may change
        rows = h[labels].permute(0, 2, 1)
        dx = prob * sum_rows[labels][:, None, :] - rows
        dx = torch.where(valid[:, None, :], dx, 0.0)
        scale = self.loss_weight(top) / self.valid_normalizer(valid)
        bottom[0].diff.copy_(scal(scale, dx).reshape(bottom[0].diff.shape))
