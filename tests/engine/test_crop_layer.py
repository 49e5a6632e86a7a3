"""Crop: offsets, the untouched second bottom, zero-then-copy backward. Follows src/caffe/test/test_crop_layer.cpp."""

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward

from reference_engine.checks import CaffeError

X = torch.randn(2, 3, 5, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
R = torch.zeros(1, 2, 3, 2, dtype=torch.float64)


@pytest.mark.parametrize(
    "body,window",
    [
        ("", (slice(None), slice(None), slice(0, 3), slice(0, 2))),
        ("offset: 1", (slice(None), slice(None), slice(1, 4), slice(1, 3))),
        (
            "axis: 1 offset: 0 offset: 2 offset: 1",
            (slice(None), slice(0, 2), slice(2, 5), slice(1, 3)),
        ),
        ("axis: -3 offset: 1", (slice(None), slice(1, 3), slice(1, 4), slice(1, 3))),
    ],
)
def test_forward_and_gradient(body, window):
    layer, bottom, top = make_layer(f'type: "Crop" crop_param {{ {body} }}', [X, R])
    (y,) = run_forward(layer, bottom, top)
    torch.testing.assert_close(y, X[window])
    check_gradients(layer, bottom, top, check_bottom=[0])


def test_second_bottom_diff_never_written():
    layer, bottom, top = make_layer('type: "Crop"', [X, R])
    run_forward(layer, bottom, top)
    top[0].diff.fill_(1)
    bottom[0].diff.fill_(7)
    bottom[1].diff.fill_(7)
    layer.backward(top, [True, True], bottom)
    assert float(bottom[0].diff.sum()) == top[0].count()
    assert bool((bottom[1].diff == 7).all())


def test_out_of_bounds():
    with pytest.raises(
        CaffeError, match="the crop for dimension 2 is out-of-bounds with size 3 and offset 3"
    ):
        make_layer('type: "Crop" crop_param { offset: 3 }', [X, R])
