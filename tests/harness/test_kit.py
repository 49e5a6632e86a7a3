"""The adapter kit (harness/engines/kit.py), through the example engine built with it
(tests/harness/kit_engines.py): agreement with the reference engine on generated cases, a
planted bug caught, Split and in-place blobs as Caffe keeps them, failures as outcomes.

These tests compare with the reference engine and claim nothing about Caffe itself
(tests/caffe/test_kit_against_caffe.py does).
"""

import re
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, find, given, settings

from harness.campaign.compare import TOLERANCES, array_mismatch, compare
from harness.campaign.fuzz import run_pair
from harness.case import Case, Outcome
from harness.engines.kit import TorchEngine
from harness.engines.reference import ReferenceEngine
from harness.generate import cases
from reference_engine.net import parse_net
from tests.harness.kit_engines import ExampleEngine, IgnoresNegativeSlope

EXAMPLE, REFERENCE = ExampleEngine(), ReferenceEngine()
ENGINES_DOC = Path(__file__).resolve().parents[2] / "docs" / "engines.md"
CASES_PLANTED_BUG_NEEDS = 300  # a leaky ReLU turns up within a few dozen; this is a loose bound

# Two readers of an InnerProduct's top: Caffe inserts a Split with one top per reader.
TWO_READERS = """
layer { name: "input" type: "Input" top: "x" top: "t1" top: "t2"
        input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 2 } shape { dim: 2 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 2 } }
layer { name: "loss1" type: "EuclideanLoss" bottom: "y" bottom: "t1" top: "loss1" }
layer { name: "loss2" type: "EuclideanLoss" bottom: "y" bottom: "t2" top: "loss2" loss_weight: 2
        propagate_down: %s propagate_down: false }
"""

# TanH, then a leaky ReLU in place on its top: Caffe's TanH Backward reads the rewritten top.
IN_PLACE_CHAIN = """
layer { name: "input" type: "Input" top: "x" top: "t" input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 2 } }
layer { name: "tanh" type: "TanH" bottom: "y" top: "h" }
layer { name: "relu" type: "ReLU" bottom: "h" top: "h" relu_param { negative_slope: 0.5 } }
layer { name: "sigmoid" type: "Sigmoid" bottom: "h" top: "h" }
layer { name: "loss" type: "EuclideanLoss" bottom: "h" bottom: "t" top: "loss" }
"""

SGD = 'base_lr: 0.1 lr_policy: "step" gamma: 0.5 stepsize: 1 momentum: 0.9 weight_decay: 0.01'


def case_of(net: str, solver: str | None = None, iterations: int = 0, seed: int = 1) -> Case:
    """The net with its inputs and the InnerProduct's params drawn from ``seed``."""
    rng = np.random.RandomState(seed)
    shapes = {
        top: tuple(shape.dim)
        for layer in parse_net(net).layer
        if layer.type == "Input"
        for top, shape in zip(layer.top, layer.input_param.shape)
    }
    inputs = {name: rng.uniform(-1, 1, size=shape).astype(np.float32) for name, shape in shapes.items()}
    params = {"ip": (rng.uniform(-1, 1, size=(2, 3)).astype(np.float32), np.full(2, 0.1, np.float32))}
    return Case(net=net, solver=solver, iterations=iterations, inputs=inputs, params=params)


def assert_agrees(case: Case, engine=EXAMPLE):
    comparison, results = run_pair(case, engine, REFERENCE)
    assert comparison.verdict == "agree", comparison.summary()
    return results[engine.name], results[REFERENCE.name]


def assert_close(actual, expected, what):
    message, _ = array_mismatch(
        np.asarray(actual, np.float64), np.asarray(expected, np.float64), TOLERANCES["bottom_diff"]
    )
    assert message is None, f"{what}: {message}"


# ---- generated cases ----------------------------------------------------------------------------


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(capabilities=ExampleEngine.capabilities, refusals=True))
def test_example_engine_agrees_with_the_reference_on_generated_cases(case):
    comparison, _ = run_pair(case, EXAMPLE, REFERENCE)
    assert comparison.verdict == "agree", comparison.summary()


def test_a_planted_bug_is_found_and_blamed_on_its_layer():
    buggy = IgnoresNegativeSlope()

    def disagrees(case):
        return run_pair(case, buggy, REFERENCE)[0].verdict == "disagree"

    found = find(
        cases(capabilities=IgnoresNegativeSlope.capabilities),
        disagrees,
        settings=settings(
            max_examples=CASES_PLANTED_BUG_NEEDS,
            database=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    comparison, results = run_pair(found, buggy, REFERENCE)
    blamed = next(r for r in results[buggy.name].layers if r.name == comparison.first.layer)
    assert (blamed.type, comparison.first.kind) == ("ReLU", "forward"), comparison.summary()


# ---- Caffe's blobs -------------------------------------------------------------------------------


@pytest.mark.parametrize("loss2_propagates", [True, False])
def test_split_tops_carry_one_diff_per_reader(loss2_propagates):
    case = case_of(TWO_READERS % str(loss2_propagates).lower())
    mine, _ = assert_agrees(case)
    split = next(r for r in mine.layers if r.type == "Split")
    assert (split.name, split.bottoms) == ("y_ip_0_split", ("y",))
    assert split.tops == ("y_ip_0_split_0", "y_ip_0_split_1")
    y = mine.blob_data["y"]
    first = (y - case.inputs["t1"]) / 2  # EuclideanLoss: (a - b) w / num, num = 2
    # A reader that computes no diff leaves its Split top's zero diff, as Caffe's blob does.
    second = 2 * (y - case.inputs["t2"]) / 2 if loss2_propagates else np.zeros_like(y)
    assert_close(mine.blob_diff["y_ip_0_split_0"], first, "loss1's split top")
    assert_close(mine.blob_diff["y_ip_0_split_1"], second, "loss2's split top")
    assert_close(mine.blob_diff["y"], first + second, "the Split's bottom, their sum")


def test_in_place_layers_keep_their_blob_as_they_read_it_and_see_it_rewritten():
    case = case_of(IN_PLACE_CHAIN)
    mine, reference = assert_agrees(case)
    assert set(mine.in_place_data) == set(mine.in_place_diff) == {"relu", "sigmoid"}
    for layer in ("relu", "sigmoid"):
        assert_close(mine.in_place_data[layer], reference.in_place_data[layer], f"{layer} data")
        assert_close(mine.in_place_diff[layer], reference.in_place_diff[layer], f"{layer} diff")
    # TanH's Backward reads its top as the layers in place left it: 1 - s^2, s the final data
    # (sigmoid's), times the diff relu left in h.
    final, incoming = mine.blob_data["h"], mine.blob_diff["h"]
    assert_close(mine.blob_diff["y"], incoming * (1 - final**2), "tanh's bottom diff")


def test_sgd_steps_agree_with_the_reference():
    mine, _ = assert_agrees(case_of(IN_PLACE_CHAIN, solver=SGD, iterations=3))
    assert len(mine.param_history) == 3 and len(mine.losses) == 4


# ---- failures are outcomes -------------------------------------------------------------------------


class FailsInSigmoid(ExampleEngine):
    """The example with Sigmoid failing where ``stage`` says: forward, backward, or the solver's
    second update."""

    name = "fails-in-sigmoid"

    def __init__(self, stage: str):
        self.stage = stage

    def forward(self, layer, bottom, params):
        if layer.type == "Sigmoid" and self.stage == "forward":
            raise ValueError("no sigmoid today")
        tops = super().forward(layer, bottom, params)
        return (
            [FailingBackward.apply(tops[0])] if layer.type == "Sigmoid" and self.stage == "backward" else tops
        )

    def apply_update(self, params, solver, iteration):
        if self.stage == "solver" and iteration == 1:
            raise FloatingPointError("the second step")
        super().apply_update(params, solver, iteration)


class FailingBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, dy):
        raise ArithmeticError("no gradient today")


def test_an_exception_in_forward_aborts_there_and_keeps_what_ran_before():
    result = FailsInSigmoid("forward").run(case_of(IN_PLACE_CHAIN))
    assert (result.outcome, result.stage) == (Outcome.ABORTED, "forward")
    assert result.message == "layer 'sigmoid' (Sigmoid) forward: ValueError: no sigmoid today"
    assert [r.name for r in result.layers] == ["input", "ip", "tanh", "relu", "sigmoid", "loss"]
    # h is sigmoid's blob too: its data is not final, but relu's reading of it is kept.
    assert set(result.blob_data) == {"x", "t", "y"} and set(result.in_place_data) == {"relu", "sigmoid"}
    # What both made before the failure agrees with the reference: only the outcomes differ.
    comparison = compare(result, REFERENCE.run(case_of(IN_PLACE_CHAIN)))
    assert [m.kind for m in comparison.mismatches] == ["outcome"], comparison.summary()


def test_an_exception_in_backward_aborts_there_and_keeps_the_forward():
    result = FailsInSigmoid("backward").run(case_of(IN_PLACE_CHAIN))
    assert (result.outcome, result.stage) == (Outcome.ABORTED, "backward")
    assert "layer 'sigmoid' (Sigmoid) backward: ArithmeticError: no gradient today" in result.message
    assert set(result.blob_data) == {"x", "t", "y", "h", "loss"} and len(result.losses) == 1
    assert set(result.in_place_diff) == {"sigmoid"} and not result.blob_diff


def test_an_exception_in_the_update_aborts_at_solver_after_the_iterations_done():
    result = FailsInSigmoid("solver").run(case_of(IN_PLACE_CHAIN, solver=SGD, iterations=3))
    assert (result.outcome, result.stage) == (Outcome.ABORTED, "solver")
    assert len(result.param_history) == 1 and len(result.losses) == 3 and result.param_diff


def test_a_layer_type_the_engine_lacks_is_unsupported_and_a_caffe_refusal_is_caffes():
    lacking = case_of(IN_PLACE_CHAIN.replace('type: "TanH"', 'type: "AbsVal"'))
    result = EXAMPLE.run(lacking)
    assert (result.outcome, result.stage, result.message) == (
        Outcome.UNSUPPORTED,
        "forward",
        "layer type AbsVal",
    )
    refused = case_of(TWO_READERS % "true propagate_down: true")  # three flags for two bottoms
    mine, reference = EXAMPLE.run(refused), REFERENCE.run(refused)
    assert (mine.outcome, mine.stage, mine.message) == (Outcome.REFUSED, "init", reference.message)


def test_the_base_class_models_no_solver():
    class ForwardOnly(TorchEngine):
        def forward(self, layer, bottom, params):
            return ExampleEngine().forward(layer, bottom, params)

    result = ForwardOnly().run(case_of(IN_PLACE_CHAIN, solver=SGD, iterations=1))
    assert (result.outcome, result.stage) == (Outcome.UNSUPPORTED, "solver")


# ---- the documentation's example -----------------------------------------------------------------


def test_the_example_in_the_docs_is_this_one_and_runs(tmp_path):
    """docs/engines.md shows ExampleEngine whole: its code block is kit_engines.py's, and runs
    on its own."""
    text = ENGINES_DOC.read_text()
    section = text[text.index("## Engines on torch modules: the adapter kit") :]
    block = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    source = Path(__file__).with_name("kit_engines.py").read_text()
    assert block.strip() in source, "docs/engines.md's example differs from tests/harness/kit_engines.py"
    (tmp_path / "example.py").write_text(block)
    example = runpy.run_path(str(tmp_path / "example.py"))
    assert_agrees(case_of(IN_PLACE_CHAIN, solver=SGD, iterations=2), example["ExampleEngine"]())
