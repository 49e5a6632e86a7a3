"""InnerProduct. Caffe: src/caffe/layers/inner_product_layer.cpp."""

from .. import fillers
from ..checks import check_eq
from ..layer import Layer, register_layer
from .blob_proto import blobs_from_proto


@register_layer("InnerProduct")
class InnerProductLayer(Layer):
    """y = x W^T + b over the axes after `axis` (x W with `transpose: true`)."""

    @classmethod
    def in_place_hazard(cls, param):
        return "the gemm writes the output over the input it reads"

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    @classmethod
    def param_blob_count(cls, param, num_bottoms):
        if param.blobs:
            return len(param.blobs)
        return 2 if param.inner_product_param.bias_term else 1

    def layer_setup(self, bottom, top):
        p = self.param.inner_product_param
        self.num_output = p.num_output
        self.bias_term = p.bias_term
        self.transpose = p.transpose
        self.axis = bottom[0].canonical_axis_index(p.axis)
        self.k = bottom[0].count(self.axis)
        # Stored blobs are taken as they are: Caffe checks no shape here.
        if not blobs_from_proto(self):
            weight_shape = [self.k, self.num_output] if self.transpose else [self.num_output, self.k]
            self.blobs = [self.new_blob(weight_shape)]
            fillers.fill(self.blobs[0], p.weight_filler)
            if self.bias_term:
                self.blobs.append(self.new_blob([self.num_output]))
                fillers.fill(self.blobs[1], p.bias_filler)

    def reshape(self, bottom, top):
        axis = bottom[0].canonical_axis_index(self.param.inner_product_param.axis)
        check_eq(
            self.k,
            bottom[0].count(axis),
            "K_",
            "new_K",
            "Input size incompatible with inner product parameters.",
        )
        self.m = bottom[0].count(0, axis)
        top[0].reshape(bottom[0].shape[:axis] + [self.num_output])

    def weight(self):
        """W as (num_output, K) whichever way it is stored."""
        w = (
            self.blobs[0].data.reshape(-1, self.num_output)
            if self.transpose
            else self.blobs[0].data.reshape(self.num_output, -1)
        )
        return w.T if self.transpose else w

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.m, self.k)
        y = x @ self.weight().T
        if self.bias_term:
            y += self.blobs[1].data.reshape(1, self.num_output)
        top[0].data.copy_(y.view_as(top[0].data))

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff.reshape(self.m, self.num_output)
        x = bottom[0].data.reshape(self.m, self.k)
        # Param diffs accumulate (gemm/gemv beta 1): iter_size and shared weights depend on it.
        if self.param_propagate_down[0]:
            dw = x.T @ dy if self.transpose else dy.T @ x
            self.blobs[0].diff.add_(dw.view_as(self.blobs[0].diff))
        if self.bias_term and self.param_propagate_down[1]:
            self.blobs[1].diff.add_(dy.sum(0).view_as(self.blobs[1].diff))
        # The bottom diff is overwritten (gemm beta 0).
        if propagate_down[0]:
            bottom[0].diff.copy_((dy @ self.weight()).view_as(bottom[0].diff))
