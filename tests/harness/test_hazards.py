"""harness/hazards.py: each hazard on the smallest net that shows it, and not where it is absent."""

from harness.explain.hazards import find_hazards
from reference_engine.analysis import analyse_text

INPUTS = (
    'layer { name: "input" type: "Input" top: "data" top: "label" '
    "input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }\n"
)
LOSS = 'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }\n'


def kinds(text, **state):
    return {(h.kind, h.layer) for h in find_hazards(analyse_text(INPUTS + text, **state))}


def messages(text):
    return {h.kind: h.message for h in find_hazards(analyse_text(INPUTS + text))}


IP0 = 'layer { name: "ip0" type: "InnerProduct" bottom: "data" top: "h" inner_product_param { num_output: 3 } }\n'


def test_clean_net_has_no_hazard():
    assert (
        kinds(
            'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
            "inner_product_param { num_output: 3 } }\n" + LOSS
        )
        == set()
    )


def test_propagate_down_false_does_not_freeze_and_producer_still_decays():
    found = kinds(
        IP0 + 'layer { name: "ip" type: "InnerProduct" bottom: "h" top: "ip" propagate_down: false '
        "inner_product_param { num_output: 3 } }\n" + LOSS
    )
    assert ("propagate_down_does_not_freeze", "ip") in found
    assert ("pruned_but_decays", "ip0") in found


def test_frozen_producer_is_no_hazard():
    frozen = IP0.replace('top: "h"', 'top: "h" param { lr_mult: 0 } param { lr_mult: 0 }')
    found = kinds(
        frozen + 'layer { name: "ip" type: "InnerProduct" bottom: "h" top: "ip" propagate_down: false '
        "param { lr_mult: 0 } param { lr_mult: 0 } inner_product_param { num_output: 3 } }\n" + LOSS
    )
    assert found == set()


def test_lr_mult_zero_with_decay_mult_says_it_has_no_effect():
    text = (
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" param { lr_mult: 0 decay_mult: 1 } '
        "inner_product_param { num_output: 3 } }\n" + LOSS
    )
    assert "local_rate = lr*lr_mult = 0" in messages(text)["decay_without_lr"]


def test_in_place_pooling_zeroes_gradient():
    text = (
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 4 } }\n'
        'layer { name: "r" type: "Reshape" bottom: "ip" top: "ip4" reshape_param { shape { dim: 2 dim: 1 dim: 2 dim: 2 } } }\n'
        'layer { name: "pool" type: "Pooling" bottom: "ip4" top: "ip4" pooling_param { pool: MAX kernel_size: 1 } }\n'
        'layer { name: "f" type: "Flatten" bottom: "ip4" top: "flat" }\n'
        + LOSS.replace('bottom: "ip"', 'bottom: "flat"')
    )
    assert ("in_place_broken", "pool") in kinds(text)
    assert "exactly 0" in messages(text)["in_place_broken"]


def test_in_place_relu_is_fine_but_negative_slope_is_not():
    base = (
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 } }\n'
        'layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" %s }\n' + LOSS
    )
    assert kinds(base % "") == set()
    assert ("in_place_broken", "relu") in kinds(base % "relu_param { negative_slope: -0.5 }")


def test_loss_weight_on_non_loss_layer():
    text = (
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" loss_weight: 0.5 '
        "inner_product_param { num_output: 3 } }\n"
    )
    assert ("loss_weight_on_non_loss", "ip") in kinds(text)


def test_branch_under_no_loss_and_unread_output():
    text = (
        IP0
        + 'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 } }\n'
        + LOSS
    )
    found = kinds(text)
    assert ("no_loss_branch", "ip0") in found
    assert ("unread_output", "ip0") in found
    assert ("pruned_but_decays", "ip0") in found


def test_force_backward_with_accuracy_aborts():
    text = (
        "force_backward: true\n" + 'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
        "inner_product_param { num_output: 3 } }\n"
        + LOSS
        + 'layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" }\n'
    )
    found = {
        h.kind: h
        for h in find_hazards(
            analyse_text(text.replace("force_backward: true\n", "force_backward: true\n" + INPUTS, 1))
        )
    }
    assert found["backward_aborts"].layer == "acc"
    assert "force_backward" in found["backward_aborts"].message


def test_argmax_that_needs_backward_aborts():
    text = (
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip0" inner_product_param { num_output: 3 } }\n'
        'layer { name: "am" type: "ArgMax" bottom: "ip0" top: "am" }\n'
        'layer { name: "ip2" type: "InnerProduct" bottom: "am" top: "ip" inner_product_param { num_output: 3 } }\n'
        + LOSS
    )
    assert ("backward_aborts", "am") in kinds(text)


def test_loss_top_also_read_by_another_layer():
    text = (
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 } }\n'
        + LOSS
        + 'layer { name: "p" type: "Power" bottom: "loss" top: "p" loss_weight: 1 }\n'
    )
    assert ("loss_top_consumed", "loss") in kinds(text)
    explicit = text.replace('top: "loss" }', 'top: "loss" loss_weight: 1 }')
    assert ("loss_top_consumed", "loss") in kinds(explicit)  # the reader is now a Split: same diff
    assert not any(
        kind == "loss_weight_on_non_loss" and layer.endswith("_split") for kind, layer in kinds(explicit)
    )


def test_label_that_needs_backward():
    text = (
        'layer { name: "lab" type: "InnerProduct" bottom: "data" top: "lab" inner_product_param { num_output: 1 } }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 } }\n'
        'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "lab" top: "loss" }\n'
    )
    assert ("label_needs_backward", "loss") in kinds(text)
    fixed = text.replace(
        'bottom: "lab" top: "loss"', 'bottom: "lab" top: "loss" propagate_down: true propagate_down: false'
    )
    assert ("label_needs_backward", "loss") not in kinds(fixed)


def test_shared_param_with_mismatched_multipliers():
    text = (
        'layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "a" param { name: "w" } param { name: "b" } '
        "inner_product_param { num_output: 3 } }\n"
        'layer { name: "ip2" type: "InnerProduct" bottom: "data" top: "b" param { name: "w" lr_mult: 0 } '
        'param { name: "b" } inner_product_param { num_output: 3 } }\n'
        'layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "ip" }\n' + LOSS
    )
    found = messages(text)
    assert "Caffe silently uses 0 for both" in found["shared_param_mismatch"]


def test_batch_norm_without_param_specs():
    text = (
        'layer { name: "bn" type: "BatchNorm" bottom: "data" top: "bn" }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "bn" top: "ip" inner_product_param { num_output: 3 } }\n'
        + LOSS
    )
    assert ("batch_norm_looks_learnable", "bn") in kinds(text)
