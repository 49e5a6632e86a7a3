"""Reshape. Caffe: src/caffe/layers/reshape_layer.cpp, include/caffe/layers/reshape_layer.hpp.

The top shares the bottom's data and diff from Reshape on; forward and backward are
empty, so the gradient reaches the bottom whatever propagate_down says.
"""

from ..checks import check_eq, check_ge, check_gt, check_le, check_ne
from ..layer import Layer, register_layer


@register_layer("Reshape")
class ReshapeLayer(Layer):
    @classmethod
    def in_place_hazard(cls, param):
        return "Caffe aborts: Reshape Layer does not allow in-place computation (reshape_layer.cpp CHECK)"

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom, top):
        check_ne(
            id(top[0]),
            id(bottom[0]),
            "top[0]",
            "bottom[0]",
            "Reshape Layer does not allow in-place computation.",
        )
        self.inferred_axis = -1
        self.copy_axes = []
        self.constant_count = 1
        for i, dim in enumerate(self.param.reshape_param.shape.dim):
            if dim == 0:
                self.copy_axes.append(i)
            elif dim == -1:
                check_eq(
                    self.inferred_axis,
                    -1,
                    "inferred_axis_",
                    "-1",
                    "new shape contains multiple -1 dims; at most a single (1) value of -1 may be specified",
                )
                self.inferred_axis = i
            else:
                self.constant_count *= dim

    def reshape(self, bottom, top):
        p = self.param.reshape_param
        num_axes_in = bottom[0].num_axes
        start = p.axis if p.axis >= 0 else num_axes_in + p.axis + 1
        check_ge(start, 0, "start_axis", "0", f"axis {p.axis} out of range")
        check_le(
            start,
            num_axes_in,
            "start_axis",
            "bottom[0]->num_axes()",
            f"axis {p.axis} out of range for {num_axes_in}-D input blob",
        )
        check_ge(p.num_axes, -1, "num_axes", "-1", "num_axes must be >= 0, or -1 for all")
        end = num_axes_in if p.num_axes == -1 else start + p.num_axes
        check_le(
            end,
            num_axes_in,
            "end_axis",
            "bottom[0]->num_axes()",
            "end_axis = axis + num_axes is out of range",
        )
        new_dims = list(p.shape.dim)
        top_shape = bottom[0].shape[:start] + new_dims + bottom[0].shape[end:]
        for i in self.copy_axes:
            check_gt(
                num_axes_in,
                start + i,
                "bottom[0]->num_axes()",
                "start_axis + copy_axis_index",
                "new shape contains a 0, but there was no corresponding bottom axis to copy",
            )
            top_shape[start + i] = bottom[0].shape[start + i]
        if self.inferred_axis >= 0:
            explicit_count = self.constant_count * bottom[0].count(0, start) * bottom[0].count(end)
            for i in self.copy_axes:
                explicit_count *= top_shape[start + i]
            check_eq(
                0,
                bottom[0].count() % explicit_count,
                "0",
                "bottom[0]->count() % explicit_count",
                f"bottom count ({bottom[0].count()}) must be divisible by the product of the specified "
                f"dimensions ({explicit_count})",
            )
            top_shape[start + self.inferred_axis] = bottom[0].count() // explicit_count
        top[0].reshape(top_shape)
        check_eq(
            top[0].count(),
            bottom[0].count(),
            "top[0]->count()",
            "bottom[0]->count()",
            "output count must match input count",
        )
        top[0].share_data(bottom[0])
        top[0].share_diff(bottom[0])

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        pass
