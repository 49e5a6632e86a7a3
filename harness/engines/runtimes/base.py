"""What every Caffe runtime is: the interface, the registry, and the files a runtime installs."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from ...errors import HarnessError

ENGINES_DIR = Path(__file__).resolve().parents[1]
WORKER_SOURCE = ENGINES_DIR / "worker.py"
PROBE_SOURCE = ENGINES_DIR / "native" / "flags_probe.cpp"
PROBE_BUILD_SCRIPT = ENGINES_DIR / "native" / "build_probe.sh"
INSTALL_DIR = "/opt/caffe-conformance"  # where the worker and the probe live inside a runtime
INSTALLED_WORKER = f"{INSTALL_DIR}/worker.py"

Progress = Callable[[str], None]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


RUNTIMES: dict[str, type[Runtime]] = {}


def register_runtime(name: str):
    """Register a Runtime subclass under the name --runtime takes."""

    def decorate(cls):
        if name in RUNTIMES:
            raise HarnessError(f"runtime {name!r} is registered twice")
        cls.name = name
        RUNTIMES[name] = cls
        return cls

    return decorate


class Runtime:
    """The interface; subclasses fill it in."""

    name = ""
    caffe_version = ""
    # True: the engine caps the worker's memory with RLIMIT_AS in the child (a plain process);
    # False: the runtime caps it itself (docker run --memory, prlimit inside the rootfs sandbox).
    rlimit_memory = True

    def install(self, progress: Progress = _say) -> None:
        raise NotImplementedError

    def ensure_ready(self) -> None:
        """Raise RuntimeUnavailable, saying why and what to run, if no worker can start now."""

    def info(self) -> dict:
        raise NotImplementedError

    def argv(
        self,
        worker_path: str | Path = WORKER_SOURCE,
        log_dir: str | None = None,
        memory_mb: int | None = None,
    ) -> list[str]:
        """The command that starts the worker. log_dir is as the worker sees it (new_log_dir)."""
        raise NotImplementedError

    def new_log_dir(self) -> tuple[Path, str]:
        """A fresh directory the worker writes stage.log into: (path here, path in the runtime)."""
        host = Path(tempfile.mkdtemp(prefix="caffe-conformance-log-"))
        return host, str(host)

    def stop(self, process: subprocess.Popen) -> None:
        """Kill a worker (a hang, or a crash half-way) and every process it started."""
        kill_process_group(process)

    def killed_by_memory_cap(self, process: subprocess.Popen, returncode: int | None) -> bool:
        """Whether a worker (or its serving child) that died with returncode and no fatal line
        was killed at the runtime's own memory cap (a container's cgroup). Under RLIMIT_AS the
        allocation fails instead, and Caffe says so."""
        return False


def worker_command(python: str, worker: str | Path, *options: str, log_dir: str | None = None) -> list[str]:
    """The worker's own command line, with paths as the runtime sees them: what every runtime's
    argv runs, inside whatever it wraps around it."""
    return [python, str(worker), *options] + (["--log-dir", log_dir] if log_dir else [])


def kill_process_group(process: subprocess.Popen) -> None:
    """SIGKILL the process group of a worker started with start_new_session=True (its id is
    the worker's pid), then reap the worker. A fork-server worker's serving child is in that
    group: killing the worker alone would leave it running. While any process of the group lives,
    the kernel does not reuse its id; a group already gone is no error."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
