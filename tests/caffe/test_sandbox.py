"""The sandbox real Caffe runs in (runtimes/rootfs.py, docs/security.md): the worker cannot reach
the network, write into the shared root file system, see the machine's processes or outlive the
process that started it; and a case that would make Caffe touch files or run code is never sent
(harness/engines/sandbox.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.case import Case, Outcome
from harness.engines.caffe import CaffeEngine
from harness.engines.command import DEFAULT_MEMORY_MB
from harness.engines.runtimes.base import INSTALL_DIR
from harness.errors import RuntimeUnavailable
from tests.caffe.test_caffe_engine import tiny_case
from tests.processes import processes_in_session


def run_in_sandbox(runtime, script: str, *args: str, work_dir: str | None = None):
    """Run a Python script in the sandbox the worker runs in; returns the JSON it prints."""
    argv = runtime.sandbox_argv(["python3", "-c", script, *args], work_dir=work_dir)
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def worker_processes(engine) -> list[int]:
    session = processes_in_session(engine.process.pid)
    # bwrap's own command lines name the worker too: the worker's starts with python3.
    return [pid for pid in session if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"python3\0")]


def root_mount_options(pid: int) -> list[str]:
    """The options of the file system a process sees as "/" (the last mount there hides the others)."""
    mounts = [line.split() for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()]
    return [fields[5] for fields in mounts if fields[4] == "/"][-1].split(",")


def test_the_worker_runs_in_its_own_namespaces_on_a_read_only_root(caffe_runtime):
    """The fork server and its serving child, as CaffeEngine starts them: namespaces of their
    own, "/" mounted read-only, no capabilities, and the address-space cap."""
    with CaffeEngine(caffe_runtime) as engine:
        assert engine.run(tiny_case()).outcome == Outcome.OK
        workers = worker_processes(engine)
        assert len(workers) == 2, workers
        for pid in workers:
            for namespace in ("net", "pid", "mnt", "ipc", "uts"):
                theirs, ours = (
                    os.readlink(f"/proc/{pid}/ns/{namespace}"),
                    os.readlink(f"/proc/self/ns/{namespace}"),
                )
                assert theirs != ours, f"worker {pid} shares the {namespace} namespace"
            assert "ro" in root_mount_options(pid)
            status = dict(
                line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            )
            assert int(status["CapEff"], 16) == 0
            limits = Path(f"/proc/{pid}/limits").read_text()
            cap = str(DEFAULT_MEMORY_MB << 20)
            assert any(line.startswith("Max address space") and cap in line for line in limits.splitlines())


CONNECT = """
import errno, json, socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5).close()
    outcome = "connected"
except OSError as e:
    outcome = errno.errorcode.get(e.errno, str(e))
print(json.dumps({"outcome": outcome, "interfaces": [name for _, name in socket.if_nameindex()]}))
"""


def test_the_sandbox_cannot_open_a_tcp_connection(caffe_runtime):
    """A server listens on this machine's loopback; from the sandbox, whose network namespace
    holds only its own loopback, nothing answers there."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        found = run_in_sandbox(caffe_runtime, CONNECT, str(server.getsockname()[1]))
    assert found["outcome"] in ("ECONNREFUSED", "ENETUNREACH"), found
    assert found["interfaces"] == ["lo"]


WRITE = """
import errno, json, sys
outcomes = {}
for path in sys.argv[1:]:
    try:
        with open(path, "w") as f:
            f.write("planted")
        outcomes[path] = "written"
    except OSError as e:
        outcomes[path] = errno.errorcode[e.errno]
print(json.dumps(outcomes))
"""


def test_the_sandbox_writes_only_its_work_dir_and_a_private_tmp(caffe_runtime):
    tree = caffe_runtime.directory
    host, inside = caffe_runtime.new_log_dir()
    shared = [
        f"{INSTALL_DIR}/planted",
        "/etc/planted",
        "/usr/lib/python3/dist-packages/planted.py",
        "/dev/planted",
    ]
    private = "/tmp/planted"
    try:
        found = run_in_sandbox(caffe_runtime, WRITE, *shared, private, f"{inside}/planted", work_dir=inside)
        assert found == {
            **{path: "EROFS" for path in shared},
            private: "written",
            f"{inside}/planted": "written",
        }
        assert (host / "planted").read_text() == "planted"
        assert not (tree / private.lstrip("/")).exists()  # the sandbox's /tmp is not the tree's
    finally:
        for path in [*shared, private]:
            (tree / path.lstrip("/")).unlink(missing_ok=True)
        (host / "planted").unlink(missing_ok=True)
        host.rmdir()


PROCESSES = """
import json, os
print(json.dumps({"pid": os.getpid(), "visible": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())}))
"""


def test_the_sandbox_sees_only_its_own_processes(caffe_runtime):
    found = run_in_sandbox(caffe_runtime, PROCESSES)
    # bwrap's reaper is the namespace's pid 1; the script is the only other process.
    assert found["visible"] == sorted({1, found["pid"]}), found


# Starts a command as CaffeEngine starts the worker (its own session), prints its pid, waits.
PARENT = """
import json, subprocess, sys
child = subprocess.Popen(json.loads(sys.argv[1]), start_new_session=True)
print(child.pid, flush=True)
child.wait()
"""


def test_the_sandbox_dies_with_the_process_that_started_it(caffe_runtime):
    """The command ignores its stdin (a worker busy in a case does too), lives in a session of
    its own, and its parent is SIGKILLed: the whole sandbox goes with it."""
    argv = caffe_runtime.sandbox_argv(["sleep", "600"])
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, json.dumps(argv)], stdout=subprocess.PIPE, text=True
    )
    sandbox = int(parent.stdout.readline())
    try:
        deadline = time.monotonic() + 30
        while len(processes_in_session(sandbox)) < 3:  # bwrap, its reaper, sleep
            assert time.monotonic() < deadline, "the sandbox did not start"
            time.sleep(0.01)
        parent.kill()
        parent.wait()
        assert processes_in_session(sandbox, settle_s=10.0) == []
    finally:
        parent.stdout.close()
        if processes_in_session(sandbox):
            os.killpg(sandbox, signal.SIGKILL)


INPUTS = """
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
"""
SNAPSHOTTING_SOLVER = (
    'type: "SGD" base_lr: 0.1 lr_policy: "fixed" snapshot: 1 snapshot_prefix: "/opt/caffe-conformance/snap"'
)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (
            Case(
                net=INPUTS + 'layer { name: "out" type: "HDF5Output" bottom: "data" bottom: "label"\n'
                '  hdf5_output_param { file_name: "/opt/caffe-conformance/planted.h5" } }'
            ),
            "layer 'out' (HDF5Output) writes the HDF5 file its hdf5_output_param names",
        ),
        (
            Case(
                net=INPUTS + 'layer { name: "py" type: "Python" bottom: "data" top: "py"\n'
                '  python_param { module: "os" layer: "system" } }'
            ),
            "layer 'py' (Python) imports and runs the Python module its python_param names",
        ),
        (
            Case(net=tiny_case().net, solver=SNAPSHOTTING_SOLVER, iterations=1),
            "solver snapshot_prefix: '/opt/caffe-conformance/snap' names the files snapshots are written to",
        ),
    ],
    ids=["hdf5_output", "python", "snapshot_prefix"],
)
def test_a_case_that_touches_files_or_runs_code_is_never_sent(caffe_runtime, case, message):
    """Refused before the worker starts, as UNSUPPORTED (no verdict about Caffe), with why."""
    with CaffeEngine(caffe_runtime) as engine:
        result = engine.run(case)
        assert result.outcome == Outcome.UNSUPPORTED
        assert result.message.startswith(message), result.message
        assert result.message.endswith("(docs/security.md)")
        assert engine.process is None  # nothing was started, nothing sent
        assert engine.run(tiny_case()).outcome == Outcome.OK


def test_without_bubblewrap_the_runtime_names_the_package(caffe_runtime, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH that holds no bwrap
    with pytest.raises(
        RuntimeUnavailable, match=r"bubblewrap is not installed \(apt-get install bubblewrap\)"
    ):
        caffe_runtime.ensure_ready()
