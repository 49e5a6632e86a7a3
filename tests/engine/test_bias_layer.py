"""Bias: forward, gradients, accumulate vs overwrite. Follows src/caffe/test/test_bias_layer.cpp."""

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward

G = torch.Generator().manual_seed(0)
X = torch.randn(2, 3, 4, generator=G, dtype=torch.float64)


def bias(body=""):
    return f'type: "Bias" bias_param {{ {body} filler {{ type: "gaussian" std: 1 }} }}'


def test_forward_and_default_filler_zero():
    layer, bottom, top = make_layer('type: "Bias"', [X])
    (y,) = run_forward(layer, bottom, top)
    torch.testing.assert_close(y, X)
    layer, bottom, top = make_layer(bias("axis: 0 num_axes: 2"), [X])
    (y,) = run_forward(layer, bottom, top)
    torch.testing.assert_close(y, X + layer.blobs[0].data[:, :, None])


@pytest.mark.parametrize("body", ["", "num_axes: 0", "axis: 0 num_axes: -1", "axis: -1"])
def test_gradient_learned(body):
    layer, bottom, top = make_layer(bias(body), [X])
    check_gradients(layer, bottom, top)


def test_gradient_two_bottoms():
    b = torch.randn(3, 4, generator=G, dtype=torch.float64)
    layer, bottom, top = make_layer(bias(), [X, b])
    check_gradients(layer, bottom, top)


def test_learned_diff_accumulates_bottom_diff_overwritten():
    b = torch.randn(3, generator=G, dtype=torch.float64)
    layer, bottom, top = make_layer(bias(), [X])
    layer.param_propagate_down = [True]
    run_forward(layer, bottom, top)
    top[0].diff.fill_(1)
    layer.backward(top, [True], bottom)
    layer.backward(top, [True], bottom)
    assert layer.blobs[0].diff.tolist() == [16.0, 16.0, 16.0]
    layer, bottom, top = make_layer(bias(), [X, b])
    run_forward(layer, bottom, top)
    top[0].diff.fill_(1)
    layer.backward(top, [True, True], bottom)
    layer.backward(top, [True, True], bottom)
    assert bottom[1].diff.tolist() == [8.0, 8.0, 8.0]
