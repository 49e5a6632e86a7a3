"""Nets whose backward flags are derived from Caffe's source, one per rule.

Shared by tests/engine/test_net.py (the reference analysis against these
expectations) and tests/caffe/test_net_flags.py (the reference against real
Caffe on the same nets). Inputs are Input layers, so both engines can feed them.
Each expectation cites where in Caffe it comes from.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FlagNet:
    prototxt: str
    phase: str = "TRAIN"
    level: int = 0
    stages: tuple[str, ...] = ()
    # layer name -> (need_backward, bottom_need_backward); only the layers the rule is about
    expected: dict = field(default_factory=dict)
    layer_names: tuple[str, ...] | None = None  # Caffe's layer list, splits included
    logged: dict = field(default_factory=dict)  # layer name -> what Caffe logs, where it differs
    why: str = ""


def _inputs(*tops_and_shapes):
    tops = "".join(f' top: "{t}"' for t, _ in tops_and_shapes)
    shapes = "".join(" shape { " + " ".join(f"dim: {d}" for d in s) + " }" for _, s in tops_and_shapes)
    return f'layer {{ name: "input" type: "Input"{tops} input_param {{{shapes} }} }}\n'


DATA_LABEL = _inputs(("data", (5, 2, 3, 4)), ("label", (5,)))

TINY = (
    DATA_LABEL
    + """
layer { name: "innerproduct" type: "InnerProduct" bottom: "data" top: "innerproduct"
  inner_product_param { num_output: 4 }
  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "innerproduct" bottom: "label" top: "top_loss" }
"""
)

TINY_EUCLIDEAN = (
    _inputs(("data", (5, 2, 3, 4)), ("label", (5, 1)))
    + """
layer { name: "innerproduct" type: "InnerProduct" bottom: "data" top: "innerproduct"
  inner_product_param { num_output: 1 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "innerproduct" bottom: "label" top: "top_loss" }
"""
)

TRICKY = (
    _inputs(("data", (5, 2, 3, 4)), ("label", (5, 1)))
    + """
layer { name: "innerproduct" type: "InnerProduct" bottom: "data" top: "transformed_data"
  inner_product_param { num_output: 4 } }
layer { name: "innerproduct" type: "InnerProduct" bottom: "label" top: "transformed_label"
  inner_product_param { num_output: 1 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "transformed_data" bottom: "transformed_label" }
"""
)

PROPAGATE_DOWN_CONV = (
    _inputs(("data", (2, 1, 5, 5)), ("label", (2,)))
    + """
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 2 kernel_size: 3 } }
layer { name: "ip" type: "InnerProduct" bottom: "conv1" top: "ip" propagate_down: false
  inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" }
"""
)

PROPAGATE_DOWN_CONV_OTHER_PATH = (
    PROPAGATE_DOWN_CONV
    + """
layer { name: "other" type: "InnerProduct" bottom: "conv1" top: "other"
  inner_product_param { num_output: 3 } }
layer { name: "loss2" type: "SoftmaxWithLoss" bottom: "other" bottom: "label" top: "loss2" }
"""
)

FROZEN_CHAIN = (
    DATA_LABEL
    + """
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
  inner_product_param { num_output: 4 } param { lr_mult: 0 } param { lr_mult: 0 } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param { num_output: 3 } param { lr_mult: 0 } param { lr_mult: 0 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" }
"""
)

ZERO_LOSS_WEIGHT = (
    DATA_LABEL
    + """
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" loss_weight: 0 }
"""
)

FORCE_ACCURACY = (
    DATA_LABEL
    + """
force_backward: true
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "accuracy" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy" }
"""
)

STAGES_AND_LEVELS = (
    _inputs(("data", (2, 3)), ("label", (2,)))
    + """
layer { name: "ip_train" type: "InnerProduct" bottom: "data" top: "ip"
  include { phase: TRAIN stage: "a" stage: "b" } inner_product_param { num_output: 2 } }
layer { name: "ip_other" type: "InnerProduct" bottom: "data" top: "ip"
  include { phase: TRAIN not_stage: "b" } include { min_level: 3 } inner_product_param { num_output: 2 } }
layer { name: "relu_high" type: "ReLU" bottom: "ip" top: "ip" exclude { max_level: 1 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" }
"""
)

SKIP_PROPAGATE_DOWN = (
    _inputs(("data", (5, 2, 3, 4)), ("label", (5, 1)))
    + """
layer { name: "silence" type: "Silence" bottom: "label" }
layer { name: "innerproduct" type: "InnerProduct" bottom: "data" top: "innerproduct"
  inner_product_param { num_output: 1 } }
layer { name: "ip_fake_labels" type: "InnerProduct" bottom: "data" top: "fake_labels"
  inner_product_param { num_output: 1 } }
layer { name: "argmax" type: "ArgMax" bottom: "fake_labels" top: "label_argmax" }
layer { name: "loss" type: "SigmoidCrossEntropyLoss" bottom: "innerproduct" bottom: "label_argmax"
  propagate_down: true propagate_down: PD loss_weight: 0.1 }
"""
)

FORCE_PROPAGATE_DOWN = (
    _inputs(("data", (5, 2, 3, 4)), ("label", (5, 1)))
    + """
layer { name: "innerproduct" type: "InnerProduct" bottom: "data" top: "innerproduct" PD
  inner_product_param { num_output: 1 } }
layer { name: "loss" type: "SigmoidCrossEntropyLoss" bottom: "innerproduct" bottom: "label" }
"""
)

SPLIT_THREE_READERS = (
    DATA_LABEL
    + """
layer { name: "a" type: "InnerProduct" bottom: "data" top: "a" inner_product_param { num_output: 3 } }
layer { name: "b" type: "InnerProduct" bottom: "data" top: "b" inner_product_param { num_output: 3 } }
layer { name: "c" type: "InnerProduct" bottom: "data" top: "c" inner_product_param { num_output: 3 } }
layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" bottom: "c" top: "sum" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "sum" bottom: "label" }
"""
)

SPLIT_IN_PLACE = (
    DATA_LABEL
    + """
layer { name: "innerprod1" type: "InnerProduct" bottom: "data" top: "innerprod1" inner_product_param { num_output: 3 } }
layer { name: "relu1" type: "ReLU" bottom: "innerprod1" top: "innerprod1" }
layer { name: "innerprod2" type: "InnerProduct" bottom: "innerprod1" top: "innerprod2" inner_product_param { num_output: 3 } }
layer { name: "innerprod3" type: "InnerProduct" bottom: "innerprod1" top: "innerprod3" inner_product_param { num_output: 3 } }
layer { name: "sum" type: "Eltwise" bottom: "innerprod2" bottom: "innerprod3" top: "sum" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "sum" bottom: "label" }
"""
)

MID_NET_LOSS = (
    _inputs(("alpha", (2, 3)))
    + """
layer { name: "ipZ" type: "InnerProduct" bottom: "alpha" top: "zeta" loss_weight: 0.5
  inner_product_param { num_output: 3 } }
layer { name: "t1" type: "TanH" bottom: "zeta" top: "t1" }
layer { name: "t2" type: "TanH" bottom: "zeta" top: "t2" }
layer { name: "l" type: "EuclideanLoss" bottom: "t1" bottom: "t2" }
"""
)

BATCH_NORM_NO_PARAMS = (
    _inputs(("data", (4, 3)))
    + """
layer { name: "bn" type: "BatchNorm" bottom: "data" top: "bn" }
layer { name: "relu" type: "ReLU" bottom: "bn" top: "bn" }
layer { name: "reduce" type: "Reduction" bottom: "bn" top: "r" loss_weight: 1 }
"""
)

TANH_PROPAGATE_DOWN_TRUE = (
    DATA_LABEL
    + """
layer { name: "tanh" type: "TanH" bottom: "data" top: "t" propagate_down: true }
layer { name: "flat" type: "Flatten" bottom: "t" top: "f" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "f" bottom: "label" propagate_down: true propagate_down: false }
"""
)

SHARED_WEIGHTS = (
    _inputs(("data", (2, 2)))
    + """
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" inner_product_param { num_output: 2 }
  param { name: "w" } param { name: "b" } }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" inner_product_param { num_output: 2 }
  param { name: "w" lr_mult: 0 } param { name: "b" decay_mult: 3 } }
layer { name: "loss" type: "Reduction" bottom: "ip2" top: "loss" loss_weight: 1 }
"""
)

BRANCH_UNDER_NO_LOSS = (
    DATA_LABEL
    + """
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 } }
layer { name: "side" type: "InnerProduct" bottom: "ip" top: "side" inner_product_param { num_output: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" }
"""
)

FLAG_NETS = {
    "tiny": FlagNet(
        TINY,
        expected={"input": (False, ()), "innerproduct": (True, (False,)), "loss": (True, (True, False))},
        layer_names=("input", "innerproduct", "loss"),
        why="test_net.cpp TestBottomNeedBackward: a learnable IP over data; labels get no gradient",
    ),
    "tiny_force": FlagNet(
        "force_backward: true\n" + TINY,
        expected={"innerproduct": (True, (True,)), "loss": (True, (True, False))},
        why="TestBottomNeedBackwardForce: LossLayer::AllowForceBackward(1) is false (loss_layer.hpp)",
    ),
    "tiny_euclidean_force": FlagNet(
        "force_backward: true\n" + TINY_EUCLIDEAN,
        expected={"innerproduct": (True, (True,)), "loss": (True, (True, True))},
        why="TestBottomNeedBackwardEuclideanForce: EuclideanLoss allows force into both bottoms",
    ),
    "tricky": FlagNet(
        TRICKY,
        expected={"loss": (True, (True, True))},
        layer_names=("input", "innerproduct", "innerproduct", "loss"),
        why="TestBottomNeedBackwardTricky: the label path has a learnable IP, so the label bottom needs backward",
    ),
    "propagate_down_conv": FlagNet(
        PROPAGATE_DOWN_CONV,
        expected={"conv1": (False, (False,)), "ip": (True, (False,)), "loss": (True, (True, False))},
        why="docs/semantics.md §2.6: propagate_down: false keeps ip's own weights learning, prunes conv1",
    ),
    "propagate_down_conv_other_path": FlagNet(
        PROPAGATE_DOWN_CONV_OTHER_PATH,
        expected={"conv1": (True, (False,)), "conv1_conv1_0_split": (True, (True,)), "ip": (True, (False,))},
        why="§2.2: a Split is pruned only if every top is skipped; the second reader keeps conv1 learning",
    ),
    "frozen_chain": FlagNet(
        FROZEN_CHAIN,
        expected={
            "ip1": (False, (False,)),
            "relu1": (False, (False,)),
            "ip2": (False, (False,)),
            "loss": (False, (False, False)),
        },
        why="net.cpp forward sweep: lr_mult 0 everywhere and data needing none leave every layer off",
    ),
    "zero_loss_weight": FlagNet(
        ZERO_LOSS_WEIGHT,
        expected={"ip": (False, (False,)), "loss": (False, (False, False))},
        why="net.cpp reverse sweep: loss(t) is 0, so nothing is under a loss",
    ),
    "force_accuracy": FlagNet(
        FORCE_ACCURACY,
        expected={"accuracy": (True, (True, True)), "loss": (True, (True, False))},
        logged={"accuracy": False},
        why="§2.3/§2.4: force_backward turns Accuracy on (it allows force) after the log lines were printed",
    ),
    "stages_train_ab": FlagNet(
        STAGES_AND_LEVELS,
        stages=("a", "b"),
        layer_names=("input", "ip_train", "loss"),
        expected={"ip_train": (True, (False,))},
        why="net.cpp StateMeetsRule: a rule needs all its stages; exclude { max_level: 1 } is met at level 0",
    ),
    "stages_level3": FlagNet(
        STAGES_AND_LEVELS,
        phase="TEST",
        level=3,
        layer_names=("input", "ip_other", "relu_high", "loss"),
        why="include rules OR together (min_level 3 met); exclude { max_level: 1 } not met at level 3 keeps relu",
    ),
    "skip_propagate_down_true": FlagNet(
        SKIP_PROPAGATE_DOWN.replace("PD", "true"),
        expected={
            "loss": (True, (True, True)),
            "argmax": (True, (True,)),
            "ip_fake_labels": (True, (False,)),
            "silence": (False, (False,)),
            "innerproduct": (True, (False,)),
        },
        why="TestSkipPropagateDown(true): every layer but the data ones and silence needs backward",
    ),
    "skip_propagate_down_false": FlagNet(
        SKIP_PROPAGATE_DOWN.replace("PD", "false"),
        expected={
            "loss": (True, (True, False)),
            "argmax": (False, (False,)),
            "ip_fake_labels": (False, (False,)),
            "innerproduct": (True, (False,)),
        },
        why="TestSkipPropagateDown(false): only innerproduct and loss need backward",
    ),
    "force_propagate_down_unset": FlagNet(
        FORCE_PROPAGATE_DOWN.replace("PD", ""),
        expected={"innerproduct": (True, (False,)), "loss": (True, (True, False))},
        why="TestForcePropagateDown without propagate_down",
    ),
    "force_propagate_down_true": FlagNet(
        FORCE_PROPAGATE_DOWN.replace("PD", "propagate_down: true"),
        expected={"innerproduct": (True, (True,)), "loss": (True, (True, False))},
        why="TestForcePropagateDown: propagate_down: true forces a data gradient",
    ),
    "split_three_readers": FlagNet(
        SPLIT_THREE_READERS,
        layer_names=("input", "data_input_0_split", "a", "b", "c", "sum", "loss"),
        expected={"data_input_0_split": (False, (False,)), "a": (True, (False,))},
        why="insert_splits.cpp: a blob read three times gets one Split named after its producer",
    ),
    "split_in_place": FlagNet(
        SPLIT_IN_PLACE,
        layer_names=(
            "input",
            "innerprod1",
            "relu1",
            "innerprod1_relu1_0_split",
            "innerprod2",
            "innerprod3",
            "sum",
            "loss",
        ),
        expected={"relu1": (True, (True,)), "innerprod1_relu1_0_split": (True, (True,))},
        why="insert_splits.cpp: the last producer (the in-place ReLU) names the split",
    ),
    "mid_net_loss": FlagNet(
        MID_NET_LOSS,
        layer_names=("input", "ipZ", "zeta_ipZ_0_split", "t1", "t2", "l"),
        expected={"zeta_ipZ_0_split": (True, (True,)), "ipZ": (True, (False,))},
        why="insert_splits.cpp: a nonzero loss_weight is one more reader; the weight moves to split top 0",
    ),
    "batch_norm_no_params": FlagNet(
        BATCH_NORM_NO_PARAMS,
        expected={"bn": (True, (False,)), "relu": (True, (True,)), "reduce": (True, (True,))},
        why="§2.7: the net's flag loop sees no param spec (lr 1) although BatchNorm sets lr 0 on its own copy",
    ),
    "tanh_propagate_down_true": FlagNet(
        TANH_PROPAGATE_DOWN_TRUE,
        expected={"tanh": (False, (True,)), "flat": (False, (False,)), "loss": (False, (True, False))},
        why="§2.1 (verified ex10): propagate_down: true alone never makes a param-less layer need backward",
    ),
    "shared_weights": FlagNet(
        SHARED_WEIGHTS,
        expected={"ip1": (True, (False,)), "ip2": (True, (True,))},
        why="net.cpp AppendParam: ppd per layer from its own spec; sharing merges the multipliers",
    ),
    "branch_under_no_loss": FlagNet(
        BRANCH_UNDER_NO_LOSS,
        expected={"side": (False, (False,)), "ip_ip_0_split": (True, (True,)), "ip": (True, (False,))},
        why="net.cpp reverse sweep: a branch no loss reads is pruned, its split keeps backward",
    ),
}
