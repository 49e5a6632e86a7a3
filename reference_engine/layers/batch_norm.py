"""BatchNorm. Caffe: src/caffe/layers/batch_norm_layer.cpp.

y = (x - mean) / sqrt(var + eps) per channel (axis 1), with no affine part. Blobs:
running mean sum, running variance sum, and the scale factor that divides both.
"""

import numpy as np
import torch

from .. import caffe_pb2
from ..checks import check_eq
from ..layer import Layer, register_layer
from .blob_proto import blobs_from_proto


@register_layer("BatchNorm")
class BatchNormLayer(Layer):
    may_run_in_place = True
    fixed_lr_mult = 0.0  # LayerSetUp masks the statistics from the solver (batch_norm_layer.cpp)

    @classmethod
    def blob_values(cls, rng, shapes):
        """Running mean, running variance (positive) and the factor that divides both
        (positive): global statistics that stay finite."""
        bounds = [(-1.0, 1.0), (0.5, 1.5), (0.5, 2.0)]
        return tuple(
            np.asarray(rng.uniform(low, high, size=shape), dtype=np.float32)
            for (low, high), shape in zip(bounds, shapes)
        )

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    @classmethod
    def param_blob_count(cls, param, num_bottoms):
        return len(param.blobs) if param.blobs else 3

    def layer_setup(self, bottom, top):
        p = self.param.batch_norm_param
        self.moving_average_fraction = p.moving_average_fraction
        # Statistics of the batch in TRAIN, the stored ones in TEST, unless the param says.
        self.use_global_stats = self.phase == caffe_pb2.TEST
        if p.HasField("use_global_stats"):
            self.use_global_stats = p.use_global_stats
        self.channels = 1 if bottom[0].num_axes == 1 else bottom[0].shape[1]
        self.eps = p.eps
        if not blobs_from_proto(self):
            self.blobs = [
                self.new_blob([self.channels]),
                self.new_blob([self.channels]),
                self.new_blob([1]),
            ]
        # The statistics are never learned: Caffe refuses a learning rate on them...
        for i in range(min(len(self.blobs), len(self.param.param))):
            check_eq(
                self.param.param[i].lr_mult,
                0.0,
                "this->layer_param_.param(i).lr_mult()",
                "0.f",
                "Cannot configure batch normalization statistics as layer parameters.",
            )
        # ...and gives every blob without a spec lr_mult 0, in its own copy of the LayerParameter.
        self.param = self.own_param(self.param, len(self.blobs))

    @classmethod
    def own_param(cls, param, num_blobs=None):
        """The LayerParameter after LayerSetUp: a `param { lr_mult: 0 }` for each blob without a spec.
        Net::AppendParam reads this copy (the solver sees lr 0); the net's flag loop does not."""
        num_blobs = cls.param_blob_count(param, 1) if num_blobs is None else num_blobs
        own = type(param)()
        own.CopyFrom(param)
        while len(own.param) < num_blobs:
            own.param.add().lr_mult = 0.0
        return own

    def reshape(self, bottom, top):
        if bottom[0].num_axes >= 1:
            # Blob::shape(1) on a 1-D blob fails its axis check, as in Caffe.
            check_eq(
                bottom[0].shape[bottom[0].canonical_axis_index(1)],
                self.channels,
                "bottom[0]->shape(1)",
                "channels_",
            )
        top[0].reshape(bottom[0].shape)

    def _per_channel(self, tensor):
        """Σ over spatial positions, then over the batch (two gemv, as Caffe)."""
        num = tensor.shape[0]
        return tensor.reshape(num, self.channels, -1).sum(2).sum(0)

    def _broadcast(self, per_channel, like):
        num = like.shape[0]
        return per_channel.view(1, self.channels, 1).expand(
            num, self.channels, like.numel() // (num * self.channels)
        )

    def forward(self, bottom, top):
        x = bottom[0].data
        num = x.shape[0]
        spatial_dim = x.numel() // (num * self.channels)
        scalar = lambda v: torch.tensor(v, dtype=x.dtype, device=x.device)
        if top[0] is not bottom[0]:
            top[0].data.copy_(x)
        y = top[0].data.view(num, self.channels, -1)
        if self.use_global_stats:
            stored = self.blobs[2].data.view(-1)[0]
            scale_factor = torch.zeros_like(stored) if stored == 0 else 1 / stored
            mean = scale_factor * self.blobs[0].data
            variance = scale_factor * self.blobs[1].data
        else:
            mean = scalar(1.0 / (num * spatial_dim)) * y.sum(2)
            mean = mean.sum(0)
        y -= self._broadcast(mean, y)
        if not self.use_global_stats:
            variance = (scalar(1.0 / (num * spatial_dim)) * (y * y).sum(2)).sum(0)
            # Running sums, updated by every TRAIN forward.
            maf = scalar(self.moving_average_fraction)
            self.blobs[2].data.mul_(maf).add_(1)
            self.blobs[0].data.copy_(mean + maf * self.blobs[0].data)
            m = x.numel() // self.channels
            correction = scalar(m) / (m - 1) if m > 1 else scalar(1.0)
            self.blobs[1].data.copy_(correction * variance + maf * self.blobs[1].data)
        self.std = torch.sqrt(variance + scalar(self.eps))
        self.temp = self._broadcast(self.std, y)
        y /= self.temp
        self.x_norm = y.clone()

    def backward(self, top, propagate_down, bottom):
        # Caffe writes the bottom diff whatever propagate_down says.
        dy = top[0].diff.reshape(self.x_norm.shape).clone()
        bottom_diff = bottom[0].diff.view(self.x_norm.shape)
        if self.use_global_stats:
            torch.div(dy, self.temp, out=bottom_diff)
            return
        num, _, spatial_dim = self.x_norm.shape
        dtype, device = dy.dtype, dy.device
        # dx = (dy - mean(dy) - mean(dy·y)·y) / sqrt(var + eps), means over batch and space.
        mean_dy_y = (dy * self.x_norm).sum(2).sum(0)
        result = self._broadcast(mean_dy_y, dy) * self.x_norm
        result = result + self._broadcast(dy.sum(2).sum(0), dy)
        result = dy + torch.tensor(-1.0 / (num * spatial_dim), dtype=dtype, device=device) * result
        torch.div(result, self.temp, out=bottom_diff)
