"""Silence: no tops; backward zeroes the flagged bottoms' diffs (src/caffe/layers/silence_layer.cpp)."""

import torch
from layer_testing import make_layer, run_forward


def test_backward_zeroes_flagged_bottoms():
    layer, bottom, top = make_layer('type: "Silence"', [torch.ones(2), torch.ones(3)], num_tops=0)
    run_forward(layer, bottom, top)
    for b in bottom:
        b.diff.fill_(5)
    layer.backward(top, [True, False], bottom)
    assert bottom[0].diff.tolist() == [0.0, 0.0] and bottom[1].diff.tolist() == [5.0] * 3
