"""Slice. Caffe: src/caffe/layers/slice_layer.cpp."""

from ..checks import check, check_eq, check_gt, check_le
from ..layer import Layer, register_layer
from .concat import legacy_axis


@register_layer("Slice")
class SliceLayer(Layer):
    exact_num_bottom_blobs = 1
    min_top_blobs = 1

    def layer_setup(self, bottom, top):
        p = self.param.slice_param
        check(
            not (p.HasField("axis") and p.HasField("slice_dim")),
            "!(slice_param.has_axis() && slice_param.has_slice_dim())",
            "Either axis or slice_dim should be specified; not both.",
        )
        self.slice_points = list(p.slice_point)

    def reshape(self, bottom, top):
        self.axis = legacy_axis(bottom[0], self.param.slice_param, "slice_dim", "slice")
        top_shape = list(bottom[0].shape)
        bottom_slice_axis = bottom[0].shape[self.axis]
        if self.slice_points:
            check_eq(len(self.slice_points), len(top) - 1, "slice_point_.size()", "top.size() - 1")
            check_le(
                len(top),
                bottom_slice_axis,
                "top.size()",
                "bottom_slice_axis",
                f"slice axis: {self.axis}, bottom[0] shape: {bottom[0].shape_string()}",
            )
            prev, sizes = 0, []
            for point in self.slice_points:
                check_gt(point, prev, "slice_point_[i]", "prev")
                sizes.append(point - prev)
                prev = point
            sizes.append(bottom_slice_axis - prev)
        else:
            check_eq(
                bottom_slice_axis % len(top),
                0,
                "bottom_slice_axis % top.size()",
                "0",
                f"Number of top blobs ({len(top)}) should evenly divide input slice axis "
                f"({bottom_slice_axis})",
            )
            sizes = [bottom_slice_axis // len(top)] * len(top)
        count = 0
        for t, size in zip(top, sizes):
            top_shape[self.axis] = size
            t.reshape(top_shape)
            count += t.count()
        check_eq(count, bottom[0].count(), "count", "bottom[0]->count()")
        if len(top) == 1:
            top[0].share_data(bottom[0])
            top[0].share_diff(bottom[0])

    def _views(self, blob, tensor):
        return tensor.reshape(blob.count(0, self.axis), blob.shape[self.axis], blob.count(self.axis + 1))

    def forward(self, bottom, top):
        if len(top) == 1:
            return
        x = self._views(bottom[0], bottom[0].data)
        offset = 0
        for t in top:
            size = t.shape[self.axis]
            self._views(t, t.data).copy_(x[:, offset : offset + size])
            offset += size

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0] or len(top) == 1:
            return
        # Every top's diff is copied, whether or not anything wrote it this pass.
        dx = self._views(bottom[0], bottom[0].diff)
        offset = 0
        for t in top:
            size = t.shape[self.axis]
            dx[:, offset : offset + size] = self._views(t, t.diff)
            offset += size
