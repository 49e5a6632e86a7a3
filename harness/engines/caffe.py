"""Real Caffe: the worker (worker.py, beside this file) started through a Caffe runtime."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from harness.capabilities import EVERYTHING
from harness.case import Case, Outcome, Result

from . import sandbox
from .command import DEFAULT_MEMORY_MB, DEFAULT_START_TIMEOUT_S, DEFAULT_TIMEOUT_S, CommandEngine
from .memory import DEFAULT_MEMORY_BUDGET, budget_refusal, case_footprint
from .runtimes import WORKER_SOURCE, Runtime, get_runtime

# What the worker must know of Caffe's layer types to observe which bottom diffs a Backward
# writes (worker.py, backward_observing), and cannot see in the net: the reference engine's
# facts about them (reference_engine/layer.py), by the names of Layer's attributes.
WORKER_LAYER_FACTS = ("backward_reads_bottom_diff", "backward_repoints_bottom_diff")


@functools.cache
def worker_layer_facts() -> dict[str, tuple[str, ...]]:
    """Each fact of WORKER_LAYER_FACTS: the registered layer types whose class sets it, sorted."""
    # Here, not at the top: the layer catalogue loads torch (about a second), which importing
    # this module need not.
    import reference_engine.layers  # noqa: F401  (registers every layer type)
    from reference_engine.layer import LAYERS

    return {
        fact: tuple(sorted(name for name, cls in LAYERS.items() if getattr(cls, fact)))
        for fact in WORKER_LAYER_FACTS
    }


class CaffeEngine(CommandEngine):
    """Real Caffe: harness/engines/worker.py started through a runtime ("rootfs", "docker", ...)."""

    name = "caffe"
    capabilities = EVERYTHING

    def __init__(
        self,
        runtime: str | Runtime = "rootfs",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        memory_mb: int | None = DEFAULT_MEMORY_MB,
        rootfs_dir: str | Path | None = None,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
        memory_budget: int | None = DEFAULT_MEMORY_BUDGET,
    ):
        self.runtime = get_runtime(runtime, rootfs_dir) if isinstance(runtime, str) else runtime
        # Bytes a case's arrays may take in the harness (harness/engines/memory.py); the
        # worker's own memory is capped apart (memory_mb).
        self.memory_budget = memory_budget
        super().__init__(
            [str(WORKER_SOURCE)],
            timeout_s=timeout_s,
            memory_mb=memory_mb,
            start_timeout_s=start_timeout_s,
        )

    @property
    def caffe_version(self) -> str:
        return self.runtime.caffe_version

    def run(self, case: Case) -> Result:
        """A case that would make Caffe open files or run code, or that is over the memory
        budget, is never sent: an UNSUPPORTED result says why (not a verdict about Caffe)."""
        why = sandbox.refusal(case) or self._over_budget(case)
        if why is not None:
            return Result(self.name, Outcome.UNSUPPORTED, "init", why, info=self._engine_info())
        return super().run(case)

    def _over_budget(self, case: Case) -> str | None:
        if self.memory_budget is None:
            return None
        footprint = case_footprint(case)
        return budget_refusal(footprint, footprint.caffe_bytes(), self.memory_budget, "the Caffe engine")

    def _new_log_dir(self) -> tuple[Path, str]:
        return self.runtime.new_log_dir()

    def _argv(self, worker_log_dir: str) -> list[str]:
        return self.runtime.argv(WORKER_SOURCE, log_dir=worker_log_dir, memory_mb=self.memory_mb)

    def _rlimit_memory(self) -> bool:
        return self.runtime.rlimit_memory

    def _stop(self, process: subprocess.Popen) -> None:
        self.runtime.stop(process)

    def _killed_by_memory_cap(self, returncode: int | None) -> bool:
        return self.runtime.killed_by_memory_cap(self.process, returncode)

    def _engine_info(self) -> dict:
        return {"runtime": self.runtime.name, "caffe_version": self.runtime.caffe_version}

    def _request_fields(self) -> dict:
        return worker_layer_facts()
