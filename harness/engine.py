"""The engine interface, and the engines known by name.

An engine takes a Case and returns a Result. A refusal, an abort, a crash or a
hang is a Result with that outcome, never an exception; a HarnessError means
the harness itself could not do its job. An engine's ``capabilities`` say what it models
(harness/capabilities.py); an engine without them models everything.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Protocol

from harness.capabilities import Capabilities
from harness.case import Case, Result
from harness.errors import HarnessError


class Engine(Protocol):
    name: str
    capabilities: Capabilities  # optional: capabilities_of reads EVERYTHING where it is missing

    def run(self, case: Case) -> Result: ...

    def close(self) -> None: ...


# Imported on first use, so that choosing the Caffe engine never imports torch.
ENGINES = {
    "reference": "harness.engines.reference:ReferenceEngine",
    "caffe": "harness.engines.caffe:CaffeEngine",
    "command": "harness.engines.command:CommandEngine",
    "opencv": "harness.engines.opencv:OpenCVEngine",
}


def load_engine_class(spec: str):
    """An engine class from a registered name or from "package.module:Class"."""
    target = ENGINES.get(spec, spec)
    if ":" not in target:
        raise HarnessError(
            f"engine={spec!r}: not a known engine ({', '.join(sorted(ENGINES))}) nor 'package.module:Class'"
        )
    module_name, class_name = target.split(":", 1)
    try:
        module = _import_as_python_m_would(module_name)
    except ImportError as e:
        raise HarnessError(
            f"engine={spec!r}: cannot import {module_name!r}: {e} (put the directory that holds "
            f"{module_name.split('.')[0]!r} on PYTHONPATH, or run from it)"
        ) from e
    cls = getattr(module, class_name, None)
    if cls is None:
        raise HarnessError(f"engine={spec!r}: module {module_name!r} has no {class_name!r}")
    return cls


def _import_as_python_m_would(module_name: str):
    """Import a module, finding it in the working directory too, as ``python -m harness``
    would: the ``caffe-conformance`` script does not put the working directory on sys.path,
    and an engine module beside the user is the common case."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        here = os.getcwd()
        if e.name != module_name.split(".")[0] or here in sys.path:
            raise
        sys.path.append(here)
        return importlib.import_module(module_name)


def engine_source(spec: str | None) -> dict:
    """What an engine spec stood for in this process, for a bundle to record: a
    "package.module:Class" engine's module file and the directory its import started from (what
    PYTHONPATH needs to find it again), a registered name or a command as it is."""
    source = {"spec": spec, "python": sys.version.split()[0]}
    target = ENGINES.get(spec, spec) if spec else ""
    if target.startswith("cmd:") or ":" not in target:
        return source
    module_name = target.split(":", 1)[0]
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if path is None:
        return source
    path = Path(path).resolve()
    depth = module_name.count(".") + (1 if path.name == "__init__.py" else 0)
    return {**source, "module_file": str(path), "import_root": str(path.parents[depth])}
