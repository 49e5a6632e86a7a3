"""Accuracy. Caffe: src/caffe/layers/accuracy_layer.cpp, include/caffe/layers/accuracy_layer.hpp."""

import math

import torch

from ..checks import check_le, not_implemented
from ..layer import Layer, register_layer
from .loss import label_axes, valid_labels


@register_layer("Accuracy")
class AccuracyLayer(Layer):
    """Top 0: the fraction of non-ignored labels ranked within the top_k scores along
    ``axis``; top 1 (optional): the same per class.

    Ties with the true class's score follow self.semantics.accuracy_ties_by_count:
    master counts every other class scoring >= the true one against it; 1.0 ranks
    (score, class index) pairs, so a tied class with a larger index ranks ahead and a
    smaller one behind. With every label ignored master gives 0 and 1.0 gives 0/0 (NaN)."""

    has_backward = False
    bottom_roles = {1: "label"}
    label_axis_param = "accuracy_param"

    @classmethod
    def backward_abort(cls, param, bottom_need_backward):
        if any(bottom_need_backward):
            return "Accuracy's Backward_cpu is NOT_IMPLEMENTED once any bottom needs backward"
        return None

    exact_num_bottom_blobs = 2
    min_top_blobs = 1
    max_top_blobs = 2

    def layer_setup(self, bottom, top):
        p = self.param.accuracy_param
        self.top_k = p.top_k
        self.ignore_label = p.ignore_label if p.HasField("ignore_label") else None

    def reshape(self, bottom, top):
        check_le(
            self.top_k,
            bottom[0].count() // bottom[1].count(),
            "top_k_",
            "bottom[0]->count() / bottom[1]->count()",
            "top_k must be less than or equal to the number of classes.",
        )
        self.axis, self.outer_num, self.inner_num = label_axes(
            bottom, self.param.accuracy_param.axis, "label"
        )
        top[0].reshape([])
        if len(top) > 1:
            top[1].reshape([bottom[0].shape[self.axis]])

    def forward(self, bottom, top):
        num_labels = bottom[0].shape[self.axis]
        scores = bottom[0].data.reshape(self.outer_num, num_labels, self.inner_num)
        labels, valid = valid_labels(
            bottom[1].data.reshape(self.outer_num, 1, self.inner_num),
            num_labels,
            self.type,
            self.ignore_label,
        )
        true_score = scores.gather(1, labels)
        if self.semantics.accuracy_ties_by_count:
            # The true class counts itself among the scores >= its own, hence the -1.
            ahead = (scores >= true_score).sum(dim=1, keepdim=True) - 1
        else:
            classes = torch.arange(num_labels).reshape(1, -1, 1)
            ahead = ((scores > true_score) | ((scores == true_score) & (classes > labels))).sum(
                dim=1, keepdim=True
            )
        hit = valid & (ahead < self.top_k)
        count = int(valid.sum())
        accuracy = float(hit.sum())
        if count == 0:
            top[0].data.fill_(0.0 if self.semantics.accuracy_ties_by_count else math.nan)
        else:
            top[0].data.fill_(accuracy / count)
        if len(top) > 1:
            flat_labels, flat_valid, flat_hit = (
                labels.reshape(-1),
                valid.reshape(-1),
                hit.reshape(-1),
            )
            totals = torch.zeros(num_labels, dtype=self.dtype).index_add_(
                0, flat_labels, flat_valid.to(self.dtype)
            )
            hits = torch.zeros(num_labels, dtype=self.dtype).index_add_(
                0, flat_labels, flat_hit.to(self.dtype)
            )
            per_class = torch.where(
                totals == 0, torch.zeros_like(hits), hits / torch.where(totals == 0, 1, totals)
            )
            top[1].data.copy_(per_class)

    def backward(self, top, propagate_down, bottom):
        # Accuracy is no loss: asking for any bottom's gradient aborts.
        for flag in propagate_down:
            if flag:
                not_implemented()
