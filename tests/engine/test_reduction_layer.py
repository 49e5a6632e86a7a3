"""Reduction: every op, axis and coeff. Follows src/caffe/test/test_reduction_layer.cpp."""

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward

# Kept away from 0 so ASUM has no kink within a finite-difference step.
X = torch.randn(2, 3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
X = X + 0.2 * torch.sign(X)

OPS = {
    "SUM": lambda x: x.sum(1),
    "ASUM": lambda x: x.abs().sum(1),
    "SUMSQ": lambda x: (x * x).sum(1),
    "MEAN": lambda x: x.mean(1),
}


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("axis,coeff", [(0, 1.0), (1, -2.5), (-1, 0.5)])
def test_forward_and_gradient(op, axis, coeff):
    layer, bottom, top = make_layer(
        f'type: "Reduction" reduction_param {{ operation: {op} axis: {axis} coeff: {coeff} }}', [X]
    )
    a = axis % 3
    assert top[0].shape == list(X.shape[:a])
    (y,) = run_forward(layer, bottom, top)
    expected = coeff * OPS[op](X.reshape(X.shape[:a].numel(), -1))
    torch.testing.assert_close(y.reshape(-1), expected)
    check_gradients(layer, bottom, top)
