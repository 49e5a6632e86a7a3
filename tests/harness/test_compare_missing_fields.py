"""What the comparison does with a field an engine left out, as docs/engines.md tabulates it:
the reference engine against itself, one field taken away at a time."""

import dataclasses

import numpy as np
import pytest

from harness.campaign.compare import compare
from harness.case import Case
from harness.engines.reference import ReferenceEngine

NET = """
layer { name: "input0" type: "Input" top: "data0" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data0" top: "ip" inner_product_param { num_output: 2 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "ip" top: "loss" }
"""
CASE = Case(
    net=NET,
    solver='base_lr: 0.1 lr_policy: "fixed"',
    iterations=2,
    inputs={"data0": np.arange(6, dtype=np.float32).reshape(2, 3) / 10 + 0.05},
    params={
        "ip": (np.array([[0.1, -0.2, 0.3], [0.4, 0.5, -0.6]], np.float32), np.array([0.1, -0.1], np.float32))
    },
)


@pytest.fixture(scope="module")
def result():
    return ReferenceEngine().run(CASE)


def without(result, **changes):
    return dataclasses.replace(result, engine="mine", **changes)


@pytest.mark.parametrize(
    "changes, verdict, first",
    [
        (
            lambda r: {"layers": tuple(dataclasses.replace(l, need_backward=None) for l in r.layers)},
            "agree",
            None,
        ),
        (lambda r: {"param_diff": {}}, "agree", None),
        (lambda r: {"losses": r.losses[:1]}, "agree", None),
        (lambda r: {"outputs": (), "info": {}}, "agree", None),
        (
            lambda r: {"layers": ()},
            "disagree",
            "only reference has the layers input0, ip, ip_ip_0_split, loss",
        ),
        (
            lambda r: {"blob_data": {k: v for k, v in r.blob_data.items() if k != "ip"}},
            "disagree",
            "ip top 'ip' data: missing from mine's result",
        ),
        (lambda r: {"blob_diff": {}}, "disagree", "missing from mine's result"),
        (lambda r: {"param_history": ()}, "disagree", "solver iterations: mine=0 reference=2"),
        (lambda r: {"param_history": ({}, {})}, "agree", None),
    ],
    ids=[
        "flags",
        "param_diffs",
        "losses",
        "outputs_and_info",
        "layers",
        "blob_data",
        "blob_diffs",
        "solver_history",
        "a_layer_in_the_history",
    ],
)
def test_a_field_left_out(result, changes, verdict, first):
    comparison = compare(without(result, **changes(result)), result, CASE.params)
    assert comparison.verdict == verdict
    if first is not None:
        assert first in comparison.first.message
