"""Repro bundles keep their comparison as data, and the report reads it from there."""

import json
import math

import pytest

from harness.campaign import report
from harness.campaign.bundle import Bundle, describe, describe_comparison
from harness.campaign.compare import Comparison, Mismatch
from harness.campaign.fuzz import CaseRecord
from harness.case import Case
from harness.errors import HarnessError

NET = """layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 2 } }
layer { name: "relu" type: "ReLU" bottom: "y" top: "y" }
"""
# The loss blames no layer, so the first layer blamed is the second mismatch's.
COMPARISON = Comparison(
    [
        Mismatch(
            "loss", None, "forward loss: max abs err 0.1 at (): reference=1 caffe=1.1 (tolerance 1e-06)", 0.1
        ),
        Mismatch(
            "forward",
            "ip",
            "ip top 'y' data: max abs err 0.5 at (1, 0): reference=0 caffe=0.5",
            0.5,
            "top 0 data",
        ),
        Mismatch("flags", "relu", "relu need_backward: reference=True caffe=False"),
    ]
)
ENGINES = {"under_test": "reference", "oracle": "caffe"}


def test_bundle_json_round_trips_the_comparison(tmp_path):
    Bundle(Case(NET), {}, ENGINES, COMPARISON).save(tmp_path / "b")
    meta = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert meta["comparison"]["verdict"] == "disagree"
    assert meta["comparison"]["mismatches"][1] == {
        "kind": "forward",
        "layer": "ip",
        "message": COMPARISON.mismatches[1].message,
        "max_abs_error": 0.5,
        "quantity": "top 0 data",
    }
    loaded = Bundle.load(tmp_path / "b")
    assert loaded.comparison == COMPARISON and loaded.engines == ENGINES


def test_a_skipped_comparison_and_a_nan_error_round_trip(tmp_path):
    skipped = Comparison(skipped="reference does not model this case: reads files")
    Bundle(Case(NET), {}, ENGINES, skipped).save(tmp_path / "s")
    assert Bundle.load(tmp_path / "s").comparison.verdict == "skipped"
    nan = Comparison([Mismatch("forward", "ip", "NaN at (0,) on one side only", float("nan"))])
    Bundle(Case(NET), {}, ENGINES, nan).save(tmp_path / "n")
    assert math.isnan(Bundle.load(tmp_path / "n").comparison.first.max_abs_error)


def test_diff_txt_is_the_comparison_in_words_then_the_net(tmp_path):
    Bundle(Case(NET), {}, ENGINES, COMPARISON).save(tmp_path / "b")
    text = (tmp_path / "b" / "diff.txt").read_text()
    assert text == describe(COMPARISON, Case(NET)) + "\n"
    assert text.startswith(describe_comparison(COMPARISON) + "\n\nnet.prototxt:\n")
    assert describe_comparison(COMPARISON).splitlines()[2:4] == [
        "[loss] " + COMPARISON.mismatches[0].message,
        "[forward, ip] " + COMPARISON.mismatches[1].message,
    ]


def test_a_bundle_without_a_stored_comparison_is_refused_with_the_reason(tmp_path):
    Bundle(Case(NET), {}, ENGINES, COMPARISON).save(tmp_path / "b")
    (tmp_path / "b" / "bundle.json").write_text(json.dumps({"engines": ENGINES}))
    with pytest.raises(HarnessError, match="holds no comparison"):
        Bundle.load(tmp_path / "b")


def test_the_report_marks_the_first_layer_the_stored_mismatches_blame(tmp_path, monkeypatch):
    from harness.explain import graph

    path = Bundle(Case(NET), {}, ENGINES, COMPARISON).save(tmp_path / "b")
    # diff.txt is for people: what it says must not move the mark.
    (path / "diff.txt").write_text("verdict: ...\n\n[forward, relu] relu top 'y' data\n")
    blamed = []

    def to_dot(data, blame=None, title=None, legend=True):
        blamed.append(blame)
        return "digraph { a }"

    monkeypatch.setattr(graph, "to_dot", to_dot)
    record = CaseRecord(
        "seed0-case1",
        "disagree",
        COMPARISON.summary(),
        {},
        ["InnerProduct"],
        {},
        shrinking=True,
        bundle=str(path),
        signature="loss:-",
    )
    report.write_report(tmp_path / "report", [record], False, {})
    assert blamed == ["ip"]
