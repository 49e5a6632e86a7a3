"""Dropout. Caffe: src/caffe/layers/dropout_layer.cpp."""

import torch

from .. import caffe_pb2
from ..checks import check_ge, check_le
from ..layer import register_layer
from .neuron import NeuronLayer


@register_layer("Dropout")
class DropoutLayer(NeuronLayer):
    """TRAIN: y = x * mask * scale, mask ~ Bernoulli(1 - ratio), scale = 1 / (1 - ratio);
    TEST: y = x (no scaling). The phase is the layer's own.

    Caffe draws the mask from its own RNG, which we cannot reproduce; a harness recovers
    the mask Caffe drew and hands it over with ``set_mask`` before the forward. Without
    one, the mask is drawn from ``self.generator`` (which the net may seed). BVLC Caffe
    has no ``scale_train`` (a fork's field), so neither do we."""

    may_run_in_place = True
    random_in_train = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.generator = torch.Generator()
        self.pending_mask = None
        self.mask = None

    def layer_setup(self, bottom, top):
        # Caffe only DCHECKs 0 < ratio < 1; release builds run with any value.
        self.threshold = self.param.dropout_param.dropout_ratio
        # scale_ = 1. / (1. - threshold_) is a double expression stored as Dtype.
        self.scale = float(
            torch.tensor(1.0 / (1.0 - self.threshold) if self.threshold != 1 else torch.inf, dtype=self.dtype)
        )

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        if self.mask is None or list(self.mask.shape) != list(bottom[0].shape):
            self.mask = torch.zeros(bottom[0].shape, dtype=torch.int32, device=self.device)

    def set_mask(self, mask):
        """Make the next TRAIN forward use ``mask`` (0/1, the bottom's shape) instead of a draw."""
        mask = torch.as_tensor(mask)
        if self.mask is None:
            raise ValueError("set_mask: the layer must be set up first (its mask shape is the bottom's)")
        if list(mask.shape) != list(self.mask.shape):
            raise ValueError(
                f"mask shape {list(mask.shape)}: a Dropout mask must have the bottom's shape "
                f"{list(self.mask.shape)}"
            )
        if bool(((mask != 0) & (mask != 1)).any()):
            raise ValueError("mask: a Dropout mask holds only 0 and 1")
        self.pending_mask = mask.to(device=self.device, dtype=torch.int32)

    def forward(self, bottom, top):
        x = bottom[0].data
        if self.phase == caffe_pb2.TRAIN:
            p = 1.0 - self.threshold
            # caffe_rng_bernoulli's range checks, which do run in release builds.
            check_ge(p, 0, "p", "0")
            check_le(p, 1, "p", "1")
            if self.pending_mask is not None:
                self.mask.copy_(self.pending_mask)
                self.pending_mask = None
            else:
                draw = torch.bernoulli(torch.full(x.shape, p, dtype=torch.float64), generator=self.generator)
                self.mask.copy_(draw.to(device=self.device, dtype=torch.int32))
            top[0].data.copy_(x * self.mask.to(x.dtype) * self.scale)
        else:
            top[0].data.copy_(x)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].diff
        if self.phase == caffe_pb2.TRAIN:
            bottom[0].diff.copy_(dy * self.mask.to(dy.dtype) * self.scale)
        else:
            bottom[0].diff.copy_(dy)
