"""Bad input ends in a clear line and an exit code (0, 1 or 2), never a traceback.

Hypothesis mutates valid prototxts, solver files and bundles (bytes and tokens), and every
command that reads them (explain, check, replay) must end with an exit code. The bounded run
here goes in CI; benchmarks/mutation_fuzz.py runs the long one and prints counts."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.campaign.bundle import Bundle
from harness.campaign.compare import Comparison
from harness.case import Case
from harness.cli import main

RENAMED = "tests.harness.fake_engines:RenamedReference"

NET = b"""name: "small"
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } shape { dim: 2 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  param { lr_mult: 1 } convolution_param { num_output: 2 kernel_size: 3 pad: 1 } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip" propagate_down: false
  inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""
SOLVER = (
    b'type: "SGD" base_lr: 0.01 momentum: 0.9 weight_decay: 0.0005 lr_policy: "step" gamma: 0.5 stepsize: 1'
)
TOKENS = [
    b"-1",
    b"0",
    b"99999999999",
    b"nan",
    b"1e400",
    b'"',
    b"{",
    b"}",
    b"\xff\xfe",
    b"\x00",
    b"layer",
    b"dim:",
    b"bottom:",
    b'"data"',
    b"type:",
    b'"Python"',
    b'"HDF5Output"',
    b"num_output: 0",
    b" ",
]


@st.composite
def mutants(draw, original: bytes) -> bytes:
    """``original`` with a few spans deleted, replaced by hostile tokens or random bytes."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(data)))
        end = min(len(data), start + draw(st.integers(0, 12)))
        replacement = draw(st.sampled_from(TOKENS) | st.binary(max_size=6) | st.just(b""))
        data[start:end] = replacement
    return bytes(data)


def exit_code(argv) -> int:
    """The command's exit code; any exception escaping main is the bug this test is for."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            return main(argv)
        except SystemExit as e:  # argparse's own usage errors
            return e.code


MUTATION = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@MUTATION
@given(net=mutants(NET))
def test_explain_and_check_never_trace_back_on_a_mutated_prototxt(tmp_path_factory, net):
    path = tmp_path_factory.mktemp("net") / "net.prototxt"
    path.write_bytes(net)
    assert exit_code(["explain", str(path)]) in (0, 1, 2)
    assert exit_code(["check", str(path), "--engine", RENAMED, "--against", "reference"]) in (0, 1, 2)


@MUTATION
@given(solver=mutants(SOLVER))
def test_check_never_traces_back_on_a_mutated_solver(tmp_path_factory, solver):
    directory = tmp_path_factory.mktemp("solver")
    (directory / "net.prototxt").write_bytes(NET)
    (directory / "solver.prototxt").write_bytes(solver)
    argv = [
        "check",
        str(directory / "net.prototxt"),
        "--solver",
        str(directory / "solver.prototxt"),
        "--engine",
        RENAMED,
        "--against",
        "reference",
    ]
    assert exit_code(argv) in (0, 1, 2)


BUNDLE_FILES = ("bundle.json", "case/meta.json", "case/net.prototxt", "case/arrays.npz")


def _pristine_bundle(directory: Path) -> Path:
    case = Case(
        net=NET.decode(), inputs={"data": np.ones((2, 3, 4, 4), np.float32), "label": np.zeros(2, np.float32)}
    )
    return Bundle(case, {}, {"under_test": "reference", "oracle": "caffe"}, Comparison()).save(directory)


@MUTATION
@given(which=st.sampled_from(BUNDLE_FILES), data=st.data())
def test_replay_never_traces_back_on_a_corrupt_bundle(tmp_path_factory, which, data):
    pristine = _pristine_bundle(tmp_path_factory.mktemp("pristine") / "b")
    bundle = tmp_path_factory.mktemp("bundle") / "b"
    shutil.copytree(pristine, bundle)
    target = bundle / which
    target.write_bytes(data.draw(mutants(target.read_bytes())))
    assert exit_code(["replay", str(bundle), "--engine", RENAMED, "--against", "reference"]) in (0, 1, 2)
