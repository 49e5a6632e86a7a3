"""Softmax. Caffe: src/caffe/layers/softmax_layer.cpp."""

import torch

from ..layer import Layer, register_layer
from .neuron import libm


@register_layer("Softmax")
class SoftmaxLayer(Layer):
    """y = exp(x - max) / sum(exp(x - max)) along ``axis``, the max taken per column.

    Backward writes the bottom diff whatever propagate_down says, as Caffe does."""

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def reshape(self, bottom, top):
        self.axis = bottom[0].canonical_axis_index(self.param.softmax_param.axis)
        top[0].reshape_like(bottom[0])
        self.outer_num = bottom[0].count(0, self.axis)
        self.inner_num = bottom[0].count(self.axis + 1)

    def _columns(self, tensor):
        """(outer, channels, inner): a softmax runs along axis 1 of this view."""
        return tensor.reshape(self.outer_num, -1, self.inner_num)

    def forward(self, bottom, top):
        x = self._columns(bottom[0].data)
        shifted = x - x.amax(dim=1, keepdim=True)
        e = libm(torch.exp, shifted)
        top[0].data.copy_((e / e.sum(dim=1, keepdim=True)).reshape(top[0].data.shape))

    def backward(self, top, propagate_down, bottom):
        y, dy = self._columns(top[0].data), self._columns(top[0].diff)
        dx = (dy - (dy * y).sum(dim=1, keepdim=True)) * y
        bottom[0].diff.copy_(dx.reshape(bottom[0].diff.shape))
