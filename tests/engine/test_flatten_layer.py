"""Flatten: shapes, shared data, and the bottom diff aliased to the top's whatever propagate_down says.

Follows src/caffe/test/test_flatten_layer.cpp."""

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward

X = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.mark.parametrize(
    "body,shape",
    [
        ("", [2, 60]),
        ("axis: 2", [2, 3, 20]),
        ("end_axis: -2", [2, 12, 5]),
        ("axis: 0 end_axis: 1", [6, 4, 5]),
    ],
)
def test_shape_and_forward(body, shape):
    layer, bottom, top = make_layer(f'type: "Flatten" flatten_param {{ {body} }}', [X])
    assert top[0].shape == shape
    (y,) = run_forward(layer, bottom, top)
    torch.testing.assert_close(y, X.reshape(shape))


def test_gradient_and_diff_aliasing():
    layer, bottom, top = make_layer('type: "Flatten"', [X])
    check_gradients(layer, bottom, top)
    layer.backward(top, [False], bottom)
    top[0].diff.fill_(4)
    assert bool((bottom[0].diff == 4).all())
