"""MultinomialLogisticLoss. Caffe: src/caffe/layers/multinomial_logistic_loss_layer.cpp."""

import torch

from ..checks import check_eq, fatal
from ..layer import register_layer
from .loss import LOG_THRESHOLD, LossLayer, label_indices
from .neuron import legacy_shape, libm, std_max


@register_layer("MultinomialLogisticLoss")
class MultinomialLogisticLossLayer(LossLayer):
    """loss = -sum(log(max(p[label], 1e-20))) / num; bottom 0 holds probabilities, not scores."""

    bottom_roles = {1: "label"}

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        check_eq(legacy_shape(bottom[1], 1), 1, "bottom[1]->channels()", "1")
        check_eq(legacy_shape(bottom[1], 2), 1, "bottom[1]->height()", "1")
        check_eq(legacy_shape(bottom[1], 3), 1, "bottom[1]->width()", "1")

    def _picked(self, bottom):
        """(labels, num, dim, the clamped probability of each sample's label)."""
        num = legacy_shape(bottom[0], 0)
        dim = bottom[0].count() // num
        labels = label_indices(bottom[1].data.reshape(-1)[:num], dim, self.type)
        p = bottom[0].data.reshape(num, dim)[torch.arange(num), labels]
        return labels, num, dim, std_max(p, LOG_THRESHOLD)

    def forward(self, bottom, top):
        _, num, _, prob = self._picked(bottom)
        top[0].data.copy_(-libm(torch.log, prob).sum() / num)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            fatal(f"{self.type} Layer cannot backpropagate to label inputs.")
        if not propagate_down[0]:
            return
        labels, num, dim, prob = self._picked(bottom)
        scale = -self.loss_weight(top) / num
        diff = bottom[0].diff.reshape(num, dim)
        diff.zero_()
        diff[torch.arange(num), labels] = scale / prob
