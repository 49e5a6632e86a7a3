"""Split, the layer the net inserts where a blob has several readers.

Caffe: src/caffe/layers/split_layer.cpp. Every top shares the bottom's data;
backward sums the tops' diffs into the bottom diff.
"""

import torch

from ..checks import check_eq, check_ne
from ..layer import Layer, register_layer


@register_layer("Split")
class SplitLayer(Layer):
    @classmethod
    def in_place_hazard(cls, param):
        return "Caffe aborts: Split Layer does not allow in-place computation (split_layer.cpp CHECK)"

    exact_num_bottom_blobs = 1
    min_top_blobs = 1

    def reshape(self, bottom, top):
        for t in top:
            check_ne(
                id(t),
                id(bottom[0]),
                "top[i]",
                "bottom[0]",
                "Split Layer does not allow in-place computation.",
            )
            t.reshape(bottom[0].shape)
            check_eq(bottom[0].count(), t.count(), "count_", "top[i]->count()")

    def forward(self, bottom, top):
        for t in top:
            t.share_data(bottom[0])

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if len(top) == 1:
            bottom[0].diff.copy_(top[0].diff)
            return
        # top0 + top1, then the rest one by one, in top order.
        torch.add(top[0].diff, top[1].diff, out=bottom[0].diff)
        for t in top[2:]:
            bottom[0].diff.add_(t.diff)
