"""Deconvolution: shape, forward as the adjoint of Convolution, gradients.

Follows src/caffe/test/test_deconvolution_layer.cpp."""

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward


def deconv(body, kind="Deconvolution"):
    return f"""type: "{kind}" convolution_param {{ {body}
      weight_filler {{ type: "gaussian" std: 0.5 }} bias_filler {{ type: "gaussian" std: 0.5 }} }}"""


BODIES = [
    "num_output: 3 kernel_size: 3 stride: 2",
    "num_output: 2 kernel_size: 3 stride: 2 pad: 1 group: 2",
    "num_output: 2 kernel_h: 2 kernel_w: 3 stride_h: 1 stride_w: 2 dilation: 2",
]


def test_output_shape():
    _, _, top = make_layer(deconv("num_output: 3 kernel_size: 3 stride: 2 pad: 1"), [torch.ones(2, 2, 4, 5)])
    assert top[0].shape == [2, 3, 7, 9]  # 2*(in-1) + 3 - 2


@pytest.mark.parametrize("body", BODIES)
def test_forward_is_the_adjoint_of_convolution(body):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 2, 3, 4, generator=g, dtype=torch.float64)
    layer, bottom, top = make_layer(deconv(body + " bias_term: false"), [x])
    (y,) = run_forward(layer, bottom, top)
    z = torch.randn(y.shape, generator=g, dtype=torch.float64)
    # A Convolution with the same weight maps z (num_output channels) back to x's shape.
    conv_body = body.replace("num_output: 3", "num_output: 2").replace("num_output: 2", "num_output: 2")
    conv, cb, ct = make_layer(deconv(conv_body + " bias_term: false", "Convolution"), [z])
    conv.blobs[0].data.copy_(layer.blobs[0].data)
    (cz,) = run_forward(conv, cb, ct)
    assert cz.shape == x.shape
    torch.testing.assert_close((y * z).sum(), (x * cz).sum())


@pytest.mark.parametrize("body", BODIES)
def test_gradient(body):
    x = torch.randn(1, 2, 3, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    layer, bottom, top = make_layer(deconv(body), [x])
    check_gradients(layer, bottom, top)


def test_param_diffs_accumulate():
    x = torch.randn(1, 2, 3, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    layer, bottom, top = make_layer(deconv(BODIES[0]), [x])
    layer.param_propagate_down = [True, True]
    run_forward(layer, bottom, top)
    top[0].diff.fill_(1)
    layer.backward(top, [True], bottom)
    first = [p.diff.clone() for p in layer.blobs]
    layer.backward(top, [True], bottom)
    for p, f in zip(layer.blobs, first):
        torch.testing.assert_close(p.diff, 2 * f)
