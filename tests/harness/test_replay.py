"""Replay treats a bundle as data: it runs the engines named on the command line, never a
command or module the bundle names, and a bundle replays from wherever it is copied."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from harness.campaign.bundle import Bundle
from harness.campaign.compare import Comparison
from harness.case import Case
from harness.cli import main

PERTURBED = "tests.harness.fake_engines:PerturbedEngine"
NET = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "loss" type: "Reduction" bottom: "x" top: "loss" loss_weight: 1 }
"""


def _bundle(directory, engines):
    case = Case(net=NET, inputs={"x": np.ones((2, 3), np.float32)})
    return Bundle(case, {}, engines, Comparison()).save(directory)


def test_a_hostile_bundle_runs_no_command_and_imports_no_module(tmp_path, capsys):
    witness = tmp_path / "witness"
    (tmp_path / "hostile_module.py").write_text(f"open({str(witness)!r}, 'w').write('imported')\n")
    sys.path.insert(0, str(tmp_path))
    try:
        for under_test in (f"cmd:sh -c 'id > {witness}'", "hostile_module:Engine"):
            bundle = _bundle(tmp_path / "bundle", {"under_test": under_test, "oracle": "reference"})
            code = main(["replay", str(bundle), "--engine", PERTURBED, "--against", "reference"])
            assert code in (0, 1)
            assert not witness.exists(), f"replaying a bundle naming {under_test!r} ran it"
            assert "hostile_module" not in sys.modules
            assert repr(under_test) in capsys.readouterr().out  # shown to the user as text
    finally:
        sys.path.remove(str(tmp_path))


def test_a_copied_bundle_replays_by_its_own_script(tmp_path):
    bundle = _bundle(tmp_path / "found" / "b", {"under_test": "reference", "oracle": "caffe"})
    elsewhere = tmp_path / "elsewhere" / "copy"
    shutil.copytree(bundle, elsewhere)
    shutil.rmtree(tmp_path / "found")
    done = subprocess.run(
        ["sh", str(elsewhere / "replay.sh"), "--engine", PERTURBED, "--against", "reference"],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={
            "PATH": f"{shutil.which('caffe-conformance').rsplit('/', 1)[0]}:/usr/bin:/bin",
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        },
    )
    assert done.returncode == 1, done.stderr  # the perturbed engine disagrees, as it should
    assert "verdict:" in done.stdout
    assert json.loads((elsewhere / "bundle.json").read_text())["engines"]["oracle"] == "caffe"
