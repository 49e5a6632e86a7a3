"""harness/engines/worker.py runs inside the bvlc/caffe:cpu image (Python 2.7) as well as bullseye's
Python 3.9: it must stay valid for both and import only the standard library, numpy and pycaffe."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

WORKER = Path(__file__).resolve().parents[2] / "harness" / "engines" / "worker.py"
# pycaffe imports google.protobuf itself (caffe/proto/caffe_pb2.py), so it is part of "caffe".
ALLOWED_THIRD_PARTY = {"numpy", "caffe", "google"}


def test_worker_is_valid_python_2_7_and_3():
    found = subprocess.run(
        # vermin has no __main__ module: run its console entry point with this interpreter.
        [
            sys.executable,
            "-c",
            "import sys; from vermin.main import main; sys.exit(main())",
            "-t=2.7-",
            "-t=3-",
            "--violations",
            "--no-tips",
            str(WORKER),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.returncode == 0, (
        f"vermin: harness/engines/worker.py needs a newer Python:\n{found.stdout}{found.stderr}"
    )


def test_worker_has_no_python3_only_syntax():
    # vermin checks features; these are the ones a Python 3 habit slips in most often.
    tree = ast.parse(WORKER.read_text())
    for node in ast.walk(tree):
        assert not isinstance(node, ast.JoinedStr), f"line {node.lineno}: f-string"
        assert not isinstance(node, (ast.AnnAssign,)), f"line {node.lineno}: annotated assignment"
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            assert node.returns is None, f"line {node.lineno}: return annotation on {node.name}"
            for arg in node.args.args + node.args.kwonlyargs:
                assert arg.annotation is None, f"line {node.lineno}: annotation on {node.name}({arg.arg})"
            assert not node.args.kwonlyargs, f"line {node.lineno}: keyword-only arguments in {node.name}"


def test_worker_imports_only_stdlib_numpy_and_caffe():
    tree = ast.parse(WORKER.read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, (
                f"line {node.lineno}: relative import (the worker must not import our package)"
            )
            modules.add(node.module.split(".")[0])
    outside = {m for m in modules if m not in sys.stdlib_module_names and m not in ALLOWED_THIRD_PARTY}
    assert not outside, (
        f"harness/engines/worker.py imports {sorted(outside)}: only stdlib, numpy and caffe are allowed"
    )
    assert not modules & {"harness", "reference_engine"}
