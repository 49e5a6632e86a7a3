"""Deconvolution. Caffe: src/caffe/layers/deconv_layer.cpp (plus base_conv_layer.cpp).

Forward is Convolution's backward-data path (col2im), with the weight laid out
(channels, num_output / group, k...). There is no output-padding parameter.
"""

from ..layer import register_layer
from .base_conv import BaseConvolutionLayer


@register_layer("Deconvolution")
class DeconvolutionLayer(BaseConvolutionLayer):
    @classmethod
    def in_place_hazard(cls, param):
        return "the output overwrites the input it is computed from"

    reverse_dimensions = True

    def compute_output_shape(self):
        return [
            self.stride[i] * (self.input_spatial[i] - 1) + self.kernel_extent(i) - 2 * self.pad[i]
            for i in range(self.num_spatial_axes)
        ]

    def forward(self, bottom, top):
        if top[0].count() == 0 or bottom[0].count() == 0:
            return
        for b, t in zip(bottom, top):
            x = self.batched(b.data, self.channels, self.input_spatial)
            y = self.conv_backward_data(x, self.output_spatial, self.input_spatial)
            if self.bias_term:
                self.add_bias(y)
            t.data.copy_(y.reshape(t.data.shape))

    def backward(self, top, propagate_down, bottom):
        for i, (t, b) in enumerate(zip(top, bottom)):
            if t.count() == 0 or b.count() == 0:
                if propagate_down[i]:
                    b.diff.zero_()
                continue
            dy = self.batched(t.diff, self.num_output, self.output_spatial)
            if self.bias_term and self.param_propagate_down[1]:
                self.blobs[1].diff.add_(self.bias_diff(dy))
            # The weight diff accumulates, from im2col of the top diff.
            if self.param_propagate_down[0]:
                x = self.batched(b.data, self.channels, self.input_spatial)
                self.blobs[0].diff.add_(self.conv_weight_diff(dy, x, self.output_spatial, self.input_spatial))
            # The bottom diff is the convolution of the top diff (overwritten).
            if propagate_down[i]:
                dx = self.conv_forward(dy, self.output_spatial, self.input_spatial)
                b.diff.copy_(dx.reshape(b.diff.shape))
