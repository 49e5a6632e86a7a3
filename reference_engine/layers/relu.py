"""ReLU. Caffe: src/caffe/layers/relu_layer.cpp."""

import torch

from ..layer import register_layer
from .neuron import NeuronLayer


@register_layer("ReLU")
class ReLULayer(NeuronLayer):
    """y = max(x, 0) + negative_slope * min(x, 0).

    Each step is one vectorised torch op writing into a kept buffer or the blob, so a large
    blob costs a few passes over memory and no allocation."""

    may_run_in_place = True

    @classmethod
    def in_place_hazard(cls, param):
        if param.relu_param.negative_slope < 0:
            return "with negative_slope < 0 the backward reads the sign of the output, which flipped"
        return None

    def forward(self, bottom, top):
        x, y = bottom[0].data, top[0].data
        slope = self.param.relu_param.negative_slope
        # Caffe's sum, not torch.relu: with slope 0, x = -inf gives 0 * -inf = NaN. clamp_min and
        # clamp_max are std::max(x, 0) and std::min(x, 0) to the bit: NaN and a zero of either
        # sign come back as x (tests/engine/test_neuron_layer.py checks the signs).
        low = self.scratch("low", x.shape)
        torch.clamp_max(x, 0, out=low)
        low.mul_(slope)
        # In place, y is x: each element reads its own x before writing it.
        torch.clamp_min(x, 0, out=y)
        y.add_(low)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        # In place, bottom data is the output; its sign matches x for slope >= 0 only.
        x = bottom[0].data
        slope = self.param.relu_param.negative_slope
        # dy * ((x > 0) + slope * (x <= 0)): the gradient at x == 0 is the slope. The comparisons
        # are written as 1.0 / 0.0; slope times those is exact, so one fused add gives Caffe's sum.
        factor, positive = self.scratch("low", x.shape), self.scratch("high", x.shape)
        torch.le(x, 0, out=factor)
        torch.gt(x, 0, out=positive)
        torch.add(positive, factor, alpha=slope, out=factor)
        torch.mul(top[0].diff, factor, out=bottom[0].diff)
