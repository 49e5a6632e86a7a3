"""SigmoidCrossEntropyLoss: a port of src/caffe/test/test_sigmoid_cross_entropy_loss_layer.cpp."""

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward

from reference_engine.checks import CaffeError


def gaussian(shape, seed=1701):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 3


def targets(shape, seed=7):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def reference(x, t, keep):
    per = -(t * torch.nn.functional.logsigmoid(x) + (1 - t) * torch.nn.functional.logsigmoid(-x))
    return per[keep].sum()


@pytest.mark.parametrize(
    "loss_param, normalizer",
    [
        ("", 4),  # unset: BATCH_SIZE, unlike SoftmaxWithLoss
        ("loss_param { normalization: FULL }", 24),
        ("loss_param { normalization: VALID }", "valid"),
        ("loss_param { normalization: NONE }", 1),
        ("loss_param { normalize: true }", "valid"),
        ("loss_param { normalize: false }", 4),
    ],
)
@pytest.mark.parametrize("ignore", [None, -1])
def test_forward_and_gradient(loss_param, normalizer, ignore):
    x, t = gaussian((4, 3, 2)), targets((4, 3, 2))
    keep = torch.ones_like(t, dtype=torch.bool)
    if ignore is not None:
        t[0, 1, 0] = t[2, 2, 1] = -1.0  # int(-1.0) == ignore_label
        keep = t != -1
        loss_param = (loss_param[:-1] if loss_param else "loss_param { ") + f" ignore_label: {ignore} }}"
    layer, bottom, top = make_layer(f'type: "SigmoidCrossEntropyLoss" {loss_param}', [x, t])
    (loss,) = run_forward(layer, bottom, top)
    n = int(keep.sum()) if normalizer == "valid" else normalizer
    torch.testing.assert_close(loss, reference(x, t, keep) / n, rtol=1e-13, atol=0)
    check_gradients(layer, bottom, top, check_bottom=[0])


def test_large_inputs_are_stable():
    x = torch.tensor([[800.0, -800.0]], dtype=torch.float64)
    layer, bottom, top = make_layer('type: "SigmoidCrossEntropyLoss"', [x, torch.tensor([[0.0, 1.0]])])
    (loss,) = run_forward(layer, bottom, top)
    assert loss.item() == pytest.approx(1600.0)


def test_loss_weight_is_read_from_the_top_diff():
    layer, bottom, top = make_layer('type: "SigmoidCrossEntropyLoss"', [gaussian((3, 2)), targets((3, 2))])
    run_forward(layer, bottom, top)
    layer.backward(top, [True, False], bottom)
    once = bottom[0].diff.clone()
    top[0].diff.fill_(3.0)
    layer.backward(top, [True, False], bottom)
    torch.testing.assert_close(bottom[0].diff, 3 * once, rtol=1e-15, atol=0)


def test_cannot_backpropagate_to_labels():
    layer, bottom, top = make_layer('type: "SigmoidCrossEntropyLoss"', [gaussian((3, 2)), targets((3, 2))])
    run_forward(layer, bottom, top)
    with pytest.raises(CaffeError) as error:
        layer.backward(top, [True, True], bottom)
    assert error.value.message == "SigmoidCrossEntropyLoss Layer cannot backpropagate to label inputs."


def test_counts_must_match():
    with pytest.raises(
        CaffeError,
        match=r"\(6 vs\. 3\) SIGMOID_CROSS_ENTROPY_LOSS layer inputs must have the "
        r"same count\.$",
    ):
        make_layer('type: "SigmoidCrossEntropyLoss"', [gaussian((3, 2)), targets((3, 1))])
