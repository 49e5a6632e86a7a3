"""HingeLoss. Caffe: src/caffe/layers/hinge_loss_layer.cpp."""

import torch

from .. import caffe_pb2
from ..checks import fatal
from ..layer import register_layer
from ..math_functions import scal, sign
from .loss import LossLayer, label_indices
from .neuron import legacy_shape, std_max


@register_layer("HingeLoss")
class HingeLossLayer(LossLayer):
    """loss = sum(max(0, 1 + s x)) / num (L1) or sum(max(0, 1 + s x)^2) / num (L2),
    s = -1 at the label's column and +1 elsewhere.

    Forward writes the margins into bottom 0's diff and backward reads them back from
    there, as Caffe does; so the diff is written even when backward never runs."""

    bottom_roles = {1: "label"}
    backward_reads_bottom_diff = True  # Forward leaves the margins in bottom 0's diff

    def _labels(self, bottom):
        """Caffe reads label[i] for i < num, whatever the label blob's shape."""
        num = legacy_shape(bottom[0], 0)
        dim = bottom[0].count() // num
        return label_indices(bottom[1].data.reshape(-1)[:num], dim, self.type), num, dim

    def forward(self, bottom, top):
        labels, num, dim = self._labels(bottom)
        margins = bottom[0].data.reshape(num, dim).clone()
        rows = torch.arange(num)
        margins[rows, labels] *= -1
        # std::max(Dtype(0), 1 + .): a NaN margin becomes 0, as std::max returns its first argument.
        margins = std_max(torch.zeros_like(margins), 1 + margins)
        bottom[0].diff.copy_(margins.reshape(bottom[0].diff.shape))
        norm = self.param.hinge_loss_param.norm
        if norm == caffe_pb2.HingeLossParameter.L1:
            top[0].data.copy_(margins.abs().sum() / num)  # caffe_cpu_asum
        elif norm == caffe_pb2.HingeLossParameter.L2:
            top[0].data.copy_((margins * margins).sum() / num)
        else:
            fatal("Unknown Norm")

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            fatal(f"{self.type} Layer cannot backpropagate to label inputs.")
        if not propagate_down[0]:
            return
        labels, num, dim = self._labels(bottom)
        # The margins forward left in the diff (or whatever has overwritten them since).
        diff = bottom[0].diff.reshape(num, dim)
        diff[torch.arange(num), labels] *= -1
        weight = self.loss_weight(top)
        norm = self.param.hinge_loss_param.norm
        if norm == caffe_pb2.HingeLossParameter.L1:
            diff.copy_(scal(weight / num, sign(diff)))
        elif norm == caffe_pb2.HingeLossParameter.L2:
            diff.copy_(scal(weight * 2 / num, diff))
        else:
            fatal("Unknown Norm")
