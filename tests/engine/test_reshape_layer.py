"""Reshape: shape inference (0 copies, -1 inferred, axis/num_axes) and shared data and diff.

Follows src/caffe/test/test_reshape_layer.cpp."""

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward

from reference_engine.checks import CaffeError

X = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def reshape(dims, extra=""):
    return (
        'type: "Reshape" reshape_param { shape { '
        + " ".join(f"dim: {d}" for d in dims)
        + " } "
        + extra
        + " }"
    )


@pytest.mark.parametrize(
    "dims,extra,shape",
    [
        ([0, -1], "", [2, 12]),
        ([6, 4], "", [6, 4]),
        ([-1], "", [24]),
        ([2, 2], "axis: 2", [2, 3, 2, 2]),
        ([1], "axis: 1 num_axes: 0", [2, 1, 3, 4]),
        ([0, 0, 2, 2], "", [2, 3, 2, 2]),
        ([-1, 2], "axis: -2", [2, 3, 2, 2]),
    ],
)
def test_shapes(dims, extra, shape):
    layer, bottom, top = make_layer(reshape(dims, extra), [X])
    assert top[0].shape == shape
    (y,) = run_forward(layer, bottom, top)
    torch.testing.assert_close(y.reshape(-1), X.reshape(-1))


def test_shares_diff_so_gradient_flows_regardless():
    layer, bottom, top = make_layer(reshape([0, -1]), [X])
    check_gradients(layer, bottom, top)
    top[0].diff.fill_(2)
    layer.backward(top, [False], bottom)
    assert bool((bottom[0].diff == 2).all())


def test_errors():
    with pytest.raises(CaffeError, match="new shape contains multiple -1 dims"):
        make_layer(reshape([-1, -1]), [X])
    with pytest.raises(
        CaffeError, match="must be divisible by the product of the specified dimensions \\(5\\)"
    ):
        make_layer(reshape([5, -1]), [X])
    with pytest.raises(CaffeError, match="output count must match input count"):
        make_layer(reshape([5]), [X])
