"""Each layer type's forward: on nets that hold a layer of the type, the layer list (without
its flags) and every top's data after one forward."""

import pytest

from .features import Feature, layer_types


@pytest.mark.parametrize("layer_type", layer_types())
def test_forward(check_feature, layer_type):
    check_feature(Feature.forward(layer_type))
