"""Capabilities: the generator draws only inside them, and ``outside`` names what a case holds
beyond them. The drawn cases are checked on their own nets here, not through ``outside``."""

import pytest
from google.protobuf import text_format
from hypothesis import HealthCheck, given, settings

from harness.capabilities import EVERYTHING, Capabilities
from harness.case import Case
from harness.errors import HarnessError
from harness.generate import cases
from reference_engine import caffe_pb2
from reference_engine.layer import layer_class
from reference_engine.net import parse_net

FIXED = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

FORWARD_ONLY = Capabilities(
    stages=("forward",),
    layer_types={"Convolution", "Pooling", "ReLU", "Concat", "Softmax", "Slice"},
    phases=("TEST",),
    param_sharing=False,
    state_rules=False,
    levels_and_stages=False,
    force_backward=False,
    in_place=False,
    non_loss_weights=False,
    propagate_down=False,
    refusals=False,
)
SGD_AND_A_HANDFUL = Capabilities(
    layer_types={"InnerProduct", "ReLU", "Sigmoid", "EuclideanLoss", "SoftmaxWithLoss"},
    solver_types={"SGD"},
    lr_policies={"fixed", "step"},
    param_sharing=False,
)
NO_NET_STATE = Capabilities(state_rules=False, levels_and_stages=False, phases=("TRAIN",))
BACKWARD_WITHOUT_SOLVER = Capabilities(stages=("forward", "backward"), propagate_down=False, in_place=False)


def shared_names(net) -> list[str]:
    names = [spec.name for layer in net.layer for spec in layer.param if spec.name]
    return [name for name in names if names.count(name) > 1]


def check_within(case: Case, capabilities: Capabilities):
    net = parse_net(case.net)
    assert case.phase in capabilities.phases
    if case.solver is not None:
        assert capabilities.models("solver"), "a solver for an engine without one"
        solver = text_format.Parse(case.solver, caffe_pb2.SolverParameter())
        assert capabilities.solver_types is None or solver.type in capabilities.solver_types
        assert capabilities.lr_policies is None or solver.lr_policy in capabilities.lr_policies
    if capabilities.layer_types is not None:
        assert {layer.type for layer in net.layer} - {"Input"} <= capabilities.layer_types
    if not capabilities.param_sharing:
        assert shared_names(net) == []
    if not capabilities.state_rules:
        assert not any(layer.include or layer.exclude for layer in net.layer)
    if not capabilities.levels_and_stages:
        assert case.level == 0 and case.stages == ()
    if not capabilities.force_backward:
        assert not net.force_backward
    if not capabilities.in_place:
        assert not any(set(layer.top) & set(layer.bottom) for layer in net.layer)
    if not capabilities.propagate_down:
        assert not any(layer.propagate_down for layer in net.layer)
    if not capabilities.non_loss_weights:
        assert not any(layer.loss_weight and not layer_class(layer.type).is_loss for layer in net.layer)
    assert capabilities.outside(case) is None


@pytest.mark.parametrize(
    "capabilities",
    [FORWARD_ONLY, SGD_AND_A_HANDFUL, NO_NET_STATE, BACKWARD_WITHOUT_SOLVER],
    ids=["forward_only", "sgd_and_a_handful", "no_net_state", "backward_without_solver"],
)
def test_generated_cases_lie_within_the_capabilities(capabilities):
    seen_types = set()

    @FIXED
    @given(cases(refusals=True, capabilities=capabilities))
    def within(case):
        check_within(case, capabilities)
        seen_types.update(layer.type for layer in parse_net(case.net).layer)

    within()
    if capabilities.layer_types is not None:
        # Restricting the types must not starve the nets: most of the allowed types turn up.
        assert len(seen_types & capabilities.layer_types) >= len(capabilities.layer_types) - 1


def test_restricted_generation_still_draws_solvers_and_layers():
    solvers, sizes = [], []

    @FIXED
    @given(cases(capabilities=SGD_AND_A_HANDFUL))
    def collect(case):
        solvers.append(case.solver is not None)
        sizes.append(len(parse_net(case.net).layer))

    collect()
    assert sum(solvers) > len(solvers) / 10  # a solver in TRAIN nets, half of them in TRAIN
    assert sum(size > 3 for size in sizes) > len(sizes) / 3


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"layer_types": {"ReLU", "NoSuchLayer"}},
            r"layer_types=\['NoSuchLayer', 'ReLU'\]: NoSuchLayer not among",
        ),
        (
            {"solver_types": {"SGD", "LBFGS"}},
            r"solver_types=\['LBFGS', 'SGD'\]: LBFGS not among SGD, Nesterov",
        ),
        ({"layer_types": set()}, r"layer_types=\[\]: must name at least one of ReLU"),
    ],
)
def test_names_the_generator_does_not_know_are_refused(changes, message):
    def draw_one():
        @settings(FIXED, max_examples=1)
        @given(cases(capabilities=Capabilities(**changes)))
        def draw(case):
            pass

        draw()

    with pytest.raises(HarnessError, match=message):
        draw_one()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"stages": ("backward",)}, r"stages=\('backward',\): must be"),
        ({"phases": ("VALIDATE",)}, r"phases=\('VALIDATE',\): must be one or both"),
    ],
)
def test_capabilities_refuse_what_they_cannot_mean(changes, message):
    with pytest.raises(HarnessError, match=message):
        Capabilities(**changes)


NET = """
layer { name: "input0" type: "Input" top: "data0" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "relu0" type: "ReLU" bottom: "data0" top: "data0" }
layer { name: "ip1" type: "InnerProduct" bottom: "data0" top: "ip1"
        param { name: "w" } inner_product_param { num_output: 2 } }
layer { name: "ip2" type: "InnerProduct" bottom: "data0" top: "ip2"
        param { name: "w" } inner_product_param { num_output: 2 } }
layer { name: "tanh3" type: "TanH" bottom: "ip2" top: "tanh3" loss_weight: 1
        include { phase: TRAIN } }
"""
SOLVER = 'type: "Adam" base_lr: 0.01 lr_policy: "fixed"'


@pytest.mark.parametrize(
    "changes, reason",
    [
        (
            {"layer_types": {"ReLU", "InnerProduct"}},
            "layer 'tanh3' (TanH): its type is not among layer_types",
        ),
        ({"param_sharing": False}, "layer 'ip1' (InnerProduct): shares a param by name"),
        ({"in_place": False}, "layer 'relu0' (ReLU): runs in place"),
        ({"state_rules": False}, "layer 'tanh3' (TanH): has include/exclude rules"),
        ({"non_loss_weights": False}, "layer 'tanh3' (TanH): a loss_weight on a layer that is not a loss"),
        ({"stages": ("forward", "backward")}, "a solver: the engine models only forward, backward"),
        ({"solver_types": {"SGD"}}, "solver type Adam: not among solver_types ['SGD']"),
        ({"phases": ("TEST",)}, "phase TRAIN: not among phases ('TEST',)"),
    ],
)
def test_outside_names_the_first_feature_beyond_the_capabilities(changes, reason):
    case = Case(net=NET, solver=SOLVER, iterations=1)
    assert EVERYTHING.outside(case) is None
    assert Capabilities(**changes).outside(case).startswith(reason)
