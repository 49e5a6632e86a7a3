"""MVN. Caffe: src/caffe/layers/mvn_layer.cpp.

Mean (and variance) normalisation per (n, c), or per n with `across_channels`.
Caffe's details kept here: eps is added to the standard deviation, not to the
variance; the backward formula is the one for y = (x - mean) / sqrt(var + eps), not
the exact derivative of what forward computes; backward ignores propagate_down;
the top is always 4-D (num, channels, height, width) through the legacy accessors.
Steps write into the blobs' own tensors in Caffe's order, so in-place use computes
what Caffe does.
"""

import torch

from ..checks import check_le
from ..layer import Layer, register_layer


def legacy_shape(blob):
    """num(), channels(), height(), width(): absent axes read 1; more than 4 axes abort."""
    check_le(blob.num_axes, 4, "num_axes()", "4", "Cannot use legacy accessors on Blobs with > 4 axes.")
    return [blob.shape[i] if i < blob.num_axes else 1 for i in range(4)]


@register_layer("MVN")
class MVNLayer(Layer):
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def reshape(self, bottom, top):
        shape = legacy_shape(bottom[0])
        top[0].reshape(shape)
        p = self.param.mvn_param
        self.num = shape[0] if p.across_channels else shape[0] * shape[1]
        self.eps = p.eps

    def _scalar(self, value, like):
        return torch.tensor(value, dtype=like.dtype, device=like.device)

    def forward(self, bottom, top):
        dim = bottom[0].count() // self.num
        x = bottom[0].data.reshape(self.num, dim)
        y = top[0].data.view(self.num, dim)
        mean = x.sum(1, keepdim=True) * self._scalar(1.0 / dim, x)
        torch.add(x, -mean, out=y)
        if self.param.mvn_param.normalize_variance:
            variance = torch.pow(y, 2).sum(1, keepdim=True) * self._scalar(1.0 / dim, x)
            variance = torch.pow(variance, 0.5) + self._scalar(self.eps, x)
            self.variance = variance
            y.div_(variance)

    def backward(self, top, propagate_down, bottom):
        dim = bottom[0].count() // self.num
        top_data = top[0].data.view(self.num, dim)
        top_diff = top[0].diff.view(self.num, dim)
        bottom_diff = bottom[0].diff.view(self.num, dim)
        if self.param.mvn_param.normalize_variance:
            # Each line is one of Caffe's BLAS calls, into the same buffers.
            torch.mul(top_data, top_diff, out=bottom_diff)
            mean = bottom_diff.sum(1, keepdim=True)
            bottom_diff.copy_(mean.expand(-1, dim))
            bottom_diff.mul_(top_data)
            mean = top_diff.sum(1, keepdim=True)
            bottom_diff.add_(mean)
            torch.add(top_diff, bottom_diff * self._scalar(-1.0 / dim, top_data), out=bottom_diff)
            bottom_diff.div_(self.variance)
        else:
            mean = top_diff.sum(1, keepdim=True) * self._scalar(1.0 / dim, top_data)
            torch.add(top_diff, -mean, out=bottom_diff)
