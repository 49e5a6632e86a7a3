"""Tile. Follows src/caffe/test/test_tile_layer.cpp."""

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward

from reference_engine.checks import CaffeError

X = torch.randn(2, 3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.mark.parametrize("axis,tiles", [(1, 3), (0, 2), (2, 2), (-1, 1)])
def test_forward_and_gradient(axis, tiles):
    layer, bottom, top = make_layer(f'type: "Tile" tile_param {{ axis: {axis} tiles: {tiles} }}', [X])
    (y,) = run_forward(layer, bottom, top)
    reps = [1, 1, 1]
    reps[axis] = tiles
    torch.testing.assert_close(y, X.repeat(*reps))
    check_gradients(layer, bottom, top)


def test_tiles_required():
    with pytest.raises(CaffeError, match="Number of tiles must be specified"):
        make_layer('type: "Tile"', [X])
