"""The conformance suite (conformance_suite/, docs/suite.md) run as its users run it: pytest in
a subprocess, in a directory of its own, with ``--pyargs conformance_suite`` and the options of
the installed plugin. Against real Caffe throughout, never mocked: a green run claims
conformance, and a red one must be a disagreement with Caffe itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import pytest
from google.protobuf import text_format
from hypothesis import given
from hypothesis import strategies as st

from conformance_suite.features import Feature, up_to
from harness.capabilities import EVERYTHING
from harness.cli import main
from reference_engine import caffe_pb2
from reference_engine.net import read_net_param
from reference_engine.state import filter_net

pytestmark = pytest.mark.caffe

ROOT = Path(__file__).resolve().parents[2]
PLANTED = "tests.harness.suite_engines:EuclideanLossSignEngine"
# The planted bug's feature, and tests that must stay green beside it: EuclideanLoss's own
# forward, and ReLU's and PReLU's tests, whose nets end in EuclideanLoss too.
PLANTED_SELECTION = "EuclideanLoss or ReLU"
PLANTED_TEST = "test_backward[EuclideanLoss]"


@dataclass(frozen=True)
class SuiteRun:
    returncode: int
    output: str
    outcomes: dict[str, str]  # test name -> passed, failed, skipped, xfailed or error


def run_suite(directory: Path, *options: str) -> SuiteRun:
    """``pytest --pyargs conformance_suite`` in ``directory``; tests/ importable for the engines
    of suite_engines.py, as a user's own package would be."""
    junit = directory / "junit.xml"
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "conformance_suite", *options]
        + ["-p", "no:cacheprovider", f"--junitxml={junit}"],
        check=False,  # a red run is an outcome to read, not an error
        cwd=directory,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = completed.stdout + completed.stderr
    assert junit.is_file(), output
    return SuiteRun(completed.returncode, output, _outcomes(junit))


def _outcomes(junit: Path) -> dict[str, str]:
    outcomes = {}
    for case in ElementTree.parse(junit).iter("testcase"):
        verdicts = [child for child in case if child.tag in ("failure", "error", "skipped")]
        if not verdicts:
            outcomes[case.get("name")] = "passed"
        elif verdicts[0].tag == "skipped":
            outcomes[case.get("name")] = "xfailed" if verdicts[0].get("type") == "pytest.xfail" else "skipped"
        else:
            outcomes[case.get("name")] = "failed" if verdicts[0].tag == "failure" else "error"
    return outcomes


@given(st.data())
def test_a_layer_types_cases_all_hold_it(data):
    # Pooling only fits 4-D blobs: the generator cannot place it by construction in every net.
    case = data.draw(Feature.backward("Pooling").cases(up_to(EVERYTHING, "backward")))
    net, _ = read_net_param(case.net, case.phase, case.level, case.stages)
    assert "Pooling" in {layer.type for layer in filter_net(net).layer}
    assert case.solver is None


@given(st.data())
def test_a_solver_types_cases_all_run_it(data):
    case = data.draw(Feature.solver("Adam").cases(EVERYTHING))
    solver = text_format.Parse(case.solver, caffe_pb2.SolverParameter())
    assert (case.phase, solver.type) == ("TRAIN", "Adam") and case.iterations >= 1


def test_reference_engine_conforms_on_a_selection(tmp_path):
    # --hypothesis-seed: the same cases at every run, as the project's tests draw them in CI.
    run = run_suite(
        tmp_path,
        *("--engine", "reference", "--against", "caffe", "--max-examples", "20", "--hypothesis-seed", "0"),
        *("-k", "test_flags or Pooling or InnerProduct or SGD"),
    )
    assert run.returncode == 0, run.output
    assert run.outcomes == {
        "test_flags": "passed",
        "test_forward[InnerProduct]": "passed",
        "test_forward[Pooling]": "passed",
        "test_backward[InnerProduct]": "passed",
        "test_backward[Pooling]": "passed",
        "test_solver[SGD]": "passed",
    }, run.output


def test_a_type_the_generator_cannot_draw_is_skipped_with_the_reason(tmp_path):
    run = run_suite(tmp_path, "--engine", "reference", "-k", "HDF5Data", "-rs")
    assert run.outcomes == {"test_forward[HDF5Data]": "skipped", "test_backward[HDF5Data]": "skipped"}
    assert "the generator draws no HDF5Data layer" in run.output


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, SuiteRun]:
    """The suite run once on the planted engine: its working directory, and the run."""
    directory = tmp_path_factory.mktemp("planted")
    run = run_suite(directory, "--engine", PLANTED, "-k", PLANTED_SELECTION, "--max-examples", "20")
    return directory, run


def test_a_planted_bug_fails_its_own_test_and_no_other(planted):
    directory, run = planted
    assert run.returncode == 1, run.output
    assert {name for name, outcome in run.outcomes.items() if outcome != "passed"} == {PLANTED_TEST}
    assert {"test_forward[EuclideanLoss]", "test_forward[ReLU]", "test_backward[ReLU]"} <= set(run.outcomes)
    bundle = directory / ".caffe-conformance" / "bundles" / "test_backward-EuclideanLoss"
    assert (bundle / "bundle.json").is_file()
    assert f"bundle: {bundle}" in run.output
    assert f"caffe-conformance replay {bundle} --engine {PLANTED} --against caffe" in run.output


def test_the_bundle_replays_as_a_disagreement_of_the_engine(planted):
    directory, _ = planted
    bundle = str(directory / ".caffe-conformance" / "bundles" / "test_backward-EuclideanLoss")
    assert main(["replay", bundle, "--engine", PLANTED, "--against", "caffe"]) == 1
    assert main(["replay", bundle, "--engine", "reference", "--against", "caffe"]) == 0


def test_an_xfails_file_marks_the_known_gap(planted, tmp_path):
    directory, _ = planted
    shutil.copytree(directory / ".caffe-conformance" / "examples", tmp_path / "examples")
    xfails = tmp_path / "xfails.txt"
    xfails.write_text(
        "# the planted engine's known gaps\n"
        f"conformance_suite/test_backward.py::{PLANTED_TEST}  # its sign bug\n"
        "test_forward[EuclideanLoss]\n"
        "test_backward[NoSuchType]\n"
    )
    run = run_suite(
        tmp_path,
        *("--engine", PLANTED, "-k", "EuclideanLoss", "--max-examples", "1"),
        *("--xfails", str(xfails), "--example-db", "examples"),
    )
    assert run.returncode == 0, run.output
    assert run.outcomes == {PLANTED_TEST: "xfailed", "test_forward[EuclideanLoss]": "passed"}
    # A listed test that passed, and a listed name that no test has, are both said at the end.
    passed, unmatched = run.output.split("known gaps that passed", 1)[1].split("known gaps that name no test")
    assert "test_forward[EuclideanLoss]" in passed and PLANTED_TEST not in passed
    assert "test_backward[NoSuchType]" in unmatched


def test_the_example_database_replays_a_failure_first(planted, tmp_path):
    directory, _ = planted
    database = directory / ".caffe-conformance" / "examples"
    assert any((database / "test_backward-EuclideanLoss").iterdir())
    shutil.copytree(database, tmp_path / "examples")
    # One case generated: Hypothesis's first is the simplest, an EuclideanLoss on two Input
    # blobs without force_backward, where no gradient reaches the second bottom and the bug
    # cannot show; only a case replayed from the database can fail the test.
    one_case = ("--engine", PLANTED, "-k", PLANTED_TEST, "--max-examples", "1")
    (tmp_path / "again").mkdir()
    again = run_suite(tmp_path / "again", *one_case, "--example-db", str(tmp_path / "examples"))
    assert again.outcomes == {PLANTED_TEST: "failed"}, again.output
    (tmp_path / "fresh").mkdir()
    fresh = run_suite(tmp_path / "fresh", *one_case)
    assert fresh.outcomes == {PLANTED_TEST: "passed"}, fresh.output
