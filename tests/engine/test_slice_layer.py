"""Slice. Follows src/caffe/test/test_slice_layer.cpp."""

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward

from reference_engine.checks import CaffeError

X = torch.randn(2, 6, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.mark.parametrize(
    "body,sizes,axis",
    [
        ("", [2, 2, 2], 1),
        ("slice_point: 1 slice_point: 4", [1, 3, 2], 1),
        ("axis: 0", [1, 1], 0),
        ("slice_dim: 2", [1, 1], 2),
    ],
)
def test_forward_and_gradient(body, sizes, axis):
    layer, bottom, top = make_layer(f'type: "Slice" slice_param {{ {body} }}', [X], num_tops=len(sizes))
    ys = run_forward(layer, bottom, top)
    for y, e in zip(ys, torch.split(X, sizes, axis)):
        torch.testing.assert_close(y, e)
    check_gradients(layer, bottom, top)


def test_uneven_split_refused():
    with pytest.raises(
        CaffeError,
        match="Number of top blobs \\(4\\) should evenly divide input slice axis \\(6\\)",
    ):
        make_layer('type: "Slice"', [X], num_tops=4)
