"""Eltwise: SUM with coeffs, PROD both gradients, MAX tie rule. Follows src/caffe/test/test_eltwise_layer.cpp."""

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward

from reference_engine.checks import CaffeError


def bottoms(n, seed=0):
    # Distinct values spaced apart: MAX has no ties or kinks within a finite-difference step.
    values = (
        torch.randperm(n * 12, generator=torch.Generator().manual_seed(seed)).to(torch.float64) * 0.1 + 0.5
    )
    return [v.view(3, 4) for v in values.chunk(n)]


def test_sum_with_coeffs():
    a, b, c = bottoms(3)
    layer, bottom, top = make_layer(
        'type: "Eltwise" eltwise_param { operation: SUM coeff: 1 coeff: -0.5 coeff: 2 }', [a, b, c]
    )
    (y,) = run_forward(layer, bottom, top)
    torch.testing.assert_close(y, a - 0.5 * b + 2 * c)


def test_prod_and_max_forward():
    a, b, c = bottoms(3)
    layer, bottom, top = make_layer('type: "Eltwise" eltwise_param { operation: PROD }', [a, b, c])
    torch.testing.assert_close(run_forward(layer, bottom, top)[0], a * b * c)
    layer, bottom, top = make_layer('type: "Eltwise" eltwise_param { operation: MAX }', [a, b, c])
    torch.testing.assert_close(run_forward(layer, bottom, top)[0], torch.maximum(torch.maximum(a, b), c))


def test_max_ties():
    # Bottom 0 vs 1 ('>'): a tie goes to bottom 1. Bottom 2 must be strictly greater.
    one = torch.ones(1, 1, dtype=torch.float64)
    layer, bottom, top = make_layer('type: "Eltwise" eltwise_param { operation: MAX }', [one, one, one])
    run_forward(layer, bottom, top)
    top[0].diff.fill_(1)
    layer.backward(top, [True, True, True], bottom)
    assert [float(b.diff) for b in bottom] == [0.0, 1.0, 0.0]


@pytest.mark.parametrize(
    "body,n",
    [
        ("operation: SUM", 2),
        ("operation: SUM coeff: 2 coeff: -1 coeff: 0.5", 3),
        ("operation: PROD", 3),
        ("operation: PROD stable_prod_grad: false", 3),
        ("operation: MAX", 2),
        ("operation: MAX", 3),
    ],
)
def test_gradient(body, n):
    layer, bottom, top = make_layer(f'type: "Eltwise" eltwise_param {{ {body} }}', bottoms(n, seed=n))
    check_gradients(layer, bottom, top)


def test_propagate_down_per_bottom():
    a, b = bottoms(2)
    layer, bottom, top = make_layer('type: "Eltwise"', [a, b])
    run_forward(layer, bottom, top)
    top[0].diff.fill_(1)
    bottom[0].diff.fill_(9)
    layer.backward(top, [False, True], bottom)
    assert bool((bottom[0].diff == 9).all()) and bool((bottom[1].diff == 1).all())


def test_coeff_checks():
    a, b = bottoms(2)
    with pytest.raises(CaffeError, match="Eltwise Layer takes one coefficient per bottom blob."):
        make_layer('type: "Eltwise" eltwise_param { coeff: 1 }', [a, b])
    with pytest.raises(CaffeError, match="Eltwise layer only takes coefficients for summation."):
        make_layer('type: "Eltwise" eltwise_param { operation: PROD coeff: 1 coeff: 1 }', [a, b])
