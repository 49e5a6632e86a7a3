"""Bias. Caffe: src/caffe/layers/bias_layer.cpp.

top = bottom[0] + b, with b broadcast over the axes before `axis` and after the
bias's own axes; b is the learned blob 0 (one bottom) or bottom[1].
"""

from .. import fillers
from ..checks import check_eq, check_ge
from ..layer import Layer, register_layer
from .blob_proto import blobs_from_proto


def broadcast_shape(bottom, axis_param, num_axes, what):
    """The shape a learned scale/bias takes: bottom.shape[axis : axis + num_axes] (-1: to the end)."""
    axis = bottom.canonical_axis_index(axis_param)
    check_ge(
        num_axes,
        -1,
        "num_axes",
        "-1",
        "num_axes must be non-negative, or -1 to extend to the end of bottom[0]",
    )
    if num_axes >= 0:
        check_ge(
            bottom.num_axes,
            axis + num_axes,
            "bottom[0]->num_axes()",
            "axis + num_axes",
            f"{what} blob's shape extends past bottom[0]'s shape when applied starting with "
            f"bottom[0] axis = {axis}",
        )
    return bottom.shape[axis:] if num_axes == -1 else bottom.shape[axis : axis + num_axes]


def broadcast_dims(bottom, operand, axis_param, what, axis_text="axis"):
    """(outer, operand count, inner) for an operand applied at `axis` (0 for a scalar operand)."""
    axis = 0 if operand.num_axes == 0 else bottom.canonical_axis_index(axis_param)
    check_ge(
        bottom.num_axes,
        axis + operand.num_axes,
        "bottom[0]->num_axes()",
        f"{axis_text} + {what}->num_axes()",
        f"{what} blob's shape extends past bottom[0]'s shape when applied starting with "
        f"bottom[0] axis = {axis}",
    )
    for i in range(operand.num_axes):
        check_eq(
            bottom.shape[axis + i],
            operand.shape[i],
            f"bottom[0]->shape({axis_text} + i)",
            f"{what}->shape(i)",
            f"dimension mismatch between bottom[0]->shape({axis + i}) and {what}->shape({i})",
        )
    return bottom.count(0, axis), operand.count(), bottom.count(axis + operand.num_axes)


@register_layer("Bias")
class BiasLayer(Layer):
    may_run_in_place = True

    min_bottom_blobs = 1
    max_bottom_blobs = 2
    exact_num_top_blobs = 1

    @classmethod
    def param_blob_count(cls, param, num_bottoms):
        if param.blobs:
            return len(param.blobs)
        return 1 if num_bottoms == 1 else 0

    def layer_setup(self, bottom, top):
        p = self.param.bias_param
        if len(bottom) == 1 and not blobs_from_proto(self):
            self.blobs = [self.new_blob(broadcast_shape(bottom[0], p.axis, p.num_axes, "bias"))]
            fillers.fill(self.blobs[0], p.filler)

    def reshape(self, bottom, top):
        bias = bottom[1] if len(bottom) > 1 else self.blobs[0]
        self.outer_dim, self.bias_dim, self.inner_dim = broadcast_dims(
            bottom[0], bias, self.param.bias_param.axis, "bias"
        )
        if top[0] is not bottom[0]:
            top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        bias = (bottom[1] if len(bottom) > 1 else self.blobs[0]).data
        if top[0] is not bottom[0]:
            top[0].data.copy_(bottom[0].data)
        y = top[0].data.view(self.outer_dim, self.bias_dim, self.inner_dim)
        y += bias.reshape(1, self.bias_dim, 1)

    def backward(self, top, propagate_down, bottom):
        # In place the bottom diff is the top diff already.
        if propagate_down[0] and top[0] is not bottom[0]:
            bottom[0].diff.copy_(top[0].diff)
        learned = len(bottom) == 1
        if (learned and self.param_propagate_down[0]) or (not learned and propagate_down[1]):
            bias = self.blobs[0] if learned else bottom[1]
            add_bias_diff(
                bias.diff,
                top[0].diff,
                self.outer_dim,
                self.bias_dim,
                self.inner_dim,
                accumulate=learned,
            )


def add_bias_diff(bias_diff, top_diff, outer_dim, bias_dim, inner_dim, accumulate):
    """Bias backward: Σ of the top diff over outer and inner positions, one outer slice after
    another. A learned bias accumulates (gemv beta 1); a bottom's diff starts from this call."""
    sums = top_diff.reshape(outer_dim, bias_dim, inner_dim).sum(2)
    flat = bias_diff.view(-1)
    for n in range(outer_dim):
        if n == 0 and not accumulate:
            flat.copy_(sums[0])
        else:
            flat.add_(sums[n])
