"""harness/engines/worker.py imported by the harness, for the constants both sides of the
protocol share: it must load no caffe and change nothing (only the worker's main sets its
process up), and the client (harness/engines/command.py) must take those constants from it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ENGINES = Path(__file__).resolve().parents[2] / "harness" / "engines"

# Imports the worker as the harness does, and says what the import changed.
IMPORT_WORKER = """
import json, os, sys
environ = dict(os.environ)
fds = sorted(os.listdir("/proc/self/fd"))
import harness.engines.worker
print(json.dumps({
    "caffe_modules": sorted(m for m in sys.modules if m.split(".")[0] == "caffe"),
    "environ_changed": dict(os.environ) != environ,
    "fds_changed": sorted(os.listdir("/proc/self/fd")) != fds,
}))
"""


def test_importing_the_worker_loads_no_caffe_and_changes_nothing():
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_WORKER],
        cwd=ENGINES.parents[1],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == {
        "caffe_modules": [],
        "environ_changed": False,
        "fds_changed": False,
    }


def module_constants(path: Path) -> set[str]:
    """The names a module assigns at its top level."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def test_the_client_defines_none_of_the_workers_constants_itself():
    from harness.engines import command, worker

    shared = module_constants(ENGINES / "worker.py") & module_constants(ENGINES / "command.py")
    assert not shared, f"command.py defines {sorted(shared)} again: import them from worker.py"
    assert command.PROTOCOL_VERSION == worker.PROTOCOL_VERSION
