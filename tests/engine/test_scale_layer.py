"""Scale: broadcasting, bias_term, gradients, and the param diff Caffe overwrites.

Follows src/caffe/test/test_scale_layer.cpp; the overwrite cases are docs/semantics.md §7.2."""

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward

G = torch.Generator().manual_seed(0)
X = torch.randn(2, 3, 4, generator=G, dtype=torch.float64)


def scale(body=""):
    return f'type: "Scale" scale_param {{ {body} filler {{ type: "gaussian" std: 1 }} bias_filler {{ type: "gaussian" std: 1 }} }}'


@pytest.mark.parametrize(
    "body,shape",
    [
        ("", [3]),
        ("axis: 0 num_axes: 2", [2, 3]),
        ("num_axes: 0", []),
        ("num_axes: -1", [3, 4]),
        ("axis: 0 num_axes: -1", [2, 3, 4]),
    ],
)
def test_forward_learned(body, shape):
    layer, bottom, top = make_layer(scale(body), [X])
    assert layer.blobs[0].shape == shape
    (y,) = run_forward(layer, bottom, top)
    s = layer.blobs[0].data
    axis = 0 if "axis: 0" in body or not shape else 1
    view = [1] * axis + shape + [1] * (3 - axis - len(shape))
    torch.testing.assert_close(y, X * s.view(view))


def test_default_filler_is_one_and_bias_term():
    layer, bottom, top = make_layer(
        'type: "Scale" scale_param { bias_term: true bias_filler { type: "constant" value: 2 } }',
        [X],
    )
    assert len(layer.blobs) == 2
    (y,) = run_forward(layer, bottom, top)
    torch.testing.assert_close(y, X + 2)


def test_two_bottoms():
    s = torch.randn(2, 3, generator=G, dtype=torch.float64)
    layer, bottom, top = make_layer('type: "Scale" scale_param { axis: 0 bias_term: true }', [X, s])
    assert len(layer.blobs) == 1 and layer.blobs[0].shape == [2, 3]
    (y,) = run_forward(layer, bottom, top)
    torch.testing.assert_close(y, X * s[:, :, None])


@pytest.mark.parametrize(
    "body",
    [
        "",
        "bias_term: true",
        "axis: 0 num_axes: 2 bias_term: true",
        "num_axes: 0",
        "axis: 0 num_axes: -1",
        "num_axes: -1 bias_term: true",
    ],
)
def test_gradient_learned(body):
    layer, bottom, top = make_layer(scale(body), [X])
    check_gradients(layer, bottom, top)


@pytest.mark.parametrize(
    "shape,body", [((2, 3), "axis: 0"), ((3,), ""), ((), ""), ((3, 4), "bias_term: true")]
)
def test_gradient_two_bottoms(shape, body):
    s = torch.randn(shape, generator=G, dtype=torch.float64)
    layer, bottom, top = make_layer(scale(body), [X, s])
    check_gradients(layer, bottom, top)


@pytest.mark.parametrize(
    "x_shape,body,accumulates",
    [
        ((2, 3, 4), "", True),  # outer_dim 2: gemv beta 1
        ((1, 3, 4), "", False),  # outer_dim 1: gemv beta 0 straight into the diff
        ((2, 3, 4), "axis: 0 num_axes: -1", False),  # element-wise: the product is the diff
        ((1, 1, 4), "", True),  # outer * scale_dim == 1: dot, +=
    ],
)
def test_learned_scale_diff_overwritten_where_caffe_overwrites(x_shape, body, accumulates):
    x = torch.randn(x_shape, generator=G, dtype=torch.float64)
    layer, bottom, top = make_layer(scale(body), [x])
    layer.param_propagate_down = [True]
    run_forward(layer, bottom, top)
    top[0].diff.fill_(1)
    layer.backward(top, [False], bottom)
    first = layer.blobs[0].diff.clone()
    layer.backward(top, [False], bottom)
    torch.testing.assert_close(layer.blobs[0].diff, (2 if accumulates else 1) * first)


def test_scratch_product_lands_in_bottom_diff_without_propagate_down():
    layer, bottom, top = make_layer(scale(), [X])
    layer.param_propagate_down = [True]
    run_forward(layer, bottom, top)
    top[0].diff.fill_(1)
    layer.backward(top, [False], bottom)
    torch.testing.assert_close(bottom[0].diff, X)  # dy * x, left there by Caffe
    layer.backward(top, [True], bottom)
    torch.testing.assert_close(bottom[0].diff, layer.blobs[0].data.view(1, 3, 1).expand(2, 3, 4))
