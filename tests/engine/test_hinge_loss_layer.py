"""HingeLoss: a port of src/caffe/test/test_hinge_loss_layer.cpp, plus the diff written in forward."""

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward

from reference_engine.checks import CaffeError, Unsupported


def scores(shape=(5, 4), seed=1701):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2
    # Keep 1 + s x away from the hinge at 0 (Caffe's test scales inputs to the same end).
    return torch.where((x.abs() - 1).abs() < 0.05, x * 1.2, x)


def labels(num=5, classes=4, seed=7):
    return torch.randint(0, classes, (num,), generator=torch.Generator().manual_seed(seed)).to(torch.float64)


def margins(x, y):
    x = x.reshape(x.shape[0], -1)
    sign = torch.ones_like(x)
    sign[torch.arange(x.shape[0]), y.long()] = -1
    return torch.clamp_min(1 + sign * x, 0)


@pytest.mark.parametrize("norm", [None, "L1", "L2"])
@pytest.mark.parametrize("shape", [(5, 4), (5, 2, 2, 1)])
def test_forward_and_gradient(norm, shape):
    x, y = scores(shape), labels()
    proto = 'type: "HingeLoss"' + ("" if norm is None else f" hinge_loss_param {{ norm: {norm} }}")
    layer, bottom, top = make_layer(proto, [x, y])
    (loss,) = run_forward(layer, bottom, top)
    m = margins(x, y)
    expected = (m * m).sum() / 5 if norm == "L2" else m.sum() / 5
    torch.testing.assert_close(loss, expected, rtol=1e-14, atol=0)
    check_gradients(layer, bottom, top, check_bottom=[0])


def test_forward_writes_the_margins_into_the_bottom_diff():
    x, y = scores(), labels()
    layer, bottom, top = make_layer('type: "HingeLoss"', [x, y])
    run_forward(layer, bottom, top)
    assert torch.equal(bottom[0].diff, margins(x, y).reshape(x.shape))


def test_loss_weight_is_read_from_the_top_diff():
    x, y = scores(), labels()
    layer, bottom, top = make_layer('type: "HingeLoss" hinge_loss_param { norm: L2 }', [x, y])
    run_forward(layer, bottom, top)
    layer.backward(top, [True, False], bottom)
    once = bottom[0].diff.clone()
    run_forward(layer, bottom, top)  # backward consumed the margins it left in the diff
    top[0].diff.fill_(3.0)
    layer.backward(top, [True, False], bottom)
    torch.testing.assert_close(bottom[0].diff, 3 * once, rtol=1e-15, atol=0)


def test_cannot_backpropagate_to_labels():
    layer, bottom, top = make_layer('type: "HingeLoss"', [scores(), labels()])
    run_forward(layer, bottom, top)
    with pytest.raises(CaffeError) as error:
        layer.backward(top, [True, True], bottom)
    assert error.value.message == "HingeLoss Layer cannot backpropagate to label inputs."


def test_out_of_range_label_is_refused():
    with pytest.raises(Unsupported, match="label 4 is outside"):
        layer, bottom, top = make_layer('type: "HingeLoss"', [scores(), torch.full((5,), 4.0)])
        run_forward(layer, bottom, top)
