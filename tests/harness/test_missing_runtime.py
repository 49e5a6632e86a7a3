"""A command that needs real Caffe where the runtime is missing says so in one line, with
what to run, and exits 2: never a traceback, never exit 1 (which means a disagreement)."""

import numpy as np
import pytest

from harness.campaign.bundle import Bundle
from harness.campaign.compare import Comparison
from harness.case import Case
from harness.cli import main

NET = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "loss" type: "Reduction" bottom: "x" top: "loss" loss_weight: 1 }
"""


@pytest.fixture
def no_rootfs(monkeypatch, tmp_path):
    monkeypatch.setenv("CAFFE_CONFORMANCE_ROOTFS", str(tmp_path / "absent"))


@pytest.mark.parametrize("command", ["check", "explain", "replay"])
def test_a_missing_runtime_is_one_line_and_exit_2(no_rootfs, tmp_path, capsys, command):
    net = tmp_path / "net.prototxt"
    net.write_text(NET)
    if command == "replay":
        case = Case(net=NET, inputs={"x": np.ones((2, 3), np.float32)})
        argv = ["replay", str(Bundle(case, {}, {}, Comparison()).save(tmp_path / "b"))]
    else:
        argv = [command, str(net)] + (["--against", "caffe"] if command == "explain" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "runtime install" in err[0], err
