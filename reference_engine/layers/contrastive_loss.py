"""ContrastiveLoss. Caffe: src/caffe/layers/contrastive_loss_layer.cpp."""

import torch

from ..checks import check_eq
from ..layer import register_layer
from ..math_functions import scal
from .loss import LossLayer
from .neuron import legacy_shape, libm, std_max

# contrastive_loss_layer.cpp: added to the distance before dividing by it in backward.
DISTANCE_EPSILON = 1e-4


@register_layer("ContrastiveLoss")
class ContrastiveLossLayer(LossLayer):
    """loss = sum over pairs of (similar: d^2; dissimilar: max(margin - d, 0)^2, or with
    legacy_version max(margin - d^2, 0)) / num / 2, d = ||a - b||, similar = int(y) != 0.

    Bottoms a (N, C, 1, 1), b (N, C, 1, 1), y (N, 1, 1, 1); a and b take gradients, y none
    (and force_backward may not ask for it)."""

    bottom_roles = {2: "binary"}
    label_backward_fatal = False  # Backward_cpu loops over bottoms 0 and 1 only: the labels are left alone

    exact_num_bottom_blobs = 3

    @classmethod
    def allow_force_backward(cls, bottom_index: int) -> bool:
        return bottom_index != 2

    def layer_setup(self, bottom, top):
        super().layer_setup(bottom, top)
        # These are checked once, in LayerSetUp: a later reshape is not rechecked.
        check_eq(
            legacy_shape(bottom[0], 1),
            legacy_shape(bottom[1], 1),
            "bottom[0]->channels()",
            "bottom[1]->channels()",
        )
        check_eq(legacy_shape(bottom[0], 2), 1, "bottom[0]->height()", "1")
        check_eq(legacy_shape(bottom[0], 3), 1, "bottom[0]->width()", "1")
        check_eq(legacy_shape(bottom[1], 2), 1, "bottom[1]->height()", "1")
        check_eq(legacy_shape(bottom[1], 3), 1, "bottom[1]->width()", "1")
        check_eq(legacy_shape(bottom[2], 1), 1, "bottom[2]->channels()", "1")
        check_eq(legacy_shape(bottom[2], 2), 1, "bottom[2]->height()", "1")
        check_eq(legacy_shape(bottom[2], 3), 1, "bottom[2]->width()", "1")

    def _similar(self, bottom, num):
        return bottom[2].data.reshape(-1)[:num].to(torch.int64) != 0

    def forward(self, bottom, top):
        num, channels = legacy_shape(bottom[0], 0), legacy_shape(bottom[0], 1)
        p = self.param.contrastive_loss_param
        self.diff = (bottom[0].data.reshape(-1) - bottom[1].data.reshape(-1)).reshape(num, channels)
        self.dist_sq = (self.diff * self.diff).sum(dim=1)
        if p.legacy_version:
            dissimilar = std_max(p.margin - self.dist_sq, 0.0)
        else:
            # margin - sqrt(.) is a double expression (sqrt binds to the double
            # function), rounded once by std::max<Dtype>.
            gap = std_max((p.margin - torch.sqrt(self.dist_sq.to(torch.float64))).to(self.dist_sq.dtype), 0.0)
            dissimilar = gap * gap
        per_pair = torch.where(self._similar(bottom, num), self.dist_sq, dissimilar)
        top[0].data.copy_(per_pair.sum() / num / 2)

    def backward(self, top, propagate_down, bottom):
        p = self.param.contrastive_loss_param
        for i in range(2):
            if not propagate_down[i]:
                continue
            num = legacy_shape(bottom[i], 0)
            sign = 1.0 if i == 0 else -1.0
            alpha = sign * self.loss_weight(top) / num
            if p.legacy_version:
                mdist = p.margin - self.dist_sq
                beta = -alpha.expand_as(mdist)
            else:
                dist = libm(torch.sqrt, self.dist_sq)
                mdist = p.margin - dist
                beta = -alpha * mdist / (dist + DISTANCE_EPSILON)
            similar = self._similar(bottom, num)[:, None]
            # Each row is a caffe_cpu_axpby with beta 0: a zero coefficient skips the row's diff.
            dissimilar = torch.where((mdist > 0)[:, None], scal(beta[:, None], self.diff), 0.0)
            value = torch.where(similar, scal(alpha, self.diff), dissimilar)
            bottom[i].diff.copy_(value.reshape(bottom[i].diff.shape))
