"""BatchNorm: batch and stored statistics, running sums, gradients, propagate_down ignored.

Follows src/caffe/test/test_batch_norm_layer.cpp."""

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward

from reference_engine.checks import CaffeError

X = torch.randn(3, 2, 2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 + 1


def test_train_forward_and_running_sums():
    layer, bottom, top = make_layer(
        'type: "BatchNorm" batch_norm_param { moving_average_fraction: 0.5 }', [X]
    )
    (y,) = run_forward(layer, bottom, top)
    mean = X.mean((0, 2, 3), keepdim=True)
    var = ((X - mean) ** 2).mean((0, 2, 3), keepdim=True)
    eps = layer.param.batch_norm_param.eps
    torch.testing.assert_close(y, (X - mean) / torch.sqrt(var + eps))
    m = X.numel() // 2
    torch.testing.assert_close(layer.blobs[0].data, mean.view(-1))
    torch.testing.assert_close(layer.blobs[1].data, var.view(-1) * m / (m - 1))
    assert float(layer.blobs[2].data[0]) == 1.0
    run_forward(layer, bottom, top)  # each TRAIN forward updates the sums again
    torch.testing.assert_close(layer.blobs[0].data, 1.5 * mean.view(-1))
    assert float(layer.blobs[2].data[0]) == 1.5


def test_test_phase_uses_stored_statistics():
    layer, bottom, top = make_layer('type: "BatchNorm"', [X], phase="TEST")
    layer.blobs[0].data.copy_(torch.tensor([2.0, 4.0]))
    layer.blobs[1].data.copy_(torch.tensor([8.0, 2.0]))
    layer.blobs[2].data.fill_(2.0)
    (y,) = run_forward(layer, bottom, top)
    eps = layer.param.batch_norm_param.eps
    mean, var = torch.tensor([1.0, 2.0]).view(1, 2, 1, 1), torch.tensor([4.0, 1.0]).view(1, 2, 1, 1)
    torch.testing.assert_close(y, (X - mean) / torch.sqrt(var.double() + eps))
    layer.blobs[2].data.zero_()  # scale factor 0: mean and variance read as 0
    (y,) = run_forward(layer, bottom, top)
    torch.testing.assert_close(y, X / torch.sqrt(torch.tensor(eps, dtype=torch.float64)))


@pytest.mark.parametrize(
    "phase,body",
    [
        ("TRAIN", ""),
        ("TEST", ""),
        ("TRAIN", "use_global_stats: true"),
        ("TEST", "use_global_stats: false"),
    ],
)
def test_gradient(phase, body):
    layer, bottom, top = make_layer(f'type: "BatchNorm" batch_norm_param {{ {body} }}', [X], phase=phase)
    layer.blobs[0].data.copy_(torch.tensor([0.5, -1.0]))
    layer.blobs[1].data.copy_(torch.tensor([2.0, 3.0]))
    layer.blobs[2].data.fill_(1.0)
    hide_statistics(layer)
    check_gradients(layer, bottom, top)


def hide_statistics(layer):
    """check_gradients perturbs every blob in layer.blobs; BatchNorm's are statistics, not learned.
    Keep them out of its sight, and restore them before each forward (TRAIN forwards update them)."""
    statistics = layer.blobs
    snapshot = [b.data.clone() for b in statistics]
    forward, backward = layer.forward, layer.backward

    def frozen_forward(bottom, top):
        layer.blobs = statistics
        for b, s in zip(statistics, snapshot):
            b.data.copy_(s)
        forward(bottom, top)
        layer.blobs = []

    def backward_with_statistics(top, propagate_down, bottom):
        layer.blobs = statistics
        backward(top, propagate_down, bottom)
        layer.blobs = []

    layer.forward, layer.backward = frozen_forward, backward_with_statistics
    layer.blobs = []


def test_backward_ignores_propagate_down():
    layer, bottom, top = make_layer('type: "BatchNorm"', [X])
    run_forward(layer, bottom, top)
    top[0].diff.copy_(torch.randn(X.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    layer.backward(top, [False], bottom)
    assert bool((bottom[0].diff != 0).any())


def test_param_specs_get_lr_mult_zero_and_refuse_learning():
    layer, _, _ = make_layer('type: "BatchNorm"', [X])
    assert [p.lr_mult for p in layer.param.param] == [0.0, 0.0, 0.0]
    with pytest.raises(
        CaffeError, match="Cannot configure batch normalization statistics as layer parameters."
    ):
        make_layer('type: "BatchNorm" param { lr_mult: 1 }', [X])
