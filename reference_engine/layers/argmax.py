"""ArgMax. Caffe: src/caffe/layers/argmax_layer.cpp, include/caffe/layers/argmax_layer.hpp."""

import torch

from ..checks import check_ge, check_le, not_implemented
from ..layer import Layer, register_layer


@register_layer("ArgMax")
class ArgMaxLayer(Layer):
    """The top_k classes (and with out_max_val their scores) of each instance.

    Without ``axis``: over the flattened count(1) values; top (N, 1, top_k, ...) of
    indices, or (N, 2, top_k, ...) of indices then values with out_max_val. With
    ``axis``: the bottom's shape with shape[axis] = top_k, holding indices, or values
    only with out_max_val. Order is std::partial_sort with std::greater on
    (value, index): descending, a tie going to the larger index."""

    has_backward = False

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom, top):
        p = self.param.argmax_param
        self.out_max_val = p.out_max_val
        self.top_k = p.top_k
        self.has_axis = p.HasField("axis")
        check_ge(self.top_k, 1, "top_k_", "1", "top k must not be less than 1.")
        if self.has_axis:
            self.axis = bottom[0].canonical_axis_index(p.axis)
            check_ge(self.axis, 0, "axis_", "0", "axis must not be less than 0.")
            check_le(
                self.axis,
                bottom[0].num_axes,
                "axis_",
                "bottom[0]->num_axes()",
                "axis must be less than or equal to the number of axis.",
            )
            check_le(
                self.top_k,
                bottom[0].shape[self.axis],
                "top_k_",
                "bottom[0]->shape(axis_)",
                "top_k must be less than or equal to the dimension of the axis.",
            )
        else:
            check_le(
                self.top_k,
                bottom[0].count(1),
                "top_k_",
                "bottom[0]->count(1)",
                "top_k must be less than or equal to the dimension of the flattened bottom blob per instance.",
            )

    def reshape(self, bottom, top):
        if self.has_axis:
            shape = list(bottom[0].shape)
            shape[self.axis] = self.top_k
        else:
            shape = [1] * max(3, bottom[0].num_axes)
            shape[0] = bottom[0].shape[0]
            shape[2] = self.top_k
            if self.out_max_val:
                shape[1] = 2
        top[0].reshape(shape)

    def forward(self, bottom, top):
        x = bottom[0].data
        if self.has_axis:
            dim = bottom[0].shape[self.axis]
            columns = x.reshape(bottom[0].count(0, self.axis), dim, bottom[0].count(self.axis + 1))
        else:
            dim = bottom[0].count(1)
            columns = x.reshape(bottom[0].shape[0], dim, 1)
        # Reversing first makes a stable descending sort put the larger index first in a tie.
        values, reversed_index = torch.sort(columns.flip(1), dim=1, descending=True, stable=True)
        values = values[:, : self.top_k]
        index = (dim - 1 - reversed_index[:, : self.top_k]).to(x.dtype)
        if self.has_axis:
            out = values if self.out_max_val else index
        elif self.out_max_val:
            out = torch.cat([index, values], dim=1)  # per instance: top_k indices, then top_k values
        else:
            out = index
        top[0].data.copy_(out.reshape(top[0].data.shape))

    def backward(self, top, propagate_down, bottom):
        not_implemented()
