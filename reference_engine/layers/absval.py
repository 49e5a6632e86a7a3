"""AbsVal. Caffe: src/caffe/layers/absval_layer.cpp."""

import torch

from ..checks import check_ne
from ..layer import register_layer
from ..math_functions import sign
from .neuron import NeuronLayer


@register_layer("AbsVal")
class AbsValLayer(NeuronLayer):
    """y = |x|; the gradient at 0 is 0 (caffe_cpu_sign)."""

    @classmethod
    def in_place_hazard(cls, param):
        return "Caffe aborts: AbsVal Layer does not allow in-place computation (absval_layer.cpp CHECK)"

    def layer_setup(self, bottom, top):
        # Caffe's CHECK_NE compares the blob pointers, so its message carries two
        # addresses; ours carries the Python ids, and a comparison must mask them.
        check_ne(
            hex(id(top[0])),
            hex(id(bottom[0])),
            "top[0]",
            "bottom[0]",
            f"{self.type} Layer does not allow in-place computation.",
        )

    def forward(self, bottom, top):
        top[0].data.copy_(torch.abs(bottom[0].data))

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        bottom[0].diff.copy_(sign(bottom[0].data) * top[0].diff)  # caffe_cpu_sign: 0 for NaN
