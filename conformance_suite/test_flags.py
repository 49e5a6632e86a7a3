"""The layer list Caffe builds and its backward flags: need_backward, bottom_need_backward,
param_propagate_down and the multipliers after sharing, on nets of every kind, some of which
Caffe refuses (the engine must refuse them too, with Caffe's message)."""

from .features import Feature


def test_flags(check_feature):
    check_feature(Feature.flags())
