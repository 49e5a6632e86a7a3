"""Parameter. Caffe: include/caffe/layers/parameter_layer.hpp.

Exposes its one param blob as its top: forward makes the top share the blob's data
and diff, so the top's diff is the param's diff.
"""

from ..layer import Layer, register_layer
from .blob_proto import blobs_from_proto


@register_layer("Parameter")
class ParameterLayer(Layer):
    exact_num_bottom_blobs = 0
    exact_num_top_blobs = 1

    @classmethod
    def param_blob_count(cls, param, num_bottoms):
        return len(param.blobs) if param.blobs else 1

    def layer_setup(self, bottom, top):
        shape = list(self.param.parameter_param.shape.dim)
        # No filler: the blob starts at zero.
        if not blobs_from_proto(self):
            self.blobs = [self.new_blob(shape)]
        top[0].reshape(shape)

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        top[0].share_data(self.blobs[0])
        top[0].share_diff(self.blobs[0])

    def backward(self, top, propagate_down, bottom):
        pass
