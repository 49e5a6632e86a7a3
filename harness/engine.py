"""The engine interface, and the engines known by name.

An engine takes a Case and returns a Result. A refusal, an abort, a crash or a
hang is a Result with that outcome, never an exception; a HarnessError means
the harness itself could not do its job. An engine's ``capabilities`` say what it models
(harness/capabilities.py); an engine without them models everything.
"""

from __future__ import annotations

import importlib
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
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise HarnessError(f"engine={spec!r}: cannot import {module_name!r}: {e}") from e
    cls = getattr(module, class_name, None)
    if cls is None:
        raise HarnessError(f"engine={spec!r}: module {module_name!r} has no {class_name!r}")
    return cls
