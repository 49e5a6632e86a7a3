"""MVN: Caffe's eps placement, its approximate backward, 4-D top. Follows src/caffe/test/test_mvn_layer.cpp."""

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward

X = torch.randn(2, 3, 2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3 + 1


@pytest.mark.parametrize("across", [False, True])
def test_forward_eps_added_to_standard_deviation(across):
    body = f"across_channels: {str(across).lower()} eps: 0.5"
    layer, bottom, top = make_layer(f'type: "MVN" mvn_param {{ {body} }}', [X])
    (y,) = run_forward(layer, bottom, top)
    dims = (1, 2, 3) if across else (2, 3)
    centred = X - X.mean(dims, keepdim=True)
    std = (centred**2).mean(dims, keepdim=True).sqrt()
    torch.testing.assert_close(y, centred / (std + 0.5))


def test_mean_only_and_4d_top():
    x = torch.randn(2, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    layer, bottom, top = make_layer(
        'type: "MVN" mvn_param { normalize_variance: false across_channels: true }', [x]
    )
    assert top[0].shape == [2, 5, 1, 1]
    (y,) = run_forward(layer, bottom, top)
    torch.testing.assert_close(y.view(2, 5), x - x.mean(1, keepdim=True))


@pytest.mark.parametrize(
    "body",
    [
        "",
        "across_channels: true",
        "normalize_variance: false",
        "normalize_variance: false across_channels: true",
    ],
)
def test_gradient(body):
    layer, bottom, top = make_layer(f'type: "MVN" mvn_param {{ {body} }}', [X[:, :, :, :2]])
    check_gradients(layer, bottom, top)


def test_backward_ignores_propagate_down():
    layer, bottom, top = make_layer('type: "MVN"', [X])
    run_forward(layer, bottom, top)
    top[0].diff.copy_(torch.randn(X.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64))
    layer.backward(top, [False], bottom)
    assert bool((bottom[0].diff != 0).any())
