"""LRN. Caffe: src/caffe/layers/lrn_layer.cpp.

ACROSS_CHANNELS sums each channel's window of squares directly, vectorised over the
channels; Caffe keeps a running window (add the head channel, subtract the tail), which
rounds differently: the two differ by float rounding of the window's terms. WITHIN_CHANNEL
is the sub-layer chain Caffe builds (Split, Power 2, AVE Pooling, Power, Eltwise PROD),
written out with each sub-layer's operations in its order; `k` plays no part there.
The steps write into the blobs' own tensors, so in-place use computes what Caffe does.
"""

import torch

from .. import caffe_pb2
from ..checks import check_eq, fatal
from ..layer import Layer, register_layer

ACROSS_CHANNELS, WITHIN_CHANNEL = 0, 1  # LRNParameter.NormRegion


@register_layer("LRN")
class LRNLayer(Layer):
    @classmethod
    def in_place_hazard(cls, param):
        if param.lrn_param.norm_region == caffe_pb2.LRNParameter.ACROSS_CHANNELS:
            return (
                "the forward (lrn_layer.cpp) overwrites x before multiplying by the scale it computed from x"
            )
        return None

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom, top):
        p = self.param.lrn_param
        self.size = p.local_size
        check_eq(self.size % 2, 1, "size_ % 2", "1", "LRN only supports odd values for local_size")
        self.pre_pad = (self.size - 1) // 2
        self.alpha, self.beta, self.k = p.alpha, p.beta, p.k
        self.norm_region = p.norm_region

    def reshape(self, bottom, top):
        check_eq(
            4,
            bottom[0].num_axes,
            "4",
            "bottom[0]->num_axes()",
            "Input must have 4 axes, corresponding to (num, channels, height, width)",
        )
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        if self.norm_region == ACROSS_CHANNELS:
            self._cross_channel_forward(bottom[0], top[0])
        elif self.norm_region == WITHIN_CHANNEL:
            self._within_channel_forward(bottom[0], top[0])
        else:
            fatal("Unknown normalization region.")

    def backward(self, top, propagate_down, bottom):
        if self.norm_region == ACROSS_CHANNELS:
            # Caffe computes this whatever propagate_down says.
            self._cross_channel_backward(top[0], bottom[0])
        elif self.norm_region == WITHIN_CHANNEL:
            if propagate_down[0]:
                self._within_channel_backward(top[0], bottom[0])
        else:
            fatal("Unknown normalization region.")

    # ---- ACROSS_CHANNELS ---------------------------------------------------------------------

    def _scalar(self, value, like):
        return torch.tensor(value, dtype=like.dtype, device=like.device)

    def _cross_channel_forward(self, bottom, top):
        x = bottom.data
        n, c, h, w = x.shape
        alpha_over_size = self._scalar(self.alpha, x) / self.size
        # alpha_over_size * x², zero-padded by pre_pad channels on each side: the pads are never
        # written, so they stay zero.
        padded = self.scratch("padded", (n, c + self.size - 1, h, w))
        middle = padded[:, self.pre_pad : self.pre_pad + c]
        torch.mul(x, x, out=middle)
        middle.mul_(alpha_over_size)
        # k + the window's terms in channel order, as Caffe sums channel 0's window; Caffe then
        # slides that window along (add the head, subtract the tail), which rounds differently.
        scale = self.scratch("scale", x.shape)
        scale.fill_(self.k)
        for j in range(self.size):
            scale.add_(padded[:, j : j + c])
        self.scale = scale
        # powx into the top, then multiply by the bottom: in place, the bottom is already gone.
        torch.pow(scale, -self._scalar(self.beta, x), out=top.data)
        # Backward needs scale^-beta again: Caffe recomputes it, a copy is cheaper than pow.
        self.scale_power = self.scratch("scale_power", x.shape)
        self.scale_power.copy_(top.data)
        top.data.mul_(bottom.data)

    def _cross_channel_backward(self, top, bottom):
        n, c, h, w = self.scale.shape
        cache_ratio = float(self._scalar(2.0 * self.alpha * self.beta / self.size, self.scale))
        inverse_pre_pad = self.size - (self.size + 1) // 2
        bottom_diff = bottom.diff
        # powx into the bottom diff, then times the top diff: in place, the top diff is gone.
        bottom_diff.copy_(self.scale_power)
        bottom_diff.mul_(top.diff)
        # top_diff * top_data / scale, zero-padded on the channel axis (pads never written).
        padded_ratio = self.scratch("padded_ratio", (n, c + self.size - 1, h, w))
        middle = padded_ratio[:, inverse_pre_pad : inverse_pre_pad + c]
        torch.mul(top.diff, top.data, out=middle)
        middle.div_(self.scale)
        # Each channel's window of ratios (Caffe slides it as a running sum), times the bottom.
        accum = self.scratch("accum", self.scale.shape)
        accum.copy_(padded_ratio[:, 0:c])
        for j in range(1, self.size):
            accum.add_(padded_ratio[:, j : j + c])
        accum.mul_(bottom.data)
        bottom_diff.add_(accum, alpha=-cache_ratio)

    # ---- WITHIN_CHANNEL ----------------------------------------------------------------------

    def _within_channel_forward(self, bottom, top):
        x = bottom.data
        self.square_input = x  # Split shares the bottom's data
        self.square_output = torch.pow(x, 2)
        self.pool_output = self._average_pool(self.square_output)
        # Power(power -beta, scale alpha, shift 1).
        power, scale = -self._scalar(self.beta, x), self._scalar(self.alpha, x)
        if power * scale == 0:
            self.power_output = torch.ones_like(x)
        else:
            y = self.pool_output.clone()
            if scale != 1:
                y = y * scale
            y = y + 1
            if power != 1:
                y = torch.pow(y, power)
            self.power_output = y
        # Eltwise PROD of the Split's first top and the Power output.
        torch.mul(self.square_input, self.power_output, out=top.data)

    def _average_pool(self, values):
        """AVE Pooling(kernel local_size, pad pre_pad, stride 1): the divisor is always size²."""
        n, c, h, w = values.shape
        padded = torch.zeros(
            (n, c, h + 2 * self.pre_pad, w + 2 * self.pre_pad),
            dtype=values.dtype,
            device=values.device,
        )
        padded[:, :, self.pre_pad : self.pre_pad + h, self.pre_pad : self.pre_pad + w] = values
        total = torch.zeros_like(values)
        for i in range(self.size):
            for j in range(self.size):
                total = total + padded[:, :, i : i + h, j : j + w]
        return total / (self.size * self.size)

    def _within_channel_backward(self, top, bottom):
        x = bottom.data
        n, c, h, w = x.shape
        dy = top.diff
        # Eltwise PROD backward (stable_prod_grad): each input's diff is the other input times dy.
        product_input_diff = self.power_output * dy
        power_output_diff = self.square_input * dy
        # Power(power -beta, scale alpha, shift 1) backward.
        power, scale = -self._scalar(self.beta, x), self._scalar(self.alpha, x)
        diff_scale = power * scale
        if diff_scale == 0 or power == 1:
            pool_output_diff = torch.full_like(x, float(diff_scale))
        elif power == 2:
            pool_output_diff = (diff_scale * scale) * self.pool_output + diff_scale * 1
        else:
            base = self.pool_output
            if scale != 1:
                base = base * scale
            base = base + 1
            pool_output_diff = self.power_output / base
            if diff_scale != 1:
                pool_output_diff = pool_output_diff * diff_scale
        if diff_scale != 0:
            pool_output_diff = power_output_diff * pool_output_diff
        # AVE Pooling backward: every output spreads diff / size² over its window, in (ph, pw) order.
        share = pool_output_diff / (self.size * self.size)
        padded = torch.zeros(
            (n, c, h + 2 * self.pre_pad, w + 2 * self.pre_pad), dtype=x.dtype, device=x.device
        )
        for i in reversed(range(self.size)):
            for j in reversed(range(self.size)):
                padded[:, :, i : i + h, j : j + w] += share
        square_output_diff = padded[:, :, self.pre_pad : self.pre_pad + h, self.pre_pad : self.pre_pad + w]
        # Power(power 2) backward: 2 x, times the diff.
        square_input_diff = 2 * self.square_input * square_output_diff
        # Split backward: the sum of its two tops' diffs.
        torch.add(product_input_diff, square_input_diff, out=bottom.diff)
