"""Split: tops share the bottom's data; backward sums the tops' diffs. Follows src/caffe/test/test_split_layer.cpp."""

import torch
from layer_testing import check_gradients, make_layer, run_forward

X = torch.randn(2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_forward_shares_and_backward_sums():
    layer, bottom, top = make_layer('type: "Split"', [X], num_tops=3)
    run_forward(layer, bottom, top)
    bottom[0].data.fill_(7)
    assert all(bool((t.data == 7).all()) for t in top)
    for k, t in enumerate(top):
        t.diff.fill_(k + 1)
    layer.backward(top, [True], bottom)
    assert bool((bottom[0].diff == 6).all())
    bottom[0].diff.fill_(0)
    layer.backward(top, [False], bottom)
    assert bool((bottom[0].diff == 0).all())


def test_gradient():
    for n in (1, 2, 3):
        layer, bottom, top = make_layer('type: "Split"', [X], num_tops=n)
        check_gradients(layer, bottom, top)
