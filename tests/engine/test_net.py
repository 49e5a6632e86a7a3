"""Net construction and the need-backward analysis, against expectations read off Caffe's source.

Ports of src/caffe/test/test_net.cpp keep Caffe's test names; each net in
tests/flag_nets.py cites the rule it is about. tests/caffe/test_net_flags.py
runs the same nets through real Caffe.
"""

import pytest

from reference_engine.analysis import analyse_text
from reference_engine.checks import CaffeError
from tests.flag_nets import FLAG_NETS


def flags_by_name(analysis):
    out = {}
    for node, f in zip(analysis.topology.layers, analysis.flags.layers):
        out[node.name] = (f.need_backward, tuple(f.bottom_need_backward), f)
    return out


@pytest.mark.parametrize("name", sorted(FLAG_NETS))
def test_flag_net(name):
    net = FLAG_NETS[name]
    analysis = analyse_text(net.prototxt, net.phase, net.level, net.stages)
    got = flags_by_name(analysis)
    if net.layer_names is not None:
        assert tuple(node.name for node in analysis.topology.layers) == net.layer_names
    for layer, (need, bottoms) in net.expected.items():
        assert got[layer][:2] == (need, bottoms), f"{name}: layer {layer}: {got[layer][2].reasons}"
    for layer, logged in net.logged.items():
        assert got[layer][2].logged_need_backward == logged


def test_bottom_need_backward_force_leaves_params_on():
    """force_backward sets param_propagate_down even for lr_mult 0 params (net.cpp, Init)."""
    text = FLAG_NETS["frozen_chain"].prototxt.replace("layer {", "force_backward: true\nlayer {", 1)
    f = flags_by_name(analyse_text(text))["ip1"][2]
    assert f.param_propagate_down == [True, True]
    assert f.need_backward


def test_pruned_layer_keeps_param_propagate_down():
    """The reverse sweep never touches param_propagate_down (net.cpp), so conv1's params stay on."""
    f = flags_by_name(analyse_text(FLAG_NETS["propagate_down_conv"].prototxt))["conv1"][2]
    assert not f.need_backward
    assert f.param_propagate_down == [True, True]
    assert "conv1" in f.reasons[0] and "propagate_down: false" in f.reasons[0]


def test_reasons_name_the_rule():
    got = flags_by_name(analyse_text(FLAG_NETS["propagate_down_conv"].prototxt))
    assert got["ip"][2].reasons[0] == "top 'ip' is under a loss"
    assert "param 0 has lr_mult 1" in got["ip"][2].reasons
    assert got["ip"][2].bottom_reasons[0] == ["propagate_down: false on bottom 0 'conv1'"]
    assert got["loss"][2].reasons[0] == "top '(automatic)' has loss weight 1"
    zero = flags_by_name(analyse_text(FLAG_NETS["zero_loss_weight"].prototxt))
    assert zero["ip"][2].reasons == ["no backward: no top is under a loss"]


def test_shared_params_merge_multipliers():
    """AppendParam: a sharer's explicit lr_mult 0 is adopted by the owner's implicit one (§3, sh1)."""
    analysis = analyse_text(FLAG_NETS["shared_weights"].prototxt)
    learnables = analysis.topology.learnables
    assert [(l.lr_mult, l.decay_mult) for l in learnables] == [(0.0, 1.0), (1.0, 3.0)]
    got = flags_by_name(analysis)
    assert got["ip2"][2].param_propagate_down == [False, True]


def test_batch_norm_specs_reach_the_solver_only():
    analysis = analyse_text(FLAG_NETS["batch_norm_no_params"].prototxt)
    assert [l.lr_mult for l in analysis.topology.learnables] == [0.0, 0.0, 0.0]
    assert flags_by_name(analysis)["bn"][2].param_propagate_down == [True, True, True]


def test_outputs_sorted_and_split_loss_top():
    analysis = analyse_text(FLAG_NETS["mid_net_loss"].prototxt)
    assert analysis.topology.outputs == ["zeta_ipZ_0_split_0"]
    split = analysis.topology.layers[2]
    assert list(split.param.loss_weight) == [0.5, 0.0, 0.0]
    assert list(analysis.topology.layers[1].param.loss_weight) == []


INPUT = 'layer { name: "in" type: "Input" top: "x" top: "y" input_param { shape { dim: 2 dim: 3 } } }\n'

REFUSALS = {
    "propagate_down_count": (
        INPUT + 'layer { name: "e" type: "Eltwise" bottom: "x" bottom: "y" top: "e" propagate_down: false }',
        (
            "Check failed: layer_param.propagate_down_size() == layer_param.bottom_size() (1 vs. 2) "
            "propagate_down param must be specified either 0 or bottom_size times "
        ),
    ),
    "unknown_bottom": (
        INPUT + 'layer { name: "r" type: "ReLU" bottom: "pool9" top: "r" }',
        "Unknown bottom blob 'pool9' (layer 'r', bottom index 0)",
    ),
    "consumer_before_in_place": (
        INPUT + 'layer { name: "p" type: "Power" bottom: "x" top: "p" }\n'
        'layer { name: "r" type: "ReLU" bottom: "x" top: "x" }',
        "Top blob 'x' produced by multiple sources.",
    ),
    "in_place_needs_same_index": (
        INPUT + 'layer { name: "e" type: "Eltwise" bottom: "x" bottom: "y" top: "y" }',
        "Top blob 'y' produced by multiple sources.",
    ),
    "too_many_params": (
        INPUT + 'layer { name: "r" type: "ReLU" bottom: "x" top: "r" param { lr_mult: 1 } }',
        "Check failed: param_size <= num_param_blobs (1 vs. 0) Too many params specified for layer r",
    ),
    "include_and_exclude": (
        INPUT
        + 'layer { name: "r" type: "ReLU" bottom: "x" top: "r" include { phase: TRAIN } exclude { phase: TEST } }',
        (
            "Check failed: layer_param.include_size() == 0 || layer_param.exclude_size() == 0 "
            "Specify either include rules or exclude rules; not both."
        ),
    ),
    "shared_lr_mismatch": (
        INPUT
        + 'layer { name: "a" type: "InnerProduct" bottom: "x" top: "a" inner_product_param { num_output: 3 }'
        ' param { name: "w" lr_mult: 1 } }\n'
        'layer { name: "b" type: "InnerProduct" bottom: "y" top: "b" inner_product_param { num_output: 3 }'
        ' param { name: "w" lr_mult: 2 } }',
        (
            "Check failed: param_spec->lr_mult() == params_lr_[learnable_param_id] (2 vs. 1) "
            "Shared param 'w' has mismatched lr_mult."
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_init_refusals_use_caffes_words(name):
    text, message = REFUSALS[name]
    with pytest.raises(CaffeError) as error:
        analyse_text(text)
    assert error.value.message == message
    assert error.value.stage == "init"


def test_unknown_layer_type_lists_known_types():
    with pytest.raises(CaffeError) as error:
        analyse_text(INPUT + 'layer { name: "f" type: "Foo" bottom: "x" top: "f" }')
    assert error.value.message.startswith(
        "Check failed: registry.count(type) == 1 (0 vs. 1) Unknown layer type: Foo (known types: "
    )
    assert "InnerProduct" in error.value.message


def test_deprecated_input_fields_become_an_input_layer():
    text = (
        'input: "data" input_dim: 1 input_dim: 2 input_dim: 3 input_dim: 3\n'
        'layer { name: "r" type: "ReLU" bottom: "data" top: "r" }'
    )
    analysis = analyse_text(text)
    assert [n.name for n in analysis.topology.layers] == ["input", "r"]
    assert analysis.upgrade_notes
