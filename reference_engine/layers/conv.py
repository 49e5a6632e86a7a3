"""Convolution. Caffe: src/caffe/layers/conv_layer.cpp (plus base_conv_layer.cpp)."""

from ..layer import register_layer
from .base_conv import BaseConvolutionLayer


@register_layer("Convolution")
class ConvolutionLayer(BaseConvolutionLayer):
    """Cross-correlation per group, bottom i → top i with the same weights; then + bias."""

    @classmethod
    def in_place_hazard(cls, param):
        return "im2col reads the input while the output overwrites it"

    def compute_output_shape(self):
        # C++ integer division truncates towards 0: a window that overhangs the padded input
        # by less than one stride still gives one output (conv_layer.cpp, compute_output_shape).
        out = []
        for i in range(self.num_spatial_axes):
            span = self.input_spatial[i] + 2 * self.pad[i] - self.kernel_extent(i)
            out.append(int(span / self.stride[i]) + 1)
        return out

    def forward(self, bottom, top):
        if top[0].count() == 0 or bottom[0].count() == 0:
            return
        # The bias goes in with the convolution: one pass less over the top, and the sum
        # differs from Caffe's (gemm, then a gemm with ones) only in rounding order.
        bias = self.blobs[1].data if self.bias_term else None
        for b, t in zip(bottom, top):
            x = self.batched(b.data, self.channels, self.input_spatial)
            y = self.batched(t.data, self.num_output, self.output_spatial)
            for images in self.image_groups():
                y[images] = self.conv_forward(x[images], self.input_spatial, self.output_spatial, bias)

    def backward(self, top, propagate_down, bottom):
        for i, (t, b) in enumerate(zip(top, bottom)):
            if t.count() == 0 or b.count() == 0:
                # col2im of nothing: Caffe still zeroes the bottom diff (col2im starts from 0).
                if propagate_down[i]:
                    b.diff.zero_()
                continue
            dy = self.batched(t.diff, self.num_output, self.output_spatial)
            x = self.batched(b.data, self.channels, self.input_spatial)
            dx = self.batched(b.diff, self.channels, self.input_spatial)
            # Param diffs accumulate (gemv/gemm beta 1), one top after another, image group
            # after image group (Caffe: image after image).
            if self.bias_term and self.param_propagate_down[1]:
                self.blobs[1].diff.add_(self.bias_diff(dy))
            for images in self.image_groups():
                if self.param_propagate_down[0]:
                    self.blobs[0].diff.add_(
                        self.conv_weight_diff(x[images], dy[images], self.input_spatial, self.output_spatial)
                    )
                # The bottom diff is overwritten (gemm beta 0, col2im).
                if propagate_down[i]:
                    dx[images] = self.conv_backward_data(dy[images], self.input_spatial, self.output_spatial)
