"""Engines that run cases in another process speaking the worker protocol (docs/protocol.md).

CommandEngine is the protocol client for any command (`--engine-cmd`); CaffeEngine is the same
client, with the command given by a Caffe runtime (harness/engines/runtimes/) and harness/engines/worker.py.

One worker process serves case after case (`import caffe` costs about 0.75 s, a small case
about a millisecond). A failed CHECK in Caffe kills the process running the case: its last
"stage" frame, or the step it marked in its post-mortem file, says where; glog's fatal line
(in the stage log or the worker's stderr) says why. harness/engines/worker.py is a fork server: when
its serving child dies, a "died" frame says so, and a freshly forked child serves the next
case. Any other engine's stdout ends when it dies, and the next case starts it again. A hang
is killed at the timeout, with every process the worker started.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import re
import resource
import select
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np

from harness.case import Case, LayerRecord, Outcome, Result, dump_npz, dump_raw, load_npz, load_raw, reading
from harness.engines.runtimes import kill_process_group
from harness.errors import HarnessError

from .worker import BUILT_FILE, LOG_DIR_VARIABLE, PIPE_BYTES, PROTOCOL_VERSION, STAGE_FILE, STAGE_LOG

DEFAULT_TIMEOUT_S = 120.0
DEFAULT_START_TIMEOUT_S = 120.0
DEFAULT_MEMORY_MB = 4096  # RLIMIT_AS counts address space: OpenBLAS alone reserves a few hundred MB

# glog: "F1128 08:24:59.428161 26263 net.cpp:198] msg" (glog >= 0.5 prints a 4-digit year).
FATAL_LINE = re.compile(r"^F\d{4,8} [0-9:.]+ +\d+ [^\]]*\] (.*)$")
# Allocation failures: SyncedMemory's CaffeMallocHost (syncedmem.hpp) CHECKs the pointer;
# anything using new[] throws std::bad_alloc, which terminates the process.
OUT_OF_MEMORY_SIGNS = ("host allocation of size", "std::bad_alloc", "Cannot allocate memory")
# Where a death counts as a refusal: Caffe aborted while building the net or the solver.
BUILDING_STEPS = {"net", "solver_init"}
# A sanitizer's report (the rootfs-instrumented runtime's Caffe): AddressSanitizer's
# "==12==ERROR: AddressSanitizer: heap-buffer-overflow on address ...", UndefinedBehaviorSanitizer's
# "/usr/src/.../x.cpp:40:7: runtime error: signed integer overflow: ...", then a stack of
# "    #0 0x7f... in caffe::PoolingLayer<float>::Backward_cpu(...) /usr/src/.../pooling_layer.cpp:293".
ASAN_ERROR = re.compile(r"^==\d+==ERROR: (AddressSanitizer|LeakSanitizer): ([\w-]+)", re.MULTILINE)
UBSAN_ERROR = re.compile(r"^(/\S+?):(\d+):\d+: runtime error: ([^:\n]+)", re.MULTILINE)
SANITIZER_FRAME = re.compile(r"^\s*#\d+ 0x[0-9a-f]+ in (.+) (/\S+?):(\d+)(?::\d+)?$", re.MULTILINE)
CAFFE_SOURCE = re.compile(r".*/((?:src|include)/caffe/\S+)$")  # the last such part: /usr/src/caffe/...
# What ASan reports when an allocation fails or the resident set passes hard_rss_limit_mb: the
# memory cap, not undefined behaviour.
SANITIZER_OUT_OF_MEMORY = ("out", "allocation-size-too-big", "rss-limit-exceeded", "calloc-overflow")
# A reply's payload above this is a broken or hostile engine, not a result (a case's arrays
# are far smaller; the worker's memory cap is 4 GiB).
MAX_PAYLOAD_BYTES = 1 << 32


class _WorkerGone(Exception):
    """The worker closed its stdout or its stdin: it died."""


class _FrameReader:
    """Reads protocol frames (a JSON line, then raw_bytes or npz_bytes bytes) from a pipe, with
    a deadline.
    The payload (hundreds of MB for a batch-32 224x224 net) is read straight into one buffer."""

    def __init__(self, fd: int):
        self.fd = fd
        self.pending = bytearray()  # read past the end of the previous frame

    def ready(self) -> bool:
        """Whether a frame (or EOF) has arrived that nobody asked for yet."""
        return bool(self.pending) or bool(select.select([self.fd], [], [], 0)[0])

    def _wait(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([self.fd], [], [], remaining)[0]:
            raise TimeoutError

    def read(self, deadline: float) -> tuple[dict, np.ndarray]:
        while b"\n" not in self.pending:
            self._wait(deadline)
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                raise _WorkerGone
            self.pending += chunk
        end = self.pending.index(b"\n")
        try:
            header = json.loads(bytes(self.pending[:end]))
        except json.JSONDecodeError as e:
            raise HarnessError(f"worker reply header {bytes(self.pending[:200])!r}: not JSON ({e})") from e
        size = header.get("raw_bytes", 0) if "arrays" in header else header.get("npz_bytes", 0)
        if not isinstance(size, int) or not 0 <= size <= MAX_PAYLOAD_BYTES:
            raise HarnessError(f"worker reply header {bytes(self.pending[:200])!r}: payload size {size!r}")
        # A uint8 array, not a bytearray: bytearray(size) zero-fills (a quarter of a second for
        # 250 MB); the raw arrays are writable views into it (case.py, load_raw).
        payload = np.empty(size, np.uint8)
        view = memoryview(payload)
        have = min(size, len(self.pending) - end - 1)
        view[:have] = self.pending[end + 1 : end + 1 + have]
        del self.pending[: end + 1 + have]
        while have < size:
            self._wait(deadline)
            count = os.readv(self.fd, [view[have:]])
            if count == 0:
                raise _WorkerGone
            have += count
        return header, payload


def _widen_pipe(fd: int) -> None:
    """Linux pipes hold 64 KiB; 1 MiB (the worker's write buffer) cuts the wake-ups for a large
    result by 16."""
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        try:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:
            pass  # above /proc/sys/fs/pipe-max-size for an unprivileged user: keep the default


def fatal_message(log: str) -> str | None:
    """The text of glog's first fatal line (after "] "), or a C++ terminate message."""
    for line in log.splitlines():
        found = FATAL_LINE.match(line)
        if found:
            return found.group(1)
    for line in log.splitlines():
        if line.startswith("terminate called after throwing"):
            return line.strip()
    return None


def sanitizer_report(log: str) -> dict | None:
    """The first sanitizer report in log: its kind ("heap-buffer-overflow", "signed integer
    overflow") and its first frame in Caffe's own source (file relative to the source tree, line,
    function without its arguments), or None where there is no report."""
    asan, ubsan = ASAN_ERROR.search(log), UBSAN_ERROR.search(log)
    if "AddressSanitizer: hard rss limit exhausted" in log and asan is None:
        return {"sanitizer": "AddressSanitizer", "kind": "rss-limit-exceeded", "frame": None}
    first = min((m for m in (asan, ubsan) if m is not None), key=lambda m: m.start(), default=None)
    if first is None:
        return None
    if first is asan:
        report = {"sanitizer": asan.group(1), "kind": asan.group(2)}
    else:
        report = {"sanitizer": "UndefinedBehaviorSanitizer", "kind": ubsan.group(3).strip()}
    report["frame"] = None
    for frame in SANITIZER_FRAME.finditer(log, first.end()):
        source = CAFFE_SOURCE.search(frame.group(2))
        if source:
            function = frame.group(1).split("(")[0]
            report["frame"] = {"file": source.group(1), "line": int(frame.group(3)), "function": function}
            break
    if report["frame"] is None and first is ubsan:  # no stack: the report's own location
        source = CAFFE_SOURCE.search(ubsan.group(1))
        if source:
            report["frame"] = {"file": source.group(1), "line": int(ubsan.group(2)), "function": None}
    return report


def sanitizer_message(report: dict) -> str:
    """'heap-buffer-overflow in caffe::PoolingLayer<float>::Backward_cpu at
    src/caffe/layers/pooling_layer.cpp:293', as much of it as the report names."""
    frame = report["frame"]
    if frame is None:
        return f"{report['sanitizer']}: {report['kind']} (no frame in Caffe's source)"
    where = f"{frame['file']}:{frame['line']}"
    if frame["function"]:
        return f"{report['kind']} in {frame['function']} at {where}"
    return f"{report['kind']} at {where}"


class CommandEngine:
    """The protocol client for any worker command; one process serves many cases."""

    name = "command"

    def __init__(
        self,
        cmd: str | list[str],
        timeout_s: float = DEFAULT_TIMEOUT_S,
        memory_mb: int | None = DEFAULT_MEMORY_MB,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
    ):
        if not cmd:
            raise HarnessError(f"cmd={cmd!r}: the worker command must not be empty")
        if timeout_s <= 0:
            raise HarnessError(f"timeout_s={timeout_s}: must be positive")
        self.cmd = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.start_timeout_s = start_timeout_s
        self.process: subprocess.Popen | None = None
        self.hello: dict = {}
        self.starts = 0
        self.child_restarts = 0  # "died" frames: a fork-server worker replaced its serving child
        self._request_id = 0  # numbers the run requests: post-mortem files name theirs
        self._stderr_offset = 0  # where the current case's part of stderr.log begins
        self._array_format = "npz"
        self._log_dir: Path | None = None

    # -- how the worker starts (CaffeEngine asks its runtime instead) --

    def _new_log_dir(self) -> tuple[Path, str]:
        import tempfile

        host = Path(tempfile.mkdtemp(prefix="caffe-conformance-log-"))
        return host, str(host)

    def _argv(self, worker_log_dir: str) -> list[str]:
        return self.cmd

    def _rlimit_memory(self) -> bool:
        return True

    def _stop(self, process: subprocess.Popen) -> None:
        kill_process_group(process)

    def _killed_by_memory_cap(self, returncode: int | None) -> bool:
        """Whether a death without a fatal line was a kill at a memory cap outside the worker
        (CaffeEngine asks its runtime); an RLIMIT_AS cap fails the allocation instead."""
        return False

    def _engine_info(self) -> dict:
        return {"command": shlex.join(self.cmd)}

    def _request_fields(self) -> dict:
        """Header fields every run request carries besides the case's: none for a foreign
        command; CaffeEngine's worker needs its layer facts."""
        return {}

    # -- the worker's life --

    def _start(self) -> None:
        self._log_dir, worker_log_dir = self._new_log_dir()
        argv = self._argv(worker_log_dir)
        env = dict(os.environ, **{LOG_DIR_VARIABLE: worker_log_dir})
        limit = self.memory_mb << 20 if self.memory_mb and self._rlimit_memory() else None
        # Kept open for the worker's life, closed in _kill.
        self._stderr = open(self._log_dir / "stderr.log", "w+b")  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=env,
                # Its own process group, so that a kill reaches every process it forks.
                start_new_session=True,
            )
        except OSError as e:
            raise HarnessError(f"worker command {shlex.join(argv)!r}: cannot start ({e})") from e
        if limit:
            # Set from outside rather than in preexec_fn (unsafe with threads): chroot execs
            # python in the same process, and importing caffe takes far longer than this call.
            try:
                resource.prlimit(self.process.pid, resource.RLIMIT_AS, (limit, limit))
            except ProcessLookupError:
                pass  # it died at once: the hello below reports why, with its stderr
        _widen_pipe(self.process.stdout.fileno())
        _widen_pipe(self.process.stdin.fileno())
        self._reader = _FrameReader(self.process.stdout.fileno())
        self._array_format = "npz"  # until this process's hello offers "raw"
        try:
            self._send({"op": "hello"}, {})
            header, _ = self._reader.read(time.monotonic() + self.start_timeout_s)
        except (TimeoutError, _WorkerGone) as e:
            log = self._logs()
            self._kill()
            what = "did not answer hello" if isinstance(e, TimeoutError) else "died before answering hello"
            raise HarnessError(
                f"worker {shlex.join(argv)!r} {what} within {self.start_timeout_s} s; "
                f"its stderr ends with:\n{log[-3000:]}"
            ) from e
        if header.get("op") != "hello" or header.get("protocol") != PROTOCOL_VERSION:
            self._kill()
            raise HarnessError(
                f"worker hello {header!r}: expected op 'hello' with protocol {PROTOCOL_VERSION}"
            )
        self.hello = header
        # npz is the form every engine speaks; raw only where the worker offers it.
        self._array_format = "raw" if "raw" in header.get("array_formats", ()) else "npz"
        self.starts += 1

    def _send(self, header: dict, arrays: dict) -> None:
        if self._array_format == "raw":
            specs, chunks = dump_raw(arrays)
            header = dict(header, arrays=specs, raw_bytes=sum(spec["bytes"] for spec in specs))
        else:
            chunks = [dump_npz(arrays)] if arrays else []
            header = dict(header, npz_bytes=sum(len(chunk) for chunk in chunks))
        try:
            self.process.stdin.write(json.dumps(header).encode() + b"\n")
            for chunk in chunks:
                self.process.stdin.write(chunk)
            self.process.stdin.flush()
        except (BrokenPipeError, ConnectionResetError) as e:
            raise _WorkerGone from e

    def _logs(self, stderr_from: int = 0) -> str:
        """What the worker left behind: the last step's glog capture, then its stderr from
        byte stderr_from on (a long-lived worker's stderr holds every earlier case's too)."""
        parts = []
        for name, offset in ((STAGE_LOG, 0), ("stderr.log", stderr_from)):
            path = self._log_dir / name if self._log_dir else None
            if path is not None and path.exists():
                with open(path, "rb") as f:
                    f.seek(offset)
                    parts.append(f.read().decode("utf-8", "replace"))
        return "\n".join(parts)

    def _kill(self) -> None:
        if self.process is not None:
            self._stop(self.process)
            for stream in (self.process.stdin, self.process.stdout):
                if stream is not None:
                    stream.close()
            self.process = None
        if getattr(self, "_stderr", None) is not None:
            self._stderr.close()
            self._stderr = None
        if self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=False)
            self._log_dir = None

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.stdin.close()  # EOF: the worker's loop ends
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass  # _kill below ends it
        self._kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- one case --

    def run(self, case: Case) -> Result:
        if self.process is not None and self.process.poll() is None and self._reader.ready():
            self._between_cases()
        if self.process is None or self.process.poll() is not None:
            self._kill()
            self._start()
        self._stderr_offset = os.fstat(self._stderr.fileno()).st_size
        self._request_id += 1
        meta = case.meta()
        meta.pop("has_solver")
        header = dict(meta, op="run", net=case.net, solver=case.solver, request_id=self._request_id)
        header.update(self._request_fields())
        started = time.monotonic()
        deadline = started + self.timeout_s
        stage = built = None  # the last "stage" and "built" frames, where the engine sends them
        try:
            self._send(header, case.arrays())
            while True:
                reply, payload = self._reader.read(deadline)
                op = reply.get("op")
                if op == "stage":
                    stage = reply
                elif op == "built":
                    built = reply
                elif op == "result":
                    with reading(f"the result frame of {shlex.join(self.cmd)!r}"):
                        if "arrays" in reply:
                            arrays = load_raw(reply["arrays"], payload)
                        else:
                            arrays = load_npz(payload) if payload.size else {}
                        result = Result.from_parts(reply, arrays)
                    return self._with_info(result, started)
                elif op == "died":
                    stage, built = self._last_words(stage, built)
                    return self._with_info(self._death(stage, reply), started, built)
                elif op == "error":
                    raise HarnessError(
                        f"worker could not run the case: {reply.get('message')}\n{reply.get('traceback', '')}"
                    )
                else:
                    raise HarnessError(
                        f"worker reply op={op!r}: expected 'stage', 'built', 'result', 'died' or 'error'"
                    )
        except TimeoutError:
            stage, built = self._last_words(stage, built)
            log = self._logs(self._stderr_offset)
            self._kill()
            return self._with_info(
                Result(
                    engine=self.name,
                    outcome=Outcome.TIMEOUT,
                    stage=stage["stage"],
                    message=f"no answer within {self.timeout_s} s (step {stage['step']!r})",
                    info={"log_tail": log[-2000:]},
                ),
                started,
                built,
            )
        except _WorkerGone:
            self.process.wait()  # its last words are written once it is gone
            stage, built = self._last_words(stage, built)
            return self._with_info(self._death(stage), started, built)

    def _last_words(self, stage: dict | None, built: dict | None) -> tuple[dict, dict]:
        """Where a dead or hung engine was, and the net it had built: from its "stage" and
        "built" frames where it sent them, else from the post-mortem files harness/engines/worker.py
        writes instead (<log dir>/stage, <log dir>/built.json), if they are this request's."""
        if stage is None:
            record = self._postmortem(STAGE_FILE)
            if isinstance(record, list) and len(record) == 3 and record[0] == self._request_id:
                stage = {"stage": record[1], "step": record[2]}
        if built is None:
            record = self._postmortem(BUILT_FILE)
            if isinstance(record, dict) and record.get("request_id") == self._request_id:
                built = record
        return stage or {"stage": "init", "step": "request"}, built or {}

    def _postmortem(self, name: str):
        """A post-mortem file's JSON; None where it is missing, empty or torn."""
        if self._log_dir is None:
            return None
        try:
            return json.loads((self._log_dir / name).read_bytes())
        except (FileNotFoundError, ValueError):  # not written, or cut short by the death
            return None

    def _between_cases(self) -> None:
        """Frames that came while no case ran: only a fork server's child can die then (killed
        from outside). Read them now, so that they are not taken for the next case's answer."""
        while self._reader.ready():
            try:
                frame, _ = self._reader.read(time.monotonic() + self.timeout_s)
            except (_WorkerGone, TimeoutError):
                self._kill()  # the next run starts a fresh worker
                return
            if frame.get("op") != "died":
                self._kill()
                raise HarnessError(f"worker sent {frame!r} while no case was running")
            self.child_restarts += 1

    def _death(self, stage: dict, died: dict | None = None) -> Result:
        """The result of a case whose worker died: from a fork server's "died" frame (the
        worker lives on, with a fresh child) or from the end of its stdout (it is gone)."""
        log = self._logs(self._stderr_offset)
        message = fatal_message(log)
        if died is not None:
            self.child_restarts += 1
            returncode = -died["signal"] if died.get("signal") else died.get("status")
        else:
            returncode = self.process.wait()
        # Asked before the worker is killed: the runtime finds its container by the process.
        killed_by_memory_cap = message is None and self._killed_by_memory_cap(returncode)
        if died is None:
            self._kill()
        info = {"returncode": returncode, "step": stage["step"], "log_tail": log[-2000:]}
        if returncode is not None and returncode < 0:
            info["signal"] = signal.Signals(-returncode).name
        sanitized = sanitizer_report(log)
        if sanitized is not None:
            info["sanitizer"] = sanitized
        if sanitized is not None and sanitized["kind"] in SANITIZER_OUT_OF_MEMORY:
            outcome = Outcome.OUT_OF_MEMORY
            message = f"{sanitizer_message(sanitized)}: over the memory cap (memory_mb={self.memory_mb})"
        elif sanitized is not None:
            outcome = Outcome.CAFFE_UNDEFINED
            message = sanitizer_message(sanitized)
        elif message is not None and any(sign in message for sign in OUT_OF_MEMORY_SIGNS):
            outcome = Outcome.OUT_OF_MEMORY
        elif killed_by_memory_cap:
            outcome = Outcome.OUT_OF_MEMORY
            message = f"killed at the memory cap (memory_mb={self.memory_mb}) in step {stage['step']!r}"
        elif message is None:
            outcome = Outcome.CRASHED
            message = f"worker died without a fatal line (exit status {returncode}) in step {stage['step']!r}"
        elif stage["step"] == "probe":
            # pycaffe built this net a moment earlier, so this is our probe failing, not Caffe
            # refusing the net: never report it as Caffe's verdict.
            outcome = Outcome.CRASHED
            message = "flags probe: " + message
        elif stage["step"] in BUILDING_STEPS:
            outcome = Outcome.REFUSED
        else:
            outcome = Outcome.ABORTED
        return Result(engine=self.name, outcome=outcome, stage=stage["stage"], message=message, info=info)

    def _with_info(self, result: Result, started: float, built: dict | None = None) -> Result:
        """Add timings; a case that died after construction keeps the net Caffe built."""
        if built and not result.layers:
            result = dataclasses.replace(
                result,
                layers=tuple(LayerRecord.from_json(d) for d in built["layers"]),
                outputs=tuple(built["outputs"]),
            )
        info = dict(self._engine_info())
        info.update(result.info)
        info["round_trip_s"] = info["seconds"] = time.monotonic() - started
        info["worker"] = {k: v for k, v in self.hello.items() if k not in ("op", "npz_bytes")}
        info["array_format"] = self._array_format
        info["worker_starts"] = self.starts
        info["child_restarts"] = self.child_restarts
        return dataclasses.replace(result, engine=self.name, info=info)
