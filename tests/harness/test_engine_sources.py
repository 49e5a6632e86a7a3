"""An engine of the user's own, "module:Class" beside them: found from the working directory by
the installed command as by ``python -m harness``, recorded in its bundles (its file and the
directory PYTHONPATH needs), and that record shown, never used, on replay. The reference engine
under another name: these tests claim nothing about Caffe."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from harness.campaign.bundle import Bundle
from harness.campaign.fuzz import run_pair
from harness.case import Case
from harness.engine import load_engine_class
from harness.engines.reference import ReferenceEngine
from harness.errors import HarnessError

ENGINE_MODULE = """
import dataclasses

from harness.engines.reference import ReferenceEngine


class Engine:
    name = "mine"

    def __init__(self):
        self.inner = ReferenceEngine()

    def run(self, case):
        return dataclasses.replace(self.inner.run(case), engine=self.name)

    def close(self):
        pass
"""
NET = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "loss" type: "Reduction" bottom: "x" top: "loss" loss_weight: 1 }
"""


@pytest.fixture
def beside_the_user(tmp_path, monkeypatch):
    """A directory holding the user's engine module, as the working directory, with sys.path
    and sys.modules as they were once the test ends."""
    (tmp_path / "my_engine_pkg").mkdir()
    (tmp_path / "my_engine_pkg" / "__init__.py").write_text("")
    (tmp_path / "my_engine_pkg" / "engine.py").write_text(ENGINE_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    for name in [n for n in sys.modules if n.startswith("my_engine_pkg")]:
        del sys.modules[name]


def test_an_engine_beside_the_user_is_found_and_its_bundle_says_from_where(beside_the_user):
    engine = load_engine_class("my_engine_pkg.engine:Engine")()
    case = Case(NET, inputs={"x": np.ones((2, 3), np.float32)})
    comparison, results = run_pair(case, engine, ReferenceEngine())
    engines = {"under_test": "my_engine_pkg.engine:Engine", "oracle": "reference"}
    Bundle(case, results, engines, comparison).save(beside_the_user / "bundle")
    sources = json.loads((beside_the_user / "bundle" / "bundle.json").read_text())["engine_sources"]
    assert sources["under_test"]["module_file"] == str(beside_the_user / "my_engine_pkg" / "engine.py")
    assert sources["under_test"]["import_root"] == str(beside_the_user)
    assert sources["oracle"]["module_file"].endswith("harness/engines/reference.py")  # which install

    # The installed command, from the user's directory with no PYTHONPATH: the engine is found,
    # and what the bundle recorded is shown.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    command = [
        shutil.which("caffe-conformance"),
        "replay",
        "bundle",
        "--engine",
        "my_engine_pkg.engine:Engine",
    ]
    done = subprocess.run(
        [*command, "--against", "reference"],
        check=False,
        cwd=beside_the_user,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"PYTHONPATH={beside_the_user}" in done.stdout


def test_an_engine_found_nowhere_says_what_pythonpath_needs(beside_the_user):
    with pytest.raises(HarnessError, match="put the directory that holds 'no_such_pkg' on PYTHONPATH"):
        load_engine_class("no_such_pkg.engine:Engine")
