"""EuclideanLoss. Caffe: src/caffe/layers/euclidean_loss_layer.cpp."""

from ..checks import check_eq
from ..layer import register_layer
from ..math_functions import scal
from .loss import LossLayer
from .neuron import legacy_shape


@register_layer("EuclideanLoss")
class EuclideanLossLayer(LossLayer):
    """loss = sum((a - b)^2) / num / 2; both bottoms take a gradient, of opposite signs.

    num is the legacy num(), so bottoms of more than 4 axes are refused."""

    @classmethod
    def allow_force_backward(cls, bottom_index: int) -> bool:
        return True  # either bottom may be the one being fitted

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        check_eq(
            bottom[0].count(1),
            bottom[1].count(1),
            "bottom[0]->count(1)",
            "bottom[1]->count(1)",
            "Inputs must have the same dimension.",
        )

    def forward(self, bottom, top):
        self.diff = bottom[0].data - bottom[1].data.reshape(bottom[0].data.shape)
        dot = (self.diff * self.diff).sum()
        top[0].data.copy_(dot / legacy_shape(bottom[0], 0) / 2)

    def backward(self, top, propagate_down, bottom):
        for i in range(2):
            if propagate_down[i]:
                sign = 1.0 if i == 0 else -1.0
                # sign * w / num: each step one Dtype rounding, as in Caffe.
                alpha = sign * self.loss_weight(top) / legacy_shape(bottom[i], 0)
                bottom[i].diff.copy_(scal(alpha, self.diff).reshape(bottom[i].diff.shape))  # axpby, beta 0
