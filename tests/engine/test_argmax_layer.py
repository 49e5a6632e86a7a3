"""ArgMax: a port of src/caffe/test/test_argmax_layer.cpp (forward only: backward aborts)."""

import pytest
import torch
from layer_testing import make_layer, run_forward

from reference_engine.checks import CaffeError


def scores(shape=(3, 4, 2, 2), seed=1701):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("top_k", [1, 3])
@pytest.mark.parametrize("out_max_val", [False, True])
def test_without_axis_over_the_flattened_instance(top_k, out_max_val):
    x = scores()
    layer, bottom, top = make_layer(
        f'type: "ArgMax" argmax_param {{ top_k: {top_k} out_max_val: {str(out_max_val).lower()} }}',
        [x],
    )
    (y,) = run_forward(layer, bottom, top)
    assert list(y.shape) == [3, 2 if out_max_val else 1, top_k, 1]
    values, index = x.reshape(3, -1).topk(top_k, dim=1)
    assert torch.equal(y[:, 0, :, 0], index.double())
    if out_max_val:
        assert torch.equal(y[:, 1, :, 0], values)


@pytest.mark.parametrize("axis", [1, 2, -1])
@pytest.mark.parametrize("out_max_val", [False, True])
def test_with_axis(axis, out_max_val):
    x = scores()
    layer, bottom, top = make_layer(
        f'type: "ArgMax" argmax_param {{ axis: {axis} top_k: 2 out_max_val: {str(out_max_val).lower()} }}',
        [x],
    )
    (y,) = run_forward(layer, bottom, top)
    values, index = x.topk(2, dim=axis)
    assert torch.equal(y, values if out_max_val else index.double())


def test_ties_go_to_the_larger_index():
    x = torch.tensor([[[5.0, 7.0, 7.0, 5.0]]], dtype=torch.float64)
    layer, bottom, top = make_layer('type: "ArgMax" argmax_param { top_k: 4 }', [x])
    (y,) = run_forward(layer, bottom, top)
    assert y.reshape(-1).tolist() == [2.0, 1.0, 3.0, 0.0]


def test_top_k_checks():
    with pytest.raises(CaffeError, match=r"^Check failed: top_k_ <= bottom\[0\]->count\(1\) \(17 vs\. 16\) "):
        make_layer('type: "ArgMax" argmax_param { top_k: 17 }', [scores()])
    with pytest.raises(
        CaffeError,
        match=r"^Check failed: top_k_ <= bottom\[0\]->shape\(axis_\) \(5 vs\. 4\) top_k must",
    ):
        make_layer('type: "ArgMax" argmax_param { top_k: 5 axis: 1 }', [scores()])


def test_backward_is_not_implemented():
    layer, bottom, top = make_layer('type: "ArgMax"', [scores()])
    with pytest.raises(CaffeError, match="^Not Implemented Yet$"):
        layer.backward(top, [True], bottom)
