"""LRN: both regions against direct formulas, gradients, propagate_down.

Follows src/caffe/test/test_lrn_layer.cpp (ReferenceLRNForward)."""

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward


def lrn(body=""):
    return f'type: "LRN" lrn_param {{ {body} }}'


def reference_across(x, size, alpha, beta, k):
    pad = (size - 1) // 2
    sq = torch.nn.functional.pad(x * x, (0, 0, 0, 0, pad, pad))
    c = x.shape[1]
    scale = k + alpha / size * torch.stack([sq[:, j : j + size].sum(1) for j in range(c)], 1)
    return x * scale**-beta


def reference_within(x, size, alpha, beta):
    pad = (size - 1) // 2
    sq = torch.nn.functional.pad(x * x, (pad, pad, pad, pad))
    h, w = x.shape[2:]
    total = sum(sq[:, :, i : i + h, j : j + w] for i in range(size) for j in range(size))
    return x * (1 + alpha * total / size**2) ** -beta


X = torch.randn(2, 7, 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


ACROSS = [
    ("", (5, 1.0, 0.75, 1.0)),
    ("local_size: 3 alpha: 0.5 beta: 0.6 k: 2", (3, 0.5, 0.6, 2.0)),
    ("local_size: 1 alpha: 0.5 beta: 0.6 k: 2", (1, 0.5, 0.6, 2.0)),  # each channel alone
    ("local_size: 13 alpha: 2 beta: 1.5 k: 0.5", (13, 2.0, 1.5, 0.5)),  # wider than 7 channels
]


@pytest.mark.parametrize("body,args", ACROSS)
def test_across_channels_forward(body, args):
    layer, bottom, top = make_layer(lrn(body), [X])
    (y,) = run_forward(layer, bottom, top)
    torch.testing.assert_close(y, reference_across(X, *args))


@pytest.mark.parametrize("body,args", ACROSS)
def test_across_channels_float32_and_a_second_call(body, args):
    """float32 stays within rounding of the float64 formula, and a second forward over
    different values (the layer's kept buffers) gives that input's result."""
    layer, bottom, top = make_layer(lrn(body), [X * 3], dtype=torch.float32)
    run_forward(layer, bottom, top)
    bottom[0].data.copy_(X)
    (y,) = run_forward(layer, bottom, top)
    torch.testing.assert_close(y, reference_across(X, *args).float())


def test_within_channel_forward_ignores_k():
    layer, bottom, top = make_layer(
        lrn("norm_region: WITHIN_CHANNEL local_size: 3 alpha: 0.7 beta: 0.6 k: 9"), [X]
    )
    (y,) = run_forward(layer, bottom, top)
    torch.testing.assert_close(y, reference_within(X, 3, 0.7, 0.6))


@pytest.mark.parametrize(
    "body",
    [
        "",
        "local_size: 3 beta: 0.6 k: 2",
        "local_size: 1 alpha: 0.5 k: 2",
        "local_size: 9 alpha: 2 beta: 1.5",
        "norm_region: WITHIN_CHANNEL local_size: 3",
        "norm_region: WITHIN_CHANNEL local_size: 5 alpha: 0.2 beta: 2",
    ],
)
def test_gradient(body):
    layer, bottom, top = make_layer(lrn(body), [X[:1, :5]])
    check_gradients(layer, bottom, top)


def test_across_channels_writes_bottom_diff_without_propagate_down():
    layer, bottom, top = make_layer(lrn(), [X])
    run_forward(layer, bottom, top)
    top[0].diff.fill_(1)
    layer.backward(top, [False], bottom)
    assert bool((bottom[0].diff != 0).any())
    layer, bottom, top = make_layer(lrn("norm_region: WITHIN_CHANNEL local_size: 3"), [X])
    run_forward(layer, bottom, top)
    top[0].diff.fill_(1)
    layer.backward(top, [False], bottom)
    assert bool((bottom[0].diff == 0).all())


def test_across_channels_in_place_follows_caffes_order_of_writes():
    """In place, Caffe writes scale^-beta into the top (the bottom) before multiplying by the
    bottom, and into the bottom diff (the top diff) before multiplying by the top diff: both
    products square the power, and backward reads the overwritten blob."""
    from google.protobuf import text_format

    from reference_engine import caffe_pb2
    from reference_engine.blob import Blob
    from reference_engine.layers.lrn import LRNLayer

    size, alpha, beta, k = 3, 0.5, 0.6, 2.0
    param = text_format.Parse(
        lrn(f"local_size: {size} alpha: {alpha} beta: {beta} k: {k}"), caffe_pb2.LayerParameter()
    )
    layer = LRNLayer(param, caffe_pb2.TRAIN, torch.float64, "cpu")
    blob = Blob(X.shape, dtype=torch.float64)
    blob.data.copy_(X)
    layer.setup([blob], [blob])
    layer.forward_layer([blob], [blob])
    pad = (size - 1) // 2
    sq = torch.nn.functional.pad(X * X, (0, 0, 0, 0, pad, pad))
    scale = k + alpha / size * sum(sq[:, j : j + X.shape[1]] for j in range(size))
    y = scale ** (-2 * beta)
    torch.testing.assert_close(blob.data, y)
    blob.diff.fill_(1.0)
    layer.backward([blob], [True], [blob])
    ratio = torch.nn.functional.pad(y * y / scale, (0, 0, 0, 0, pad, pad))
    window = sum(ratio[:, j : j + X.shape[1]] for j in range(size))
    torch.testing.assert_close(blob.diff, y - 2 * alpha * beta / size * y * window)
