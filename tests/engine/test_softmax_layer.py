"""Softmax: a port of src/caffe/test/test_softmax_layer.cpp, plus axis and the max shift."""

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward


def scores(shape, seed=1701):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("axis, shape", [(None, (2, 5, 2, 3)), (2, (2, 3, 4)), (-1, (3, 4)), (0, (4, 2))])
def test_softmax_forward_and_gradient(axis, shape):
    x = scores(shape)
    proto = 'type: "Softmax"' + ("" if axis is None else f" softmax_param {{ axis: {axis} }}")
    layer, bottom, top = make_layer(proto, [x])
    (y,) = run_forward(layer, bottom, top)
    torch.testing.assert_close(y, torch.softmax(x, dim=1 if axis is None else axis), rtol=1e-14, atol=1e-15)
    check_gradients(layer, bottom, top)


def test_softmax_subtracts_the_max_so_large_scores_do_not_overflow():
    layer, bottom, top = make_layer(
        'type: "Softmax"', [torch.tensor([[1000.0, 1001.0]], dtype=torch.float64)]
    )
    (y,) = run_forward(layer, bottom, top)
    torch.testing.assert_close(y, torch.softmax(torch.tensor([[0.0, 1.0]], dtype=torch.float64), 1))


def test_softmax_backward_ignores_propagate_down():
    layer, bottom, top = make_layer('type: "Softmax"', [scores((2, 3))])
    run_forward(layer, bottom, top)
    top[0].diff.copy_(scores((2, 3), seed=2))
    layer.backward(top, [False], bottom)
    assert bottom[0].diff.abs().sum() > 0
