"""What Convolution and Deconvolution share: parameters, param blobs, shapes.

Caffe: src/caffe/layers/base_conv_layer.cpp (BaseConvolutionLayer::LayerSetUp, Reshape).
The arithmetic uses torch's convolutions instead of im2col + gemm, with torch's own zero
padding (the image is padded explicitly only where the last window overhangs the padded
image); the result is the same up to summation order.
"""

import torch.nn.functional as F
from torch.nn import grad as conv_grad

from .. import fillers
from ..checks import Unsupported, check, check_eq, check_ge, check_gt, fatal
from ..layer import Layer
from .blob_proto import blobs_from_proto

# torch's arithmetic for 1, 2 and 3 spatial axes.
_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_CONV_INPUT = {1: conv_grad.conv1d_input, 2: conv_grad.conv2d_input, 3: conv_grad.conv3d_input}
_CONV_WEIGHT = {1: conv_grad.conv1d_weight, 2: conv_grad.conv2d_weight, 3: conv_grad.conv3d_weight}

# Caffe convolves one image at a time (forward_cpu_gemm per n). torch takes groups of images
# whose tensors stay under this size: glibc serves a block past its mmap threshold (32 MB at
# most) as a fresh mapping that faults in page by page on every call, and a group this small
# also stays in cache.
GROUP_BYTES = 16 << 20


class BaseConvolutionLayer(Layer):
    min_bottom_blobs = 1
    min_top_blobs = 1
    equal_num_bottom_top_blobs = True
    # Deconvolution's weight is (channels, num_output / group, k...) (reverse_dimensions()).
    reverse_dimensions = False

    @classmethod
    def param_blob_count(cls, param, num_bottoms):
        if param.blobs:
            return len(param.blobs)
        return 2 if param.convolution_param.bias_term else 1

    def layer_setup(self, bottom, top):
        p = self.param.convolution_param
        self.channel_axis = bottom[0].canonical_axis_index(p.axis)
        n = bottom[0].num_axes - self.channel_axis - 1
        check_ge(n, 0, "num_spatial_axes_", "0")
        self.num_spatial_axes = n
        self.kernel = self._spatial(
            "kernel",
            p.kernel_size,
            p.HasField("kernel_h") or p.HasField("kernel_w"),
            p.kernel_h,
            p.kernel_w,
            default=None,
        )
        for k in self.kernel:
            check_gt(k, 0, "kernel_shape_data[i]", "0", "Filter dimensions must be nonzero.")
        self.stride = self._spatial(
            "stride",
            p.stride,
            p.HasField("stride_h") or p.HasField("stride_w"),
            p.stride_h,
            p.stride_w,
            default=1,
        )
        for s in self.stride:
            check_gt(s, 0, "stride_data[i]", "0", "Stride dimensions must be nonzero.")
        self.pad = self._spatial(
            "pad", p.pad, p.HasField("pad_h") or p.HasField("pad_w"), p.pad_h, p.pad_w, default=0
        )
        num_dilation = len(p.dilation)
        check(
            num_dilation in (0, 1, n),
            "num_dilation_dims == 0 || num_dilation_dims == 1 || num_dilation_dims == num_spatial_axes_",
            "dilation must be specified once, or once per spatial dimension "
            f"(dilation specified {num_dilation} times; {n} spatial dims).",
        )
        self.dilation = [
            1 if num_dilation == 0 else p.dilation[0 if num_dilation == 1 else i] for i in range(n)
        ]
        if n not in _CONV:
            raise Unsupported(f"{self.type} with {n} spatial axes: the reference engine models 1 to 3")

        self.channels = bottom[0].shape[self.channel_axis]
        self.num_output = p.num_output
        check_gt(self.num_output, 0, "num_output_", "0")
        self.group = p.group
        check_eq(self.channels % self.group, 0, "channels_ % group_", "0")
        check_eq(
            self.num_output % self.group,
            0,
            "num_output_ % group_",
            "0",
            "Number of output should be multiples of group.",
        )
        if self.reverse_dimensions:
            out_channels, in_channels = self.channels, self.num_output
        else:
            out_channels, in_channels = self.num_output, self.channels
        weight_shape = [out_channels, in_channels // self.group] + self.kernel
        self.bias_term = p.bias_term
        bias_shape = [self.num_output] if self.bias_term else []
        if blobs_from_proto(self):
            check_eq(
                1 + int(self.bias_term),
                len(self.blobs),
                "1 + bias_term_",
                "this->blobs_.size()",
                "Incorrect number of weight blobs.",
            )
            if self.blobs[0].shape != weight_shape:
                fatal(
                    f"Incorrect weight shape: expected shape {_shape_string(weight_shape)}; "
                    f"instead, shape was {self.blobs[0].shape_string()}"
                )
            if self.bias_term and self.blobs[1].shape != bias_shape:
                fatal(
                    f"Incorrect bias shape: expected shape {_shape_string(bias_shape)}; "
                    f"instead, shape was {self.blobs[1].shape_string()}"
                )
        else:
            self.blobs = [self.new_blob(weight_shape)]
            fillers.fill(self.blobs[0], p.weight_filler)
            if self.bias_term:
                self.blobs.append(self.new_blob(bias_shape))
                fillers.fill(self.blobs[1], p.bias_filler)

    def _spatial(self, name, repeated, has_hw, h, w, default):
        """One value per spatial axis from `name` (once or per axis) or `name_h`/`name_w`."""
        n = self.num_spatial_axes
        if has_hw:
            check_eq(
                n,
                2,
                "num_spatial_axes_",
                "2",
                f"{name}_h & {name}_w can only be used for 2D convolution.",
            )
            what = "kernel_size" if name == "kernel" else name
            if name == "kernel":
                message = "Either kernel_size or kernel_h/w should be specified; not both."
            else:
                message = f"Either {name} or {name}_h/w should be specified; not both."
            check_eq(0, len(repeated), "0", f"conv_param.{what}_size()", message)
            return [h, w]
        count = len(repeated)
        label = "kernel_size" if name == "kernel" else name
        if default is None:
            check(
                count == 1 or count == n,
                "num_kernel_dims == 1 || num_kernel_dims == num_spatial_axes_",
                "kernel_size must be specified once, or once per spatial dimension "
                f"(kernel_size specified {count} times; {n} spatial dims).",
            )
        else:
            check(
                count in (0, 1, n),
                f"num_{name}_dims == 0 || num_{name}_dims == 1 || num_{name}_dims == num_spatial_axes_",
                f"{label} must be specified once, or once per spatial dimension "
                f"({label} specified {count} times; {n} spatial dims).",
            )
        return [default if count == 0 else repeated[0 if count == 1 else i] for i in range(n)]

    def reshape(self, bottom, top):
        first_spatial_axis = self.channel_axis + 1
        check_eq(
            bottom[0].num_axes,
            first_spatial_axis + self.num_spatial_axes,
            "bottom[0]->num_axes()",
            "first_spatial_axis + num_spatial_axes_",
            "bottom num_axes may not change.",
        )
        self.num = bottom[0].count(0, self.channel_axis)
        check_eq(
            bottom[0].shape[self.channel_axis],
            self.channels,
            "bottom[0]->shape(channel_axis_)",
            "channels_",
            "Input size incompatible with convolution kernel.",
        )
        for i in range(1, len(bottom)):
            check(
                bottom[0].shape == bottom[i].shape,
                "bottom[0]->shape() == bottom[bottom_id]->shape()",
                f"shape mismatch - bottom[0]: {bottom[0].shape_string()} vs. bottom[{i}]: "
                f"{bottom[i].shape_string()}",
            )
        self.input_spatial = bottom[0].shape[first_spatial_axis:]
        self.output_spatial = self.compute_output_shape()
        top_shape = bottom[0].shape[: self.channel_axis] + [self.num_output] + self.output_spatial
        for t in top:
            t.reshape(top_shape)

    def scratch_count(self, bottom, top):
        return 0  # no buffer is kept: everything is a group's, and goes (temporary_count)

    def temporary_count(self, bottom, top):
        # One group of images at a time (image_groups; a float32 net's are the largest): its
        # output or its input's diff, a padded copy of its input, the weights' diff, and the
        # columns torch's CPU convolutions unfold their input into (im2col, as slow_conv2d
        # does), a kernel's worth of input channels for each output position. Deconvolution
        # computes Convolution's transpose: its columns are on its top's side.
        group = self.image_groups()[0]
        image = max(self.channels * _count(self.input_spatial), self.num_output * _count(self.output_spatial))
        if self.reverse_dimensions:
            columns = self.num_output * _count(self.input_spatial) * _count(self.kernel)
        else:
            columns = self.channels * _count(self.output_spatial) * _count(self.kernel)
        return (group.stop - group.start) * (2 * image + columns) + self.blobs[0].count()

    def image_groups(self):
        """Slices of the batch (the `num` axis of `batched` views), in order, each a group of
        images whose input and output stay under GROUP_BYTES."""
        image = max(self.channels * _count(self.input_spatial), self.num_output * _count(self.output_spatial))
        image *= self.blobs[0].data.element_size()
        groups = max(1, min(self.num, -(-self.num * image // GROUP_BYTES)))
        size = -(-self.num // groups)
        return [slice(start, min(start + size, self.num)) for start in range(0, self.num, size)]

    def kernel_extent(self, i):
        return self.dilation[i] * (self.kernel[i] - 1) + 1

    # ---- the arithmetic, on (num, channels, spatial...) views ------------------------------

    def batched(self, tensor, channels, spatial):
        return tensor.reshape([self.num, channels] + list(spatial))

    def conv_padding(self, image_spatial, columns_spatial):
        """F.pad arguments that give the image the zero border im2col reads: `pad` on each side,
        plus whatever the last window reaches beyond that (C++ division can leave a window that
        overhangs the padded image by less than one stride)."""
        pads = []
        for i in reversed(range(self.num_spatial_axes)):
            reach = (columns_spatial[i] - 1) * self.stride[i] + self.kernel_extent(i)
            overhang = max(0, reach - (image_spatial[i] + 2 * self.pad[i]))
            pads += [self.pad[i], self.pad[i] + overhang]
        return pads

    def _torch_pads(self, image_spatial, columns_spatial):
        """`pad` for torch's own zero padding where that is the whole border; otherwise None,
        and the image is padded explicitly (an overhanging last window)."""
        pads = self.conv_padding(image_spatial, columns_spatial)
        if all(pads[2 * i] == pads[2 * i + 1] for i in range(self.num_spatial_axes)):
            return list(self.pad)
        return None

    def conv_forward(self, image, image_spatial, columns_spatial, bias=None):
        """Convolve an image (im2col + gemm): `columns_spatial` positions, weights as conv weights;
        `bias` is added to every position of its output channel."""
        pad = self._torch_pads(image_spatial, columns_spatial)
        if pad is None:
            image, pad = F.pad(image, self.conv_padding(image_spatial, columns_spatial)), 0
        return _CONV[self.num_spatial_axes](
            image, self.blobs[0].data, bias, self.stride, pad, self.dilation, self.group
        )

    def conv_backward_data(self, columns, image_spatial, columns_spatial):
        """The adjoint of conv_forward (gemm into columns, then col2im): what lands on the image."""
        shape = [columns.shape[0], self.blobs[0].shape[1] * self.group]
        pad = self._torch_pads(image_spatial, columns_spatial)
        if pad is not None:
            return _CONV_INPUT[self.num_spatial_axes](
                shape + list(image_spatial),
                self.blobs[0].data,
                columns,
                self.stride,
                pad,
                self.dilation,
                self.group,
            )
        pads = self.conv_padding(image_spatial, columns_spatial)
        padded_spatial = [
            image_spatial[i]
            + pads[2 * (self.num_spatial_axes - 1 - i)]
            + pads[2 * (self.num_spatial_axes - 1 - i) + 1]
            for i in range(self.num_spatial_axes)
        ]
        padded = _CONV_INPUT[self.num_spatial_axes](
            shape + padded_spatial,
            self.blobs[0].data,
            columns,
            self.stride,
            0,
            self.dilation,
            self.group,
        )
        index = [slice(None), slice(None)] + [
            slice(self.pad[i], self.pad[i] + image_spatial[i]) for i in range(self.num_spatial_axes)
        ]
        return padded[tuple(index)]

    def conv_weight_diff(self, image, columns, image_spatial, columns_spatial):
        """Σ over the batch of columns ⊗ im2col(image): the weight gradient of conv_forward."""
        pad = self._torch_pads(image_spatial, columns_spatial)
        if pad is None:
            image, pad = F.pad(image, self.conv_padding(image_spatial, columns_spatial)), 0
        return _CONV_WEIGHT[self.num_spatial_axes](
            image, self.blobs[0].shape, columns, self.stride, pad, self.dilation, self.group
        )

    def add_bias(self, output):
        output += self.blobs[1].data.view([1, -1] + [1] * self.num_spatial_axes)

    def bias_diff(self, top_diff):
        """backward_cpu_bias over every image: Σ over batch and spatial positions."""
        return top_diff.sum(dim=[0] + list(range(2, 2 + self.num_spatial_axes)))


def _count(shape):
    count = 1
    for d in shape:
        count *= d
    return count


def _shape_string(shape):
    count = 1
    for d in shape:
        count *= d
    return " ".join(str(d) for d in shape) + f" ({count})"
