"""Embed. Caffe: src/caffe/layers/embed_layer.cpp.

Rows of a (input_dim, num_output) weight, picked by static_cast<int> of the bottom;
the index input has no gradient. Caffe only DCHECKs the index range (debug builds):
an index outside [0, input_dim) is refused here rather than guessed.
"""

import torch

from .. import fillers
from ..checks import Unsupported, check, check_gt
from ..layer import Layer, register_layer
from .blob_proto import blobs_from_proto


@register_layer("Embed")
class EmbedLayer(Layer):
    bottom_roles = {0: "index"}

    @classmethod
    def backward_abort(cls, param, bottom_need_backward):
        if bottom_need_backward and bottom_need_backward[0]:
            return 'Embed CHECKs !propagate_down[0]: "Can\'t backpropagate to EmbedLayer input."'
        return None

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    @classmethod
    def param_blob_count(cls, param, num_bottoms):
        if param.blobs:
            return len(param.blobs)
        return 2 if param.embed_param.bias_term else 1

    def layer_setup(self, bottom, top):
        p = self.param.embed_param
        self.num_output = p.num_output
        check_gt(self.num_output, 0, "N_", "0", "EmbedLayer num_output must be positive.")
        self.input_dim = p.input_dim
        check_gt(self.input_dim, 0, "K_", "0", "EmbedLayer input_dim must be positive.")
        self.bias_term = p.bias_term
        if not blobs_from_proto(self):
            self.blobs = [self.new_blob([self.input_dim, self.num_output])]
            fillers.fill(self.blobs[0], p.weight_filler)
            if self.bias_term:
                self.blobs.append(self.new_blob([self.num_output]))
                fillers.fill(self.blobs[1], p.bias_filler)

    def reshape(self, bottom, top):
        self.m = bottom[0].count()
        top[0].reshape(bottom[0].shape + [self.num_output])

    def _indices(self, bottom):
        # static_cast<int>: truncation towards zero.
        index = torch.trunc(bottom[0].data.reshape(-1)).long()
        if bool(((index < 0) | (index >= self.input_dim)).any()):
            raise Unsupported(f"Embed index outside [0, {self.input_dim}): Caffe reads out of bounds")
        return index

    def forward(self, bottom, top):
        weight = self.blobs[0].data.reshape(-1, self.num_output)
        y = weight[self._indices(bottom)]
        if self.bias_term:
            y = y + self.blobs[1].data.reshape(1, self.num_output)
        top[0].data.copy_(y.view_as(top[0].data))

    def backward(self, top, propagate_down, bottom):
        check(not propagate_down[0], "!propagate_down[0]", "Can't backpropagate to EmbedLayer input.")
        dy = top[0].diff.reshape(self.m, self.num_output)
        if self.param_propagate_down[0]:
            # Rows accumulate, one input position after another.
            weight_diff = self.blobs[0].diff.view(-1, self.num_output)
            for n, index in enumerate(self._indices(bottom).tolist()):
                weight_diff[index] += dy[n]
        if self.bias_term and self.param_propagate_down[1]:
            self.blobs[1].diff.add_(dy.sum(0).view_as(self.blobs[1].diff))
