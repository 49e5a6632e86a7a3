"""A Dask scheduler and workers as real processes on 127.0.0.1 (`dask scheduler`, `dask worker`),
for the tests and the benchmark of campaigns on a cluster (harness/campaign/cluster.py).

The scheduler takes a free port (port 0) and says which in its scheduler file; every HTTP
server (Dask's metrics) listens on 127.0.0.1 too. Each worker runs the working tree
(PYTHONPATH), one thread, no nanny, so that its pid is the process that runs slices and a
SIGKILL takes it down for good. Leaving the block stops every one.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DASK = [sys.executable, "-m", "dask"]  # `dask`, of this Python's environment whatever PATH says
START_TIMEOUT_S = 60.0


@dataclass
class DaskProcesses:
    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)
    directory: Path = Path()

    def add_worker(self, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start one more worker; env: variables set for it alone."""
        index = len(self.workers)
        worker = _start(
            [*DASK, "worker", self.address, "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny"]
            + ["--no-dashboard", "--dashboard-address", "127.0.0.1:0"]
            + ["--local-directory", str(self.directory / f"worker{index}")],
            self.directory / f"worker{index}.log",
            env,
        )
        self.workers.append(worker)
        return worker

    def wait_for_workers(self, count: int) -> None:
        from distributed import Client

        with Client(self.address, timeout="30s") as client:
            client.wait_for_workers(count, timeout=START_TIMEOUT_S)

    def logs(self) -> str:
        return "\n".join(
            f"== {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.directory.glob("*.log"))
        )


@contextlib.contextmanager
def dask_processes(directory: Path, workers: int = 0) -> Iterator[DaskProcesses]:
    """A scheduler and ``workers`` workers, up and registered when the block starts."""
    directory.mkdir(parents=True, exist_ok=True)
    scheduler_file = directory / "scheduler.json"
    scheduler = _start(
        [*DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", "127.0.0.1:0"]
        + ["--scheduler-file", str(scheduler_file)],
        directory / "scheduler.log",
    )
    cluster = DaskProcesses("", scheduler, directory=directory)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not scheduler_file.is_file() or not scheduler_file.read_text():
            if scheduler.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Dask scheduler did not start:\n{cluster.logs()}")
            time.sleep(0.1)
        cluster.address = json.loads(scheduler_file.read_text())["address"]
        for _ in range(workers):
            cluster.add_worker()
        cluster.wait_for_workers(workers)
        yield cluster
    finally:
        for process in [*cluster.workers, scheduler]:
            _stop(process)


def _start(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    with open(log, "w") as out:
        # Its own session: stopping it stops whatever it started too.
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=environment, start_new_session=True
        )


def _stop(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
