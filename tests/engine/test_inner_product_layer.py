"""InnerProduct: forward, transpose, axis, gradients, diff conventions.

Follows src/caffe/test/test_inner_product_layer.cpp."""

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward

from reference_engine.checks import CaffeError


def ip(body):
    return f"""type: "InnerProduct" inner_product_param {{ {body}
      weight_filler {{ type: "gaussian" std: 1 }} bias_filler {{ type: "gaussian" std: 1 }} }}"""


@pytest.mark.parametrize("transpose", [False, True])
def test_forward(transpose):
    x = torch.randn(2, 3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    layer, bottom, top = make_layer(ip(f"num_output: 4 transpose: {str(transpose).lower()}"), [x])
    (y,) = run_forward(layer, bottom, top)
    w = layer.blobs[0].data
    assert list(w.shape) == ([6, 4] if transpose else [4, 6])
    expected = x.reshape(2, 6) @ (w if transpose else w.T) + layer.blobs[1].data
    torch.testing.assert_close(y, expected)


def test_axis():
    x = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    _, _, top = make_layer(ip("num_output: 5 axis: 2"), [x])
    assert top[0].shape == [2, 3, 5]
    _, _, top = make_layer(ip("num_output: 5 axis: -2"), [x])
    assert top[0].shape == [2, 5]


@pytest.mark.parametrize(
    "body",
    ["num_output: 3", "num_output: 3 transpose: true", "num_output: 2 bias_term: false axis: 2"],
)
def test_gradient(body):
    x = torch.randn(2, 3, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    layer, bottom, top = make_layer(ip(body), [x])
    check_gradients(layer, bottom, top)


def test_param_diffs_accumulate_bottom_diff_overwritten():
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    layer, bottom, top = make_layer(ip("num_output: 2"), [x])
    layer.param_propagate_down = [True, False]
    run_forward(layer, bottom, top)
    top[0].diff.fill_(1)
    layer.backward(top, [True], bottom)
    first_w, first_x = layer.blobs[0].diff.clone(), bottom[0].diff.clone()
    layer.backward(top, [True], bottom)
    torch.testing.assert_close(layer.blobs[0].diff, 2 * first_w)
    torch.testing.assert_close(bottom[0].diff, first_x)
    assert bool((layer.blobs[1].diff == 0).all())


def test_reshape_to_other_input_size_is_refused():
    layer, bottom, top = make_layer(ip("num_output: 2"), [torch.ones(2, 3)])
    bottom[0].reshape([2, 4])
    with pytest.raises(CaffeError, match="Input size incompatible with inner product parameters."):
        layer.forward_layer(bottom, top)
