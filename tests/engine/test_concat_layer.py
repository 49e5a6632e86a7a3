"""Concat. Follows src/caffe/test/test_concat_layer.cpp."""

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward

from reference_engine.checks import CaffeError

G = torch.Generator().manual_seed(0)
A, B = (
    torch.randn(2, 3, 2, generator=G, dtype=torch.float64),
    torch.randn(2, 1, 2, generator=G, dtype=torch.float64),
)


@pytest.mark.parametrize(
    "body,bottoms,axis",
    [
        ("", (A, B), 1),
        ("axis: 0", (A, A), 0),
        ("concat_dim: 1", (A, B), 1),
        ("axis: -1", (A, A), 2),
    ],
)
def test_forward_and_gradient(body, bottoms, axis):
    layer, bottom, top = make_layer(f'type: "Concat" concat_param {{ {body} }}', list(bottoms))
    (y,) = run_forward(layer, bottom, top)
    torch.testing.assert_close(y, torch.cat(bottoms, axis))
    check_gradients(layer, bottom, top)


def test_propagate_down_per_bottom():
    layer, bottom, top = make_layer('type: "Concat"', [A, B])
    run_forward(layer, bottom, top)
    top[0].diff.fill_(1)
    bottom[1].diff.fill_(5)
    layer.backward(top, [True, False], bottom)
    assert bool((bottom[0].diff == 1).all()) and bool((bottom[1].diff == 5).all())


def test_one_bottom_shares_data_and_diff():
    _, bottom, top = make_layer('type: "Concat"', [A])
    top[0].diff.fill_(3)
    assert bool((bottom[0].diff == 3).all())


def test_shape_mismatch():
    with pytest.raises(CaffeError, match="All inputs must have the same shape, except at concat_axis."):
        make_layer('type: "Concat" concat_param { axis: 0 }', [A, B])
