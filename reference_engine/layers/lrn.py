"""LRN. Caffe: src/caffe/layers/lrn_layer.cpp.

ACROSS_CHANNELS sums squares with Caffe's running window (add the head channel,
subtract the tail), which rounds differently from a direct sum. WITHIN_CHANNEL is
the sub-layer chain Caffe builds (Split, Power 2, AVE Pooling, Power, Eltwise PROD),
written out with each sub-layer's operations in its order; `k` plays no part there.
The steps write into the blobs' own tensors, so in-place use computes what Caffe does.
"""

import torch

from ..checks import check_eq, fatal
from ..layer import Layer, register_layer

ACROSS_CHANNELS, WITHIN_CHANNEL = 0, 1  # LRNParameter.NormRegion


@register_layer("LRN")
class LRNLayer(Layer):
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
        padded_square = torch.zeros((n, c + self.size - 1, h, w), dtype=x.dtype, device=x.device)
        padded_square[:, self.pre_pad : self.pre_pad + c] = x * x
        scale = torch.empty_like(x)
        first = torch.full((n, h, w), self.k, dtype=x.dtype, device=x.device)
        for j in range(self.size):
            first = first + alpha_over_size * padded_square[:, j]
        scale[:, 0] = first
        for j in range(1, c):
            running = scale[:, j - 1] + alpha_over_size * padded_square[:, j + self.size - 1]
            scale[:, j] = running - alpha_over_size * padded_square[:, j - 1]
        self.scale = scale
        # powx into the top, then multiply by the bottom: in place, the bottom is already gone.
        torch.pow(scale, -self._scalar(self.beta, x), out=top.data)
        top.data.mul_(bottom.data)

    def _cross_channel_backward(self, top, bottom):
        n, c, h, w = self.scale.shape
        dtype = self.scale.dtype
        beta = self._scalar(self.beta, self.scale)
        cache_ratio = self._scalar(2.0 * self.alpha * self.beta / self.size, self.scale)
        inverse_pre_pad = self.size - (self.size + 1) // 2
        bottom_diff = bottom.diff
        torch.pow(self.scale, -beta, out=bottom_diff)
        bottom_diff.mul_(top.diff)
        padded_ratio = torch.zeros(
            (n, c + self.size - 1, h, w), dtype=dtype, device=self.scale.device
        )
        padded_ratio[:, inverse_pre_pad : inverse_pre_pad + c] = top.diff * top.data / self.scale
        accum = torch.zeros((n, h, w), dtype=dtype, device=self.scale.device)
        for j in range(self.size - 1):
            accum = accum + padded_ratio[:, j]
        for j in range(c):
            accum = accum + padded_ratio[:, j + self.size - 1]
            bottom_diff[:, j] += -cache_ratio * (bottom.data[:, j] * accum)
            accum = accum - padded_ratio[:, j]

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
        square_output_diff = padded[
            :, :, self.pre_pad : self.pre_pad + h, self.pre_pad : self.pre_pad + w
        ]
        # Power(power 2) backward: 2 x, times the diff.
        square_input_diff = 2 * self.square_input * square_output_diff
        # Split backward: the sum of its two tops' diffs.
        torch.add(product_input_diff, square_input_diff, out=bottom.diff)
