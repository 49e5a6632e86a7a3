"""Parameter: a zero-initialised blob exposed as the top, sharing data and diff (parameter_layer.hpp)."""

from layer_testing import make_layer, run_forward


def test_top_is_the_param():
    layer, bottom, top = make_layer('type: "Parameter" parameter_param { shape { dim: 2 dim: 3 } }', [])
    assert layer.param_blob_count(layer.param, 0) == 1
    assert layer.blobs[0].shape == [2, 3] and top[0].shape == [2, 3]
    layer.blobs[0].data.fill_(1.5)
    (y,) = run_forward(layer, bottom, top)
    assert bool((y == 1.5).all())
    top[0].diff.fill_(2)
    layer.backward(top, [], bottom)
    assert bool((layer.blobs[0].diff == 2).all())


def test_stored_blob():
    proto = """type: "Parameter" parameter_param { shape { dim: 2 } }
      blobs { shape { dim: 2 } data: 4 data: 5 }"""
    layer, bottom, top = make_layer(proto, [])
    assert run_forward(layer, bottom, top)[0].tolist() == [4.0, 5.0]
