"""Input: tops shaped at setup from input_param (src/caffe/layers/input_layer.cpp)."""

import pytest
from layer_testing import make_layer

from reference_engine.checks import CaffeError


def test_shapes():
    _, _, top = make_layer('type: "Input" input_param { shape { dim: 2 dim: 3 } }', [], num_tops=2)
    assert [t.shape for t in top] == [[2, 3], [2, 3]]
    _, _, top = make_layer(
        'type: "Input" input_param { shape { dim: 2 } shape { dim: 4 dim: 1 } }', [], num_tops=2
    )
    assert [t.shape for t in top] == [[2], [4, 1]]


def test_shape_count_checked():
    with pytest.raises(
        CaffeError,
        match="Must specify 'shape' once, once per top blob, or not at all: 3 tops vs. 2 shapes.",
    ):
        make_layer('type: "Input" input_param { shape { dim: 2 } shape { dim: 4 } }', [], num_tops=3)
