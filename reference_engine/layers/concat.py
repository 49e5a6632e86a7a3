"""Concat. Caffe: src/caffe/layers/concat_layer.cpp."""

from ..checks import check, check_eq, check_ge, check_lt
from ..layer import Layer, register_layer

K_MAX_BLOB_AXES = 32  # kMaxBlobAxes, include/caffe/blob.hpp


def legacy_axis(bottom, param, legacy_field, name):
    """Concat/Slice: the uint32 legacy `<name>_dim` if set, else `axis` (may be negative)."""
    if param.HasField(legacy_field):
        axis = param.__getattribute__(legacy_field)
        axis = axis - (1 << 32) if axis >= (1 << 31) else axis  # static_cast<int> of a uint32
        check_ge(
            axis,
            0,
            f"{name}_axis_",
            "0",
            f"casting {legacy_field} from uint32 to int32 produced negative result; "
            f"{legacy_field} must satisfy 0 <= {legacy_field} < {K_MAX_BLOB_AXES}",
        )
        check_lt(axis, bottom.num_axes, f"{name}_axis_", "num_axes", f"{legacy_field} out of range.")
        return axis
    return bottom.canonical_axis_index(param.axis)


@register_layer("Concat")
class ConcatLayer(Layer):
    min_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom, top):
        p = self.param.concat_param
        check(
            not (p.HasField("axis") and p.HasField("concat_dim")),
            "!(concat_param.has_axis() && concat_param.has_concat_dim())",
            "Either axis or concat_dim should be specified; not both.",
        )

    def reshape(self, bottom, top):
        num_axes = bottom[0].num_axes
        self.axis = legacy_axis(bottom[0], self.param.concat_param, "concat_dim", "concat")
        top_shape = list(bottom[0].shape)
        for b in bottom[1:]:
            check_eq(
                num_axes,
                b.num_axes,
                "num_axes",
                "bottom[i]->num_axes()",
                "All inputs must have the same #axes.",
            )
            for j in range(num_axes):
                if j != self.axis:
                    check_eq(
                        top_shape[j],
                        b.shape[j],
                        "top_shape[j]",
                        "bottom[i]->shape(j)",
                        "All inputs must have the same shape, except at concat_axis.",
                    )
            top_shape[self.axis] += b.shape[self.axis]
        top[0].reshape(top_shape)
        if len(bottom) == 1:
            # One bottom: the top is the bottom (data and diff shared), nothing to compute.
            top[0].share_data(bottom[0])
            top[0].share_diff(bottom[0])

    def _views(self, blob, tensor):
        return tensor.reshape(blob.count(0, self.axis), blob.shape[self.axis], blob.count(self.axis + 1))

    def forward(self, bottom, top):
        if len(bottom) == 1:
            return
        y = self._views(top[0], top[0].data)
        offset = 0
        for b in bottom:
            size = b.shape[self.axis]
            y[:, offset : offset + size] = self._views(b, b.data)
            offset += size

    def backward(self, top, propagate_down, bottom):
        if len(bottom) == 1:
            return
        dy = self._views(top[0], top[0].diff)
        offset = 0
        for i, b in enumerate(bottom):
            size = b.shape[self.axis]
            if propagate_down[i]:
                self._views(b, b.diff).copy_(dy[:, offset : offset + size])
            offset += size
