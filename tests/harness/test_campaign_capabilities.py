"""A campaign within the engine under test's capabilities: its cases are drawn inside them, a
corpus case outside them runs on neither engine, and a forward-only engine is compared on its
layer list and forward data alone. Engines that claim nothing about Caffe."""

import dataclasses

import numpy as np

from harness.campaign.compare import compare
from harness.campaign.fuzz import Budget, Hunter, replay
from harness.case import Case, LayerRecord
from harness.engines.reference import ReferenceEngine
from tests.harness.fake_engines import CountingReference, HandfulReference

INPUT = 'layer { name: "input0" type: "Input" top: "data0" input_param { shape { dim: 2 dim: 3 } } }\n'
IP = 'layer { name: "ip" type: "InnerProduct" bottom: "data0" top: "ip" inner_product_param { num_output: 2 } }\n'
TANH = 'layer { name: "tanh" type: "TanH" bottom: "ip" top: "tanh" }\n'
LOSS = 'layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "ip" top: "loss" }\n'


def inner_product_case(net: str, solver: str | None = None) -> Case:
    return Case(
        net=net,
        solver=solver,
        iterations=1 if solver else 0,
        inputs={"data0": np.arange(6, dtype=np.float32).reshape(2, 3) / 10 + 0.05},
        params={
            "ip": (
                np.array([[0.1, -0.2, 0.3], [0.4, 0.5, -0.6]], np.float32),
                np.array([0.1, -0.1], np.float32),
            )
        },
    )


def test_a_corpus_case_outside_the_capabilities_runs_on_neither_engine():
    under_test, oracle = HandfulReference(), CountingReference()
    inside = inner_product_case(INPUT + IP + LOSS, 'base_lr: 0.1 lr_policy: "fixed"')
    with_tanh = inner_product_case(INPUT + IP + TANH + LOSS)
    with_adam = inner_product_case(INPUT + IP + LOSS, 'type: "Adam" base_lr: 0.1 lr_policy: "fixed"')
    records = []
    corpus = [("with_tanh", with_tanh), ("inside", inside), ("with_adam", with_adam)]
    replay(corpus, under_test, oracle, None, records.append)
    assert [r.verdict for r in records] == ["skipped", "agree", "skipped"]
    assert "layer 'tanh' (TanH): its type is not among layer_types" in records[0].summary
    assert "solver type Adam: not among solver_types ['SGD']" in records[2].summary
    assert under_test.cases == oracle.cases == [inside]


def test_a_hunt_draws_only_what_the_engine_under_test_models(tmp_path):
    """HandfulReference says UNSUPPORTED (a skip) for any case with another type or solver,
    read from the case itself: a hunt within its capabilities skips none, and every case it
    generated reached the oracle."""
    under_test, oracle = HandfulReference(), CountingReference()
    records = []
    hunter = Hunter(
        under_test,
        oracle,
        {"under_test": "handful", "oracle": "counting"},
        Budget(examples=60),
        seed=3,
        bundle_dir=tmp_path,
        database_dir=None,
        on_record=records.append,
        strategy_options={"refusals": True},
    )
    hunter.hunt()
    assert len(records) == 60
    assert [r.verdict for r in records if r.verdict != "agree"] == []
    assert len(oracle.cases) == len(under_test.cases) == 60
    seen = {t for r in records for t in r.layer_types} - {"Input", "Split"}
    assert seen <= HandfulReference.layer_types and len(seen) >= 5


def forward_only(result):
    """What a forward-only engine returns: the layer list without flags, the forward data."""
    layers = tuple(LayerRecord(r.name, r.type, r.bottoms, r.tops) for r in result.layers)
    return dataclasses.replace(
        result, engine="forward", layers=layers, losses=(), blob_diff={}, param_diff={}, param_history=()
    )


def test_a_forward_only_engine_is_compared_on_its_forward_data_alone():
    case = inner_product_case(INPUT + IP + TANH + LOSS)
    reference = ReferenceEngine().run(case)
    result = forward_only(reference)
    forward = ("forward",)
    assert compare(result, reference, case.params, forward).verdict == "agree"
    # Under every stage the missing diffs and flags are mismatches.
    assert compare(result, reference, case.params).verdict == "disagree"
    wrong = dataclasses.replace(
        result, blob_data={**result.blob_data, "tanh": result.blob_data["tanh"] * 1.01}
    )
    mismatch = compare(wrong, reference, case.params, forward).first
    assert (mismatch.kind, mismatch.layer) == ("forward", "tanh")
