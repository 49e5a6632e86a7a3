"""Hand-made bad input for every command: each ends with exit 2 and a line naming the
problem, never a traceback and never a hang."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from harness.cli import main
from tests.harness.test_bad_input import RENAMED, exit_code

INPUT = 'layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ {dims} }} }} }}\n'
LOSS = 'layer { name: "loss" type: "Reduction" bottom: "data" top: "loss" loss_weight: 1 }\n'
BAD_NETS = {
    "negative_dim": INPUT.format(dims="dim: 2 dim: -3") + LOSS,
    "overflowing_dim": INPUT.format(dims="dim: 99999999999 dim: 99999999999") + LOSS,
    "convolution_of_zero_channels": INPUT.format(dims="dim: 1 dim: 0 dim: 4 dim: 4")
    + 'layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: 2 '
    "kernel_size: 3 } }\n",
}


@pytest.mark.parametrize("name", sorted(BAD_NETS))
@pytest.mark.parametrize("command", ["explain", "check"])
def test_a_net_with_bad_shapes_ends_with_an_exit_code(tmp_path, capsys, name, command):
    # explain needs no shapes (0); check runs both engines, which refuse alike (0) or not (1).
    path = tmp_path / "net.prototxt"
    path.write_text(BAD_NETS[name])
    argv = [command, str(path)] + (
        ["--engine", RENAMED, "--against", "reference"] if command == "check" else []
    )
    assert exit_code(argv) in (0, 1, 2)


def test_a_fifo_as_the_prototxt_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "net.prototxt"
    os.mkfifo(fifo)
    assert exit_code(["explain", str(fifo)]) == 2


@pytest.mark.parametrize("duration", ["nan", "inf", "-5m", "0s"])
def test_a_duration_that_never_ends_or_never_starts_is_refused(duration):
    assert exit_code(["fuzz", "--against", "reference", "--engine", RENAMED, "--time", duration]) == 2


def test_jobs_beyond_reason_are_refused():
    assert exit_code(["fuzz", "--against", "reference", "--engine", RENAMED, "--jobs", "100000"]) == 2


def test_an_unwritable_picture_path_is_refused(tmp_path):
    net = tmp_path / "net.prototxt"
    net.write_text(INPUT.format(dims="dim: 2 dim: 3") + LOSS)
    assert exit_code(["explain", str(net), "--svg", str(tmp_path / "no" / "such" / "dir" / "n.svg")]) == 2


def test_an_unwritable_bundle_path_is_refused(tmp_path):
    net = tmp_path / "net.prototxt"
    net.write_text(INPUT.format(dims="dim: 2 dim: 3") + LOSS)
    blocker = tmp_path / "file"
    blocker.write_text("")
    argv = ["check", str(net), "--engine", RENAMED, "--against", "reference", "--bundle", str(blocker / "b")]
    assert exit_code(argv) == 2


def _garbage_engine(tmp_path: Path, body: str) -> str:
    """A command speaking just enough of the protocol (docs/protocol.md) to be wrong in one way."""
    script = tmp_path / "engine.py"
    script.write_text(
        "import json, sys, time\n"
        "def frame(header, payload=b''):\n"
        "    sys.stdout.buffer.write(json.dumps(header).encode() + b'\\n' + payload)\n"
        "    sys.stdout.flush()\n"
        "HELLO = {'op': 'hello', 'protocol': 1, 'engine': 'g'}\n" + body + "\n"
    )
    return f"{sys.executable} {script}"


@pytest.mark.parametrize(
    "reply",
    [
        "frame({'op': 'hello', 'protocol': 1})\nsys.stdin.buffer.readline()\nframe({'op': 'result'})",
        (
            "frame(HELLO)\nsys.stdin.buffer.readline()\n"
            "frame({'op': 'result', 'engine': 'g', 'outcome': 'splendid', 'layers': []})"
        ),
        (
            "frame(HELLO)\nsys.stdin.buffer.readline()\n"
            "frame({'op': 'result', 'engine': 'g', 'outcome': 'ok', 'layers': [], 'raw_bytes': 8, "
            "'arrays': [{'name': 'data/x', 'dtype': '<f4', 'shape': [10**7, 10**7], 'bytes': 4 * 10**14}]}, b'x' * 8)"
        ),
        "frame(HELLO)\ntime.sleep(60)",
    ],
    ids=["no_engine_field", "unknown_outcome", "forged_array_size", "hangs"],
)
def test_garbage_from_an_engine_command_is_an_error_not_a_traceback(tmp_path, reply):
    net = tmp_path / "net.prototxt"
    net.write_text(INPUT.format(dims="dim: 2 dim: 3") + LOSS)
    command = _garbage_engine(tmp_path, reply)
    argv = ["check", str(net), "--engine-cmd", command, "--against", "reference", "--timeout", "3"]
    assert exit_code(argv) in (1, 2)


@pytest.mark.parametrize("timeout", ["0", "-1", "nan"])
def test_a_timeout_that_could_never_be_met_is_refused(timeout):
    assert exit_code(["fuzz", "--against", "reference", "--engine", RENAMED, "--timeout", timeout]) == 2


def test_a_report_dir_that_cannot_be_written_is_found_before_the_first_case(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    argv = [
        "fuzz",
        "--against",
        "reference",
        "--engine",
        RENAMED,
        "--examples",
        "5",
        "--report",
        str(blocker),
    ]
    assert main(argv) == 2
    assert "cannot write there" in capsys.readouterr().err


def test_a_campaign_whose_engine_cannot_load_is_red(tmp_path):
    argv = [
        "fuzz",
        "--against",
        "reference",
        "--engine",
        "tests.harness.test_hand_made_bad_input:Unloadable",
        "--examples",
        "5",
        "--report",
        str(tmp_path / "r"),
    ]
    assert exit_code(argv) == 2
    assert (
        not (tmp_path / "r" / "junit.xml").exists()
        or "testcase" not in (tmp_path / "r" / "junit.xml").read_text()
    )


class Unloadable:
    """An engine whose constructor fails, as an engine with a missing library would."""

    name = "unloadable"

    def __init__(self):
        raise RuntimeError("libfoo.so: cannot open shared object file")
