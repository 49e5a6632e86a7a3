"""Crop. Caffe: src/caffe/layers/crop_layer.cpp.

bottom[1] only gives the shape of the axes from `axis` on; its diff is never written.
"""

from ..checks import check_eq, check_ge, check_lt
from ..layer import Layer, register_layer


@register_layer("Crop")
class CropLayer(Layer):
    @classmethod
    def in_place_hazard(cls, param):
        return "Backward_cpu (crop_layer.cpp) zeroes the bottom diff before copying the top diff: in place, 0"

    exact_num_bottom_blobs = 2
    exact_num_top_blobs = 1

    def layer_setup(self, bottom, top):
        p = self.param.crop_param
        check_eq(len(bottom), 2, "bottom.size()", "2", "Wrong number of bottom blobs.")
        input_dim = bottom[0].num_axes
        start = bottom[0].canonical_axis_index(p.axis)
        check_lt(start, input_dim, "start_axis", "input_dim", "crop axis bigger than input dim")
        if len(p.offset) > 1:
            check_eq(
                start + len(p.offset),
                input_dim,
                "start_axis + param.offset_size()",
                "input_dim",
                "number of offset values specified must be equal to the number of dimensions following axis.",
            )

    def reshape(self, bottom, top):
        p = self.param.crop_param
        start = bottom[0].canonical_axis_index(p.axis)
        new_shape = list(bottom[0].shape)
        self.offsets = [0] * bottom[0].num_axes
        for i in range(start, bottom[0].num_axes):
            # Blob::shape(i) on bottom[1] checks that it has axis i.
            size = bottom[1].shape[bottom[1].canonical_axis_index(i)]
            offset = 0
            if len(p.offset) == 1:
                offset = p.offset[0]
            elif len(p.offset) > 1:
                offset = p.offset[i - start]
            check_ge(
                bottom[0].shape[i] - offset,
                size,
                "bottom[0]->shape(i) - crop_offset",
                "bottom[1]->shape(i)",
                f"the crop for dimension {i} is out-of-bounds with size {size} and offset {offset}",
            )
            new_shape[i] = size
            self.offsets[i] = offset
        top[0].reshape(new_shape)

    def _window(self, top):
        return tuple(slice(o, o + n) for o, n in zip(self.offsets, top[0].shape))

    def forward(self, bottom, top):
        top[0].data.copy_(bottom[0].data[self._window(top)])

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            # Zeroed, then the top diff copied into the window.
            bottom[0].diff.zero_()
            bottom[0].diff[self._window(top)] = top[0].diff
