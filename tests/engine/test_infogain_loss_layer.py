"""InfogainLoss: a port of src/caffe/test/test_infogain_loss_layer.cpp (H as bottom 2)."""

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward

from reference_engine.checks import CaffeError, Unsupported


def inputs(outer=4, classes=3, inner=2, seed=1701):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((outer, classes, inner), generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (outer, inner), generator=g).to(torch.float64)
    h = torch.rand((classes, classes), generator=g, dtype=torch.float64)
    return x, y, h


def expected(x, y, h, axis=1, ignore=None):
    log_p = torch.log_softmax(x, dim=axis).movedim(axis, -1).reshape(-1, x.shape[axis])
    labels = y.reshape(-1).long()
    keep = torch.ones_like(labels, dtype=torch.bool) if ignore is None else labels != ignore
    per = -(h[torch.where(keep, labels, 0)] * log_p).sum(1)
    return per[keep].sum(), int(keep.sum())


@pytest.mark.parametrize(
    "loss_param, normalizer",
    [
        ("", "valid"),
        ("loss_param { normalization: FULL }", 8),
        ("loss_param { normalization: BATCH_SIZE }", 4),
        ("loss_param { normalization: NONE }", 1),
    ],
)
@pytest.mark.parametrize("ignore", [None, 1])
def test_forward_and_gradient(loss_param, normalizer, ignore):
    x, y, h = inputs()
    if ignore is not None:
        loss_param = (loss_param[:-1] if loss_param else "loss_param { ") + f" ignore_label: {ignore} }}"
    layer, bottom, top = make_layer(f'type: "InfogainLoss" {loss_param}', [x, y, h])
    (loss,) = run_forward(layer, bottom, top)
    total, count = expected(x, y, h, ignore=ignore)
    torch.testing.assert_close(
        loss, total / (count if normalizer == "valid" else normalizer), rtol=1e-13, atol=0
    )
    check_gradients(layer, bottom, top, check_bottom=[0])


def test_axis_and_softmax_top():
    x, _, h = inputs()
    x = x.permute(0, 2, 1).contiguous()  # classes on axis 2
    y = torch.randint(0, 3, (4, 2), generator=torch.Generator().manual_seed(3)).to(torch.float64)
    layer, bottom, top = make_layer(
        'type: "InfogainLoss" infogain_loss_param { axis: 2 } loss_weight: 1 loss_weight: 0',
        [x, y, h],
        num_tops=2,
    )
    loss, prob = run_forward(layer, bottom, top)
    total, count = expected(x, y, h, axis=2)
    torch.testing.assert_close(loss, total / count, rtol=1e-13, atol=0)
    torch.testing.assert_close(prob, torch.softmax(x, 2))


def test_loss_weight_is_read_from_the_top_diff():
    x, y, h = inputs()
    layer, bottom, top = make_layer('type: "InfogainLoss"', [x, y, h])
    run_forward(layer, bottom, top)
    layer.backward(top, [True, False, False], bottom)
    once = bottom[0].diff.clone()
    top[0].diff.fill_(3.0)
    layer.backward(top, [True, False, False], bottom)
    torch.testing.assert_close(bottom[0].diff, 3 * once, rtol=1e-15, atol=0)


@pytest.mark.parametrize("flags, what", [([True, True, False], "label"), ([True, False, True], "infogain")])
def test_cannot_backpropagate_to_labels_or_infogain(flags, what):
    layer, bottom, top = make_layer('type: "InfogainLoss"', list(inputs()))
    run_forward(layer, bottom, top)
    with pytest.raises(CaffeError) as error:
        layer.backward(top, flags, bottom)
    assert error.value.message == f"InfogainLoss Layer cannot backpropagate to {what} inputs."
    assert layer.allow_force_backward(2)  # so force_backward with H as a bottom aborts in Caffe


def test_normalize_is_refused():
    with pytest.raises(CaffeError, match=r'normalize is deprecated\. use "normalization"$'):
        make_layer('type: "InfogainLoss" loss_param { normalize: true }', list(inputs()))


def test_h_from_a_file_is_unsupported_and_a_missing_source_is_caffes_check():
    x, y, _ = inputs()
    with pytest.raises(CaffeError, match=r"Infogain matrix source must be specified\.$"):
        make_layer('type: "InfogainLoss"', [x, y])
    with pytest.raises(Unsupported, match="binaryproto"):
        make_layer('type: "InfogainLoss" infogain_loss_param { source: "h.binaryproto" }', [x, y])


def test_h_must_be_classes_squared():
    x, y, _ = inputs()
    with pytest.raises(
        CaffeError,
        match=r"^Check failed: infogain->count\(\) == num_labels_\*num_labels_ "
        r"\(4 vs\. 9\) $",
    ):
        make_layer('type: "InfogainLoss"', [x, y, torch.ones(2, 2)])
