"""ReLU. Caffe: src/caffe/layers/relu_layer.cpp."""

from ..layer import register_layer
from .neuron import NeuronLayer, std_max, std_min


@register_layer("ReLU")
class ReLULayer(NeuronLayer):
    """y = max(x, 0) + negative_slope * min(x, 0)."""

    def forward(self, bottom, top):
        x = bottom[0].data
        slope = self.param.relu_param.negative_slope
        # Written as Caffe's sum, not torch.relu: with slope 0, x = -inf gives 0 * -inf = NaN.
        top[0].data.copy_(std_max(x, 0.0) + slope * std_min(x, 0.0))

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        # In place, bottom data is the output; its sign matches x for slope >= 0 only.
        x = bottom[0].data
        slope = self.param.relu_param.negative_slope
        # The gradient at x == 0 is the slope (x <= 0).
        bottom[0].diff.copy_(top[0].diff * ((x > 0).to(x.dtype) + slope * (x <= 0).to(x.dtype)))
