"""Each layer type's backward: on nets that hold a layer of the type, what its forward test
compares and the flags, losses, bottom diffs and param diffs after one backward."""

import pytest

from .features import Feature, layer_types


@pytest.mark.parametrize("layer_type", layer_types())
def test_backward(check_feature, layer_type):
    check_feature(Feature.backward(layer_type))
