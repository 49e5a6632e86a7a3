"""Pooling. Caffe: src/caffe/layers/pooling_layer.cpp, include/caffe/layers/pooling_layer.hpp.

Windows are visited one kernel offset at a time, vectorised over every output,
so each output sees its window cells in Caffe's raster order (first maximum wins,
sums in Caffe's order). STOCHASTIC is NOT_IMPLEMENTED on the CPU, as in Caffe.

MAX pooling hands the common case to torch's max_pool2d, whose CPU kernel applies
Caffe's rule: windows start at ``p * stride - pad`` and are clipped to the image, the
scan is row-major with a strict ``>`` (the first maximum wins), and the index is
``h * W + w`` in the plane. It differs from Caffe only where torch cannot express
the window layout (Caffe's output size, pad > kernel / 2) or where Caffe's start
value -FLT_MAX matters (NaN, values at or below -FLT_MAX); those go to the offset loop.
"""

import torch

from .. import caffe_pb2
from ..checks import Unsupported, check, check_eq, check_gt, check_lt, fatal, not_implemented
from ..layer import Layer, register_layer

MAX, AVE, STOCHASTIC = 0, 1, 2  # PoolingParameter.PoolMethod
CEIL, FLOOR = 0, 1  # PoolingParameter.RoundMode
FLT_MAX = 3.4028234663852886e38


@register_layer("Pooling")
class PoolingLayer(Layer):
    @classmethod
    def in_place_hazard(cls, param):
        return (
            "Backward_cpu (pooling_layer.cpp) zeroes the bottom diff and then adds the top diff into "
            "it; in place they are the same memory, so every gradient below this layer is exactly 0 "
            "(and the output shape differs from the input's)"
        )

    @classmethod
    def backward_abort(cls, param, bottom_need_backward):
        if param.pooling_param.pool == caffe_pb2.PoolingParameter.STOCHASTIC:
            return "STOCHASTIC pooling has no CPU backward (NOT_IMPLEMENTED)"
        return None

    exact_num_bottom_blobs = 1
    min_top_blobs = 1

    def check_blob_counts(self, bottom, top):
        # MaxTopBlobs depends on the method: MAX may output its argmax mask as a second top.
        self.max_top_blobs = 2 if self.param.pooling_param.pool == MAX else 1
        super().check_blob_counts(bottom, top)

    def layer_setup(self, bottom, top):
        p = self.param.pooling_param
        if p.global_pooling:
            check(
                not (p.HasField("kernel_size") or p.HasField("kernel_h") or p.HasField("kernel_w")),
                "!(pool_param.has_kernel_size() || pool_param.has_kernel_h() || pool_param.has_kernel_w())",
                "With Global_pooling: true Filter size cannot specified",
            )
        else:
            check(
                (not p.HasField("kernel_size")) != (not (p.HasField("kernel_h") and p.HasField("kernel_w"))),
                "!pool_param.has_kernel_size() != !(pool_param.has_kernel_h() && pool_param.has_kernel_w())",
                "Filter size is kernel_size OR kernel_h and kernel_w; not both",
            )
            check(
                p.HasField("kernel_size") or (p.HasField("kernel_h") and p.HasField("kernel_w")),
                "pool_param.has_kernel_size() || (pool_param.has_kernel_h() && pool_param.has_kernel_w())",
                "For non-square filters both kernel_h and kernel_w are required.",
            )
        check(
            (not p.HasField("pad") and p.HasField("pad_h") and p.HasField("pad_w"))
            or (not p.HasField("pad_h") and not p.HasField("pad_w")),
            "(!pool_param.has_pad() && pool_param.has_pad_h() && pool_param.has_pad_w()) "
            "|| (!pool_param.has_pad_h() && !pool_param.has_pad_w())",
            "pad is pad OR pad_h and pad_w are required.",
        )
        check(
            (not p.HasField("stride") and p.HasField("stride_h") and p.HasField("stride_w"))
            or (not p.HasField("stride_h") and not p.HasField("stride_w")),
            "(!pool_param.has_stride() && pool_param.has_stride_h() && pool_param.has_stride_w()) "
            "|| (!pool_param.has_stride_h() && !pool_param.has_stride_w())",
            "Stride is stride OR stride_h and stride_w are required.",
        )
        self.global_pooling = p.global_pooling
        # round_mode exists only in master; Caffe 1.0 always rounds up.
        self.round_mode = p.round_mode if self.semantics.pooling_round_mode else CEIL
        if self.global_pooling:
            self.kernel_h, self.kernel_w = bottom[0].shape[2], bottom[0].shape[3]
        elif p.HasField("kernel_size"):
            self.kernel_h = self.kernel_w = p.kernel_size
        else:
            self.kernel_h, self.kernel_w = p.kernel_h, p.kernel_w
        check_gt(self.kernel_h, 0, "kernel_h_", "0", "Filter dimensions cannot be zero.")
        check_gt(self.kernel_w, 0, "kernel_w_", "0", "Filter dimensions cannot be zero.")
        if not p.HasField("pad_h"):
            self.pad_h = self.pad_w = p.pad
        else:
            self.pad_h, self.pad_w = p.pad_h, p.pad_w
        if not p.HasField("stride_h"):
            self.stride_h = self.stride_w = p.stride
        else:
            self.stride_h, self.stride_w = p.stride_h, p.stride_w
        if self.global_pooling:
            check(
                self.pad_h == 0 and self.pad_w == 0 and self.stride_h == 1 and self.stride_w == 1,
                "pad_h_ == 0 && pad_w_ == 0 && stride_h_ == 1 && stride_w_ == 1",
                "With Global_pooling: true; only pad = 0 and stride = 1",
            )
        if self.pad_h != 0 or self.pad_w != 0:
            check(
                p.pool in (AVE, MAX),
                "this->layer_param_.pooling_param().pool() == PoolingParameter_PoolMethod_AVE "
                "|| this->layer_param_.pooling_param().pool() == PoolingParameter_PoolMethod_MAX",
                "Padding implemented only for average and max pooling.",
            )
            check_lt(self.pad_h, self.kernel_h, "pad_h_", "kernel_h_")
            check_lt(self.pad_w, self.kernel_w, "pad_w_", "kernel_w_")

    def reshape(self, bottom, top):
        check_eq(
            4,
            bottom[0].num_axes,
            "4",
            "bottom[0]->num_axes()",
            "Input must have 4 axes, corresponding to (num, channels, height, width)",
        )
        self.num, self.channels, self.height, self.width = bottom[0].shape
        if self.global_pooling:
            self.kernel_h, self.kernel_w = self.height, self.width
        self.pooled_height = self._pooled_size(self.height, self.kernel_h, self.pad_h, self.stride_h)
        self.pooled_width = self._pooled_size(self.width, self.kernel_w, self.pad_w, self.stride_w)
        if self.pad_h or self.pad_w:
            # With padding, the last window must start inside the image, not in the padding.
            if (self.pooled_height - 1) * self.stride_h >= self.height + self.pad_h:
                self.pooled_height -= 1
            if (self.pooled_width - 1) * self.stride_w >= self.width + self.pad_w:
                self.pooled_width -= 1
            check_lt(
                (self.pooled_height - 1) * self.stride_h,
                self.height + self.pad_h,
                "(pooled_height_ - 1) * stride_h_",
                "height_ + pad_h_",
            )
            check_lt(
                (self.pooled_width - 1) * self.stride_w,
                self.width + self.pad_w,
                "(pooled_width_ - 1) * stride_w_",
                "width_ + pad_w_",
            )
        if top[0] is bottom[0]:
            raise Unsupported(
                "Pooling in place (top == bottom): Caffe pools its own overwritten, "
                "reshaped memory; the reference engine does not model that"
            )
        shape = [self.num, self.channels, self.pooled_height, self.pooled_width]
        top[0].reshape(shape)
        if len(top) > 1:
            top[1].reshape(shape)
        self.torch_ceil_mode = self._torch_ceil_mode()

    def _pooled_size(self, size, kernel, pad, stride):
        # Caffe divides in float, then rounds: ceil (CEIL, and always in 1.0) or floor.
        ratio = torch.tensor(float(size + 2 * pad - kernel), dtype=torch.float32) / float(stride)
        if self.round_mode == CEIL:
            return int(torch.ceil(ratio)) + 1
        if self.round_mode == FLOOR:
            return int(torch.floor(ratio)) + 1
        fatal("Unknown rounding mode.")

    def _torch_ceil_mode(self):
        """The ceil_mode for which torch's max_pool2d lays out Caffe's windows, or None.

        torch: out = (size + 2 pad - kernel + (stride - 1 if ceil)) // stride + 1, then with
        ceil the last window must start inside image + pad (aten/src/ATen/native/Pool.h,
        pooling_output_shape). Where that matches Caffe's size on both axes, every window
        is Caffe's; torch also wants pad <= kernel / 2 and at least one output."""
        if 2 * self.pad_h > self.kernel_h or 2 * self.pad_w > self.kernel_w:
            return None
        if self.pooled_height < 1 or self.pooled_width < 1:
            return None

        def size(size, kernel, pad, stride, ceil):
            out = (size + 2 * pad - kernel + (stride - 1 if ceil else 0)) // stride + 1
            if ceil and (out - 1) * stride >= size + pad:
                out -= 1
            return out

        for ceil in (True, False):
            if (
                size(self.height, self.kernel_h, self.pad_h, self.stride_h, ceil),
                size(self.width, self.kernel_w, self.pad_w, self.stride_w, ceil),
            ) == (self.pooled_height, self.pooled_width):
                return ceil
        return None

    def _one_window(self) -> bool:
        """Global pooling, or a kernel that covers the unpadded image exactly once."""
        return (self.pooled_height, self.pooled_width, self.pad_h, self.pad_w) == (1, 1, 0, 0) and (
            self.kernel_h,
            self.kernel_w,
        ) == (self.height, self.width)

    def _windows(self):
        """For each kernel offset (raster order): the rows/columns it reads for every output,
        and which of them lie inside the image."""
        device = self.device
        ph = torch.arange(self.pooled_height, device=device)
        pw = torch.arange(self.pooled_width, device=device)
        for i in range(self.kernel_h):
            h = ph * self.stride_h - self.pad_h + i
            h_ok = (h >= 0) & (h < self.height)
            for j in range(self.kernel_w):
                w = pw * self.stride_w - self.pad_w + j
                w_ok = (w >= 0) & (w < self.width)
                yield h, w, h_ok[:, None] & w_ok[None, :]

    def _pool_sizes(self, dtype):
        """AVE's divisor: the window clipped to the padded image (height + pad), padding included."""

        def sizes(pooled, stride, pad, kernel, size):
            start = torch.arange(pooled, device=self.device) * stride - pad
            end = torch.clamp(start + kernel, max=size + pad)
            return end - start

        hs = sizes(self.pooled_height, self.stride_h, self.pad_h, self.kernel_h, self.height)
        ws = sizes(self.pooled_width, self.stride_w, self.pad_w, self.kernel_w, self.width)
        return (hs[:, None] * ws[None, :]).to(dtype)

    def forward(self, bottom, top):
        pool = self.param.pooling_param.pool
        x = bottom[0].data
        if pool == MAX:
            if self._torch_max_pool_agrees(x):
                mask = self._torch_max_pool(x, top[0].data)
            else:
                mask = self._max_pool_by_offsets(x, top[0].data)
            if len(top) > 1:
                top[1].data.copy_(mask)
            else:
                self.max_idx = mask
        elif pool == AVE and self._one_window():
            # One window over the whole image: the kernel-offset loop below would take H*W steps.
            top[0].data.copy_(x.sum(dim=(2, 3), keepdim=True) / (self.height * self.width))
        elif pool == AVE:
            total = torch.zeros(top[0].shape, dtype=x.dtype, device=x.device)
            for h, w, inside in self._windows():
                values = x.index_select(2, h.clamp(0, self.height - 1)).index_select(
                    3, w.clamp(0, self.width - 1)
                )
                total = torch.where(inside, total + values, total)
            top[0].data.copy_(total / self._pool_sizes(x.dtype))
        elif pool == STOCHASTIC:
            not_implemented()
        else:
            fatal("Unknown pooling method.")

    def _torch_max_pool_agrees(self, x) -> bool:
        # NaN, -inf and -FLT_MAX fail the comparison: Caffe's -FLT_MAX start keeps them out.
        return self.torch_ceil_mode is not None and x.numel() > 0 and bool(x.amin() > -FLT_MAX)

    def _torch_max_pool(self, x, top_data):
        """torch's max_pool2d written into the top; returns the mask (h * W + w, long).

        It runs on a channels-last copy: there torch's kernel is vectorised over channels,
        with the same scan and comparison per window (several times faster than on NCHW)."""
        n, c, h, w = x.shape
        pooled_h, pooled_w = self.pooled_height, self.pooled_width
        image = self.scratch("image", (n, h, w, c)).permute(0, 3, 1, 2)
        pooled = self.scratch("pooled", (n, pooled_h, pooled_w, c)).permute(0, 3, 1, 2)
        argmax = self.scratch("argmax", (n, pooled_h, pooled_w, c), torch.long).permute(0, 3, 1, 2)
        image.copy_(x)
        torch.ops.aten.max_pool2d_with_indices.out(
            image,
            self._kernel(),
            self._stride(),
            self._pad(),
            [1, 1],
            self.torch_ceil_mode,
            out=pooled,
            indices=argmax,
        )
        top_data.copy_(pooled)
        mask = self.scratch("mask", top_data.shape, torch.long)
        mask.copy_(argmax)
        return mask

    def _max_pool_by_offsets(self, x, top_data):
        """Caffe's loop, one kernel offset at a time over every output; returns the mask."""
        maximum = torch.full(top_data.shape, -FLT_MAX, dtype=x.dtype, device=x.device)
        mask = torch.full(top_data.shape, -1, dtype=torch.long, device=x.device)
        for h, w, inside in self._windows():
            values = x.index_select(2, h.clamp(0, self.height - 1)).index_select(
                3, w.clamp(0, self.width - 1)
            )
            # Strict '>' in raster order: the first maximum of a window wins a tie.
            wins = inside & (values > maximum)
            maximum = torch.where(wins, values, maximum)
            index = (h.clamp(min=0)[:, None] * self.width + w.clamp(min=0)[None, :]).expand_as(mask)
            mask = torch.where(wins, index, mask)
        top_data.copy_(maximum)
        return mask

    def _kernel(self):
        return [self.kernel_h, self.kernel_w]

    def _stride(self):
        return [self.stride_h, self.stride_w]

    def _pad(self):
        return [self.pad_h, self.pad_w]

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        pool = self.param.pooling_param.pool
        dy = top[0].diff
        # The bottom diff is zeroed, then every output adds into it.
        bottom[0].diff.zero_()
        if pool == MAX:
            mask = top[1].data.long() if len(top) > 1 else self.max_idx
            self._scatter_max(dy, mask, bottom[0].diff)
        elif pool == AVE and self._one_window():
            bottom[0].diff.copy_((dy / (self.height * self.width)).expand_as(bottom[0].diff))
        elif pool == AVE:
            share = dy / self._pool_sizes(dy.dtype)
            # Offsets in reverse raster order add into each cell in Caffe's (ph, pw) order.
            for h, w, inside in reversed(list(self._windows())):
                rows, cols = inside.nonzero(as_tuple=True)
                bottom[0].diff[:, :, h[rows], w[cols]] += share[:, :, rows, cols]
        elif pool == STOCHASTIC:
            not_implemented()
        else:
            fatal("Unknown pooling method.")

    def _scatter_max(self, dy, mask, bottom_diff):
        # bottom_diff[plane offset + mask] += top_diff, output by output. A mask of -1 (a window
        # with nothing above -FLT_MAX) lands on the previous plane's last cell, as Caffe's pointer
        # arithmetic does; before the first plane Caffe writes outside the blob.
        planes = self.num * self.channels
        flat = bottom_diff.view(-1)
        plane_size = self.height * self.width
        mask = mask.reshape(planes, -1)
        dy = dy.reshape(planes, -1)
        if mask.numel() == 0:
            return
        low, high = torch.aminmax(mask)
        if 0 <= int(low) and int(high) < plane_size:
            # Every index inside its own plane: one scatter_add_ per plane, each in (ph, pw) order.
            bottom_diff.view(planes, -1).scatter_add_(1, mask, dy)
            return
        offsets = torch.arange(planes, device=dy.device) * plane_size
        if planes and bool((mask[0] < 0).any()):
            raise Unsupported(
                "MAX pooling backward with mask -1 in the first plane: Caffe writes "
                "before the start of the bottom diff"
            )
        # One index_add_ over (plane, output) in row-major order: each cell receives its adds in
        # Caffe's (ph, pw) order.
        flat.index_add_(0, (offsets[:, None] + mask).reshape(-1), dy.reshape(-1))
