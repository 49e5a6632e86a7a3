"""SoftmaxWithLoss: a port of src/caffe/test/test_softmax_with_loss_layer.cpp, plus every
normalization mode, the loss weight read from the top diff, and Caffe's refusals."""

import math

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward

from reference_engine.checks import CaffeError


def scores(shape, seed=1701):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def labels(shape, classes, seed=7):
    return torch.randint(0, classes, shape, generator=torch.Generator().manual_seed(seed)).to(torch.float64)


def reference_loss(x, y, axis=1, ignore=None):
    """(sum of -log p[label] over counted labels, number counted), labels along ``axis``."""
    log_p = torch.log_softmax(x, dim=axis).movedim(axis, -1).reshape(-1, x.shape[axis])
    y = y.reshape(-1).long()
    keep = torch.ones_like(y, dtype=torch.bool) if ignore is None else y != ignore
    picked = log_p[torch.arange(len(y)), torch.where(keep, y, 0)]
    return -picked[keep].sum(), int(keep.sum())


X_SHAPE, Y_SHAPE = (3, 4, 2, 2), (3, 1, 2, 2)


@pytest.mark.parametrize(
    "loss_param, normalizer",
    [
        ("", "valid"),
        ("loss_param { normalization: FULL }", 12),
        ("loss_param { normalization: VALID }", "valid"),
        ("loss_param { normalization: BATCH_SIZE }", 3),
        ("loss_param { normalization: NONE }", 1),
        ("loss_param { normalize: true }", "valid"),
        ("loss_param { normalize: false }", 3),
        ("loss_param { normalization: FULL normalize: false }", 12),  # normalization wins
    ],
)
@pytest.mark.parametrize("ignore", [None, 2])
def test_forward_and_gradient_for_each_normalization(loss_param, normalizer, ignore):
    x, y = scores(X_SHAPE), labels(Y_SHAPE, 4)
    if ignore is not None:
        loss_param = (loss_param[:-1] if loss_param else "loss_param { ") + f" ignore_label: {ignore} }}"
    layer, bottom, top = make_layer(f'type: "SoftmaxWithLoss" {loss_param}', [x, y])
    (loss,) = run_forward(layer, bottom, top)
    total, count = reference_loss(x, y, ignore=ignore)
    expected = total / (count if normalizer == "valid" else normalizer)
    torch.testing.assert_close(loss, expected, rtol=1e-13, atol=0)
    check_gradients(layer, bottom, top, check_bottom=[0])


def test_axis_and_label_count():
    x, y = scores((2, 3, 5)), labels((2, 3), 5)
    layer, bottom, top = make_layer('type: "SoftmaxWithLoss" softmax_param { axis: 2 }', [x, y])
    (loss,) = run_forward(layer, bottom, top)
    total, count = reference_loss(x, y, axis=2)
    torch.testing.assert_close(loss, total / count, rtol=1e-13, atol=0)
    check_gradients(layer, bottom, top, check_bottom=[0])


def test_all_labels_ignored_gives_zero_not_nan():
    x, y = scores((2, 3)), torch.full((2,), 1.0, dtype=torch.float64)
    layer, bottom, top = make_layer('type: "SoftmaxWithLoss" loss_param { ignore_label: 1 }', [x, y])
    (loss,) = run_forward(layer, bottom, top)
    assert loss == 0.0
    layer.backward(top, [True, False], bottom)
    assert torch.equal(bottom[0].diff, torch.zeros(2, 3, dtype=torch.float64))


def test_loss_weight_is_read_from_the_top_diff():
    x, y = scores((4, 3)), labels((4,), 3)
    layer, bottom, top = make_layer('type: "SoftmaxWithLoss"', [x, y])
    assert top[0].diff.item() == 1.0 and list(layer.param.loss_weight) == [1.0]  # LossLayer's implicit weight
    run_forward(layer, bottom, top)
    layer.backward(top, [True, False], bottom)
    once = bottom[0].diff.clone()
    top[0].diff.fill_(3.0)
    layer.backward(top, [True, False], bottom)
    torch.testing.assert_close(bottom[0].diff, 3 * once, rtol=1e-15, atol=0)


def test_explicit_loss_weight_goes_into_the_top_diff():
    layer, bottom, top = make_layer(
        'type: "SoftmaxWithLoss" loss_weight: 0.5', [scores((4, 3)), labels((4,), 3)]
    )
    assert top[0].diff.item() == 0.5
    loss = layer.forward_layer(bottom, top)
    assert loss == pytest.approx(0.5 * top[0].data.item())


def test_cannot_backpropagate_to_labels():
    layer, bottom, top = make_layer('type: "SoftmaxWithLoss"', [scores((4, 3)), labels((4,), 3)])
    run_forward(layer, bottom, top)
    with pytest.raises(CaffeError) as error:
        layer.backward(top, [True, True], bottom)
    assert error.value.message == "SoftmaxWithLoss Layer cannot backpropagate to label inputs."


def test_two_tops_cannot_be_set_up_either_way():
    # BVLC/caffe#2968: one loss weight fails the outer check, two fail the internal Softmax's.
    with pytest.raises(CaffeError, match=r"^Check failed: top.size\(\) == num_loss_weights \(2 vs\. 1\) "):
        make_layer('type: "SoftmaxWithLoss"', [scores((4, 3)), labels((4,), 3)], num_tops=2)
    with pytest.raises(CaffeError, match=r"^Check failed: top.size\(\) == num_loss_weights \(1 vs\. 2\) "):
        make_layer(
            'type: "SoftmaxWithLoss" loss_weight: 1 loss_weight: 0',
            [scores((4, 3)), labels((4,), 3)],
            num_tops=2,
        )


def test_label_count_must_match():
    with pytest.raises(
        CaffeError,
        match=r"^Check failed: outer_num_ \* inner_num_ == bottom\[1\]->count\(\) "
        r"\(6 vs\. 3\) Number of labels must match",
    ):
        make_layer('type: "SoftmaxWithLoss"', [scores((3, 4, 2)), labels((3, 1), 4)])


def test_first_dimensions_must_match():
    with pytest.raises(
        CaffeError,
        match=r"^Check failed: bottom\[0\]->shape\(0\) == bottom\[1\]->shape\(0\) "
        r"\(4 vs\. 2\) The data and label should have the same first dimension\.$",
    ):
        make_layer('type: "SoftmaxWithLoss"', [scores((4, 3)), labels((2, 2), 3)])


def test_tiny_probability_is_floored_at_flt_min():
    x = torch.tensor([[0.0, -2000.0]], dtype=torch.float64)
    layer, bottom, top = make_layer('type: "SoftmaxWithLoss"', [x, torch.tensor([1.0], dtype=torch.float64)])
    (loss,) = run_forward(layer, bottom, top)
    assert loss.item() == pytest.approx(-math.log(1.17549435e-38))


def test_labels_are_truncated_toward_zero():
    x = scores((2, 3))
    layer, bottom, top = make_layer(
        'type: "SoftmaxWithLoss"', [x, torch.tensor([1.9, 2.5], dtype=torch.float64)]
    )
    (loss,) = run_forward(layer, bottom, top)
    total, count = reference_loss(x, torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(loss, total / count)
