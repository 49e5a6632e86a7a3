"""Scale. Caffe: src/caffe/layers/scale_layer.cpp.

top = bottom[0] * s (+ b), s broadcast like Bias; s is the learned blob 0 (one
bottom) or bottom[1]. With `bias_term`, Caffe runs a Bias layer on the top, whose
blob becomes this layer's last param.

The learned scale's diff is overwritten, not accumulated, where Caffe writes it
with gemv beta 0 or as the element-wise product itself: when the scale has as many
elements as the bottom, and when outer_dim == 1 (e.g. batch 1 at axis 1). The
product dy·x is scratch in bottom[0]'s diff even when propagate_down[0] is false.
"""

from .. import caffe_pb2, fillers
from ..layer import Layer, register_layer
from ..math_functions import scal
from .bias import add_bias_diff, broadcast_dims, broadcast_shape
from .blob_proto import _blob_from_proto, blobs_from_proto


@register_layer("Scale")
class ScaleLayer(Layer):
    may_run_in_place = True

    min_bottom_blobs = 1
    max_bottom_blobs = 2
    exact_num_top_blobs = 1

    @classmethod
    def param_blob_count(cls, param, num_bottoms):
        count = len(param.blobs) if param.blobs else (1 if num_bottoms == 1 else 0)
        if param.scale_param.bias_term and count + num_bottoms < 3:
            count += 1
        return count

    def layer_setup(self, bottom, top):
        p = self.param.scale_param
        stored = blobs_from_proto(self)
        if len(bottom) == 1 and not stored:
            self.blobs = [self.new_blob(broadcast_shape(bottom[0], p.axis, p.num_axes, "scale"))]
            filler = p.filler
            if not p.HasField("filler"):
                # An identity scale unless a filler is given.
                filler = caffe_pb2.FillerParameter(type="constant", value=1)
            fillers.fill(self.blobs[0], filler)
        self.bias_param_id = None
        if p.bias_term:
            # The internal Bias layer gets a copy of this LayerParameter, stored blobs included.
            if self.param.blobs:
                bias = _blob_from_proto(self, self.param.blobs[0])
            else:
                num_axes = bottom[1].num_axes if len(bottom) > 1 else p.num_axes
                bias = self.new_blob(broadcast_shape(bottom[0], p.axis, num_axes, "bias"))
                fillers.fill(bias, p.bias_filler)
            if len(self.blobs) + len(bottom) < 3:
                self.blobs.append(bias)
            self.bias_param_id = len(self.blobs) - 1

    def reshape(self, bottom, top):
        scale = bottom[1] if len(bottom) > 1 else self.blobs[0]
        self.outer_dim, self.scale_dim, self.inner_dim = broadcast_dims(
            bottom[0], scale, self.param.scale_param.axis, "scale", axis_text="axis_"
        )
        if top[0] is not bottom[0]:
            top[0].reshape(bottom[0].shape)
        if self.bias_param_id is not None:
            bias = self.blobs[self.bias_param_id]
            self.bias_dims = broadcast_dims(top[0], bias, self.param.scale_param.axis, "bias")

    def forward(self, bottom, top):
        if top[0] is bottom[0]:
            # Backward needs the input that the product is about to overwrite.
            self.temp = bottom[0].data.clone()
        scale = (bottom[1] if len(bottom) > 1 else self.blobs[0]).data
        x = bottom[0].data.view(self.outer_dim, self.scale_dim, self.inner_dim)
        y = top[0].data.view(self.outer_dim, self.scale_dim, self.inner_dim)
        y.copy_(scal(scale.reshape(1, self.scale_dim, 1), x))  # caffe_cpu_scale per (n, d) block
        if self.bias_param_id is not None:
            outer, bias_dim, inner = self.bias_dims
            top[0].data.view(outer, bias_dim, inner).add_(
                self.blobs[self.bias_param_id].data.reshape(1, bias_dim, 1)
            )

    def backward(self, top, propagate_down, bottom):
        if self.bias_param_id is not None and self.param_propagate_down[-1]:
            outer, bias_dim, inner = self.bias_dims
            add_bias_diff(
                self.blobs[self.bias_param_id].diff,
                top[0].diff,
                outer,
                bias_dim,
                inner,
                accumulate=True,
            )
        learned = len(bottom) == 1
        scale = self.blobs[0] if learned else bottom[1]
        if (learned and self.param_propagate_down[0]) or (not learned and propagate_down[1]):
            self._scale_diff(top, bottom, scale, learned)
        if propagate_down[0]:
            dy = top[0].diff.view(self.outer_dim, self.scale_dim, self.inner_dim)
            dx = bottom[0].diff.view(self.outer_dim, self.scale_dim, self.inner_dim)
            dx.copy_(scal(scale.data.reshape(1, self.scale_dim, 1), dy))

    def _scale_diff(self, top, bottom, scale, learned):
        in_place = top[0] is bottom[0]
        x = self.temp if in_place else bottom[0].data
        is_eltwise = bottom[0].count() == scale.count()
        # The product dy·x lands in the scale diff itself (element-wise case), else in scratch:
        # bottom[0]'s diff, or the saved input when in place.
        if is_eltwise:
            product = scale.diff
        elif in_place:
            product = self.temp
        else:
            product = bottom[0].diff
        product.copy_((top[0].diff * x).view_as(product))
        if is_eltwise:
            return
        outer, scale_dim, inner = self.outer_dim, self.scale_dim, self.inner_dim
        scale_diff = scale.diff.view(-1)
        rows = product.reshape(outer * scale_dim, inner)
        if inner == 1:
            sum_result = rows.view(-1)
        elif outer * scale_dim == 1:
            dot = rows.sum()
            if learned:
                scale_diff.add_(dot)
            else:
                scale_diff.copy_(dot.view(1))
            return
        else:
            sum_result = rows.sum(1)
            if outer == 1:
                # gemv beta 0 straight into the scale diff: overwritten even for a learned scale.
                scale_diff.copy_(sum_result)
                return
        sums = sum_result.view(outer, scale_dim).sum(0)
        if learned:
            scale_diff.add_(sums)
        else:
            scale_diff.copy_(sums)
