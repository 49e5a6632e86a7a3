"""Embed: row lookup, weight rows accumulate, no gradient to the index input. Follows src/caffe/test/test_embed_layer.cpp."""

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward

from reference_engine.checks import CaffeError

IDX = torch.tensor([[0.0, 3.0], [3.0, 1.9]], dtype=torch.float64)  # 1.9 truncates to 1


def embed(extra=""):
    return f"""type: "Embed" embed_param {{ num_output: 3 input_dim: 4 {extra}
      weight_filler {{ type: "gaussian" std: 1 }} bias_filler {{ type: "gaussian" std: 1 }} }}"""


def test_forward():
    layer, bottom, top = make_layer(embed(), [IDX])
    (y,) = run_forward(layer, bottom, top)
    assert top[0].shape == [2, 2, 3]
    w, b = layer.blobs[0].data, layer.blobs[1].data
    torch.testing.assert_close(y, w[torch.tensor([[0, 3], [3, 1]])] + b)


@pytest.mark.parametrize("extra", ["", "bias_term: false"])
def test_gradient_params_only(extra):
    layer, bottom, top = make_layer(embed(extra), [IDX])
    check_gradients(layer, bottom, top, check_bottom=[])


def test_backward_to_input_aborts():
    layer, bottom, top = make_layer(embed(), [IDX])
    layer.param_propagate_down = [True, True]
    run_forward(layer, bottom, top)
    with pytest.raises(CaffeError, match="Can't backpropagate to EmbedLayer input."):
        layer.backward(top, [True], bottom)


def test_param_diffs_accumulate():
    layer, bottom, top = make_layer(embed(), [IDX])
    layer.param_propagate_down = [True, True]
    run_forward(layer, bottom, top)
    top[0].diff.fill_(1)
    layer.backward(top, [False], bottom)
    layer.backward(top, [False], bottom)
    assert layer.blobs[0].diff[:, 0].tolist() == [2.0, 2.0, 0.0, 4.0]
    assert layer.blobs[1].diff.tolist() == [8.0, 8.0, 8.0]
