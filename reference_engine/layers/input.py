"""Input. Caffe: src/caffe/layers/input_layer.cpp, include/caffe/layers/input_layer.hpp."""

from ..checks import check
from ..layer import Layer, register_layer


@register_layer("Input")
class InputLayer(Layer):
    """Net inputs: tops shaped once at setup; reshape, forward and backward do nothing."""

    is_source = True
    exact_num_bottom_blobs = 0
    min_top_blobs = 1

    def layer_setup(self, bottom, top):
        shapes = self.param.input_param.shape
        check(
            len(shapes) in (0, 1, len(top)),
            "num_shape == 0 || num_shape == 1 || num_shape == num_top",
            "Must specify 'shape' once, once per top blob, or not at all: "
            f"{len(top)} tops vs. {len(shapes)} shapes.",
        )
        for i, t in enumerate(top):
            if shapes:
                t.reshape(list(shapes[0 if len(shapes) == 1 else i].dim))

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        pass
