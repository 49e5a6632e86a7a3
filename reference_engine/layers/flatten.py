"""Flatten. Caffe: src/caffe/layers/flatten_layer.cpp.

Forward shares the bottom's data. Backward makes the bottom's diff *be* the top's
diff (Blob::ShareDiff), whatever propagate_down says, and it stays aliased after.
"""

from ..checks import check_eq, check_ne
from ..layer import Layer, register_layer


@register_layer("Flatten")
class FlattenLayer(Layer):
    backward_repoints_bottom_diff = True  # ShareDiff (flatten_layer.cpp)

    @classmethod
    def in_place_hazard(cls, param):
        return "Caffe aborts: Flatten Layer does not allow in-place computation (flatten_layer.cpp CHECK)"

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def reshape(self, bottom, top):
        check_ne(
            id(top[0]),
            id(bottom[0]),
            "top[0]",
            "bottom[0]",
            "Flatten Layer does not allow in-place computation.",
        )
        p = self.param.flatten_param
        start = bottom[0].canonical_axis_index(p.axis)
        end = bottom[0].canonical_axis_index(p.end_axis)
        shape = bottom[0].shape[:start] + [bottom[0].count(start, end + 1)] + bottom[0].shape[end + 1 :]
        top[0].reshape(shape)
        check_eq(top[0].count(), bottom[0].count(), "top[0]->count()", "bottom[0]->count()")

    def forward(self, bottom, top):
        top[0].share_data(bottom[0])

    def backward(self, top, propagate_down, bottom):
        bottom[0].share_diff(top[0])
