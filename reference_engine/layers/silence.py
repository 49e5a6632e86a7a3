"""Silence. Caffe: src/caffe/layers/silence_layer.cpp, include/caffe/layers/silence_layer.hpp.

Consumes its bottoms; backward (only reached under force_backward) zeroes their diffs.
"""

from ..layer import Layer, register_layer


@register_layer("Silence")
class SilenceLayer(Layer):
    min_bottom_blobs = 1
    exact_num_top_blobs = 0

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        for i, b in enumerate(bottom):
            if propagate_down[i]:
                b.diff.zero_()
