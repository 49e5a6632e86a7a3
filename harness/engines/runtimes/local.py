"""The local runtime."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ...errors import RuntimeUnavailable
from .base import (
    PROBE_BUILD_SCRIPT,
    PROBE_SOURCE,
    WORKER_SOURCE,
    Progress,
    Runtime,
    _say,
    register_runtime,
    worker_command,
)


@register_runtime("local")
class LocalRuntime(Runtime):
    """A Python here that can import caffe (CAFFE_CONFORMANCE_PYTHON, default python3). Its
    Caffe version is taken as "master" unless CAFFE_CONFORMANCE_CAFFE_VERSION says "1.0"."""

    def __init__(self):
        self.python = os.environ.get("CAFFE_CONFORMANCE_PYTHON", "python3")
        self.caffe_version = os.environ.get("CAFFE_CONFORMANCE_CAFFE_VERSION", "master")
        self.probe_dir = Path.home() / ".cache" / "caffe-conformance" / "local-probe"

    def _check(self) -> str:
        found = subprocess.run(
            [self.python, "-c", "import caffe; print(caffe.__file__)"],
            capture_output=True,
            text=True,
            check=False,
        )
        if found.returncode != 0:
            raise RuntimeUnavailable(
                f"runtime 'local': {self.python!r} cannot import caffe "
                f"(CAFFE_CONFORMANCE_PYTHON picks the Python): {found.stderr.strip()[-500:]}"
            )
        return found.stdout.strip()

    def install(self, progress: Progress = _say) -> None:
        self._check()
        if shutil.which("g++") is None or shutil.which("protoc") is None:
            progress("local: no g++/protoc here: exact flags (the probe) will be unavailable")
            return
        built = subprocess.run(
            ["sh", str(PROBE_BUILD_SCRIPT), str(PROBE_SOURCE), str(self.probe_dir), self.python],
            capture_output=True,
            text=True,
            check=False,
        )
        if built.returncode != 0:
            progress(
                f"local: the flags probe does not compile, exact flags unavailable: {built.stderr[-1000:]}"
            )

    def info(self) -> dict:
        probe = self.probe_dir / "flags_probe.so"
        return {
            "runtime": self.name,
            "caffe_version": self.caffe_version,
            "python": self.python,
            "caffe_module": self._check(),
            "flags_probe": str(probe) if probe.exists() else None,
        }

    def argv(
        self,
        worker_path: str | Path = WORKER_SOURCE,
        log_dir: str | None = None,
        memory_mb: int | None = None,
    ) -> list[str]:
        return worker_command(
            self.python,
            Path(worker_path).resolve(),
            "--probe",
            str(self.probe_dir / "flags_probe.so"),
            log_dir=log_dir,
        )
