"""The instrumented runtime: the rootfs runtime's tree, with Caffe rebuilt from Debian's source
package (the same source as python3-caffe) for the CPU, with gcov coverage and AddressSanitizer
plus UndefinedBehaviorSanitizer. docs/coverage.md says how to build and use it.

The unchanged worker imports this Caffe through a wrapper python (PYTHON_WRAPPER), which puts
its pycaffe first on the path and preloads the sanitizer runtime, which pycaffe needs in a
python that was not built with it. A sanitizer report kills the process running the case
(halt_on_error, abort_on_error): harness/engines/command.py makes it a ``caffe_undefined``
outcome. gcov's counters go under GCOV_PREFIX: a per-worker directory under coverage_dir where
one is given, else the sandbox's private /tmp; harness/campaign/coverage.py reports them.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from ...errors import RuntimeUnavailable
from .base import (
    INSTALL_DIR,
    INSTALLED_WORKER,
    PROBE_BUILD_SCRIPT,
    PROBE_SOURCE,
    WORKER_SOURCE,
    Progress,
    _say,
    _sha256,
    register_runtime,
    worker_command,
)
from .rootfs import RootfsRuntime, _copy_if_changed, _remove_tree

INSTRUMENTED_FORMAT = 1  # bump when the tree's content changes: old trees become stale
SOURCE_PACKAGE = "caffe"
SOURCE_VERSION = "1.0.0+git20180821.99bd997"  # python3-caffe's in bullseye, less its Debian revision
SOURCE_ROOT = "/usr/src/caffe"  # in the tree: the unpacked source package and the build dir
SOURCE_DIR = f"{SOURCE_ROOT}/caffe-{SOURCE_VERSION}"
BUILD_DIR = f"{SOURCE_ROOT}/build"  # the objects and their .gcno files, which gcov reads
PREFIX = "/opt/caffe-instrumented"
PYTHON_WRAPPER = f"{PREFIX}/bin/python3"
LIBASAN = "/usr/lib/x86_64-linux-gnu/libasan.so.6"  # bullseye's gcc 10
GCOV_INSIDE = "/tmp/gcov"  # where a worker's counters go inside the sandbox
BUILD_JOBS = 2
SANITIZERS = "-fsanitize=address,undefined"
# -O1: frames stay where the source has them, and the build is far faster than -O0's run.
COMPILE_FLAGS = f"-O1 -g -fno-omit-frame-pointer --coverage {SANITIZERS} -DNDEBUG"
# Leaks are Python's, by design; a report ends the case (and the process) at the first error.
ASAN_OPTIONS = "detect_leaks=0:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1"
UBSAN_OPTIONS = "print_stacktrace=1:halt_on_error=1:abort_on_error=1"

# gcov's __gcov_dump and __gcov_reset are hidden in every library that links libgcov, and each
# library's reaches the counters of all of them. This object, linked into libcaffe and
# pycaffe, exports them under names the worker looks for (worker.py, CoverageCounters).
GCOV_EXPORTS = """\
extern void __gcov_dump(void);
extern void __gcov_reset(void);
__attribute__((visibility("default"))) void caffe_gcov_dump(void) { __gcov_dump(); }
__attribute__((visibility("default"))) void caffe_gcov_reset(void) { __gcov_reset(); }
"""

# Run inside the tree, as root, with its network: the Build-Depends and the source package.
FETCH_SCRIPT = f"""\
set -eu
export DEBIAN_FRONTEND=noninteractive
echo "deb-src http://deb.debian.org/debian bullseye main" > /etc/apt/sources.list.d/caffe-source.list
apt-get update -q
apt-get build-dep -y -q {SOURCE_PACKAGE}
apt-get install -y -q --no-install-recommends dpkg-dev
mkdir -p {SOURCE_ROOT}
cd {SOURCE_ROOT}
apt-get source -q {SOURCE_PACKAGE}
# The upstream version python3-caffe is built from; a Debian revision may change, not this.
test -d {SOURCE_DIR}
"""

# Debian's own configuration (debian/rules, CONFFLAG_CPU), with the instrumentation's flags and
# a prefix of its own; the packaged Caffe stays where it is, unused.
LINK_FLAGS = f"--coverage {SANITIZERS} {BUILD_DIR}/gcov_exports.o"
CONFIGURE = [
    "cmake",
    SOURCE_DIR,
    "-DCPU_ONLY=ON",
    "-DUSE_CUDNN=OFF",
    "-DUSE_NCCL=OFF",
    "-DBLAS=Generic",
    "-DBUILD_SHARED_LIBS=ON",
    "-DBUILD_python=ON",
    "-DBUILD_python_layer=ON",
    "-Dpython_version=3",
    "-DBUILD_docs=OFF",
    "-DBUILD_matlab=OFF",
    "-DUSE_LEVELDB=ON",
    "-DUSE_LMDB=ON",
    "-DUSE_OPENCV=ON",
    "-DCMAKE_BUILD_TYPE=Release",
    f"-DCMAKE_C_FLAGS_RELEASE={COMPILE_FLAGS}",
    f"-DCMAKE_CXX_FLAGS_RELEASE={COMPILE_FLAGS}",
    f"-DCMAKE_SHARED_LINKER_FLAGS={LINK_FLAGS}",
    f"-DCMAKE_MODULE_LINKER_FLAGS={LINK_FLAGS}",
    f"-DCMAKE_EXE_LINKER_FLAGS={LINK_FLAGS}",
    f"-DCMAKE_INSTALL_PREFIX={PREFIX}",
    f"-DCMAKE_INSTALL_RPATH={PREFIX}/lib",
]
BUILD_SCRIPT = f"""\
set -eu
mkdir -p {BUILD_DIR}
cd {BUILD_DIR}
printf '%s' {shlex.quote(GCOV_EXPORTS)} > gcov_exports.c
gcc -c -fPIC -O1 gcov_exports.c -o gcov_exports.o
test -f CMakeCache.txt || {shlex.join(CONFIGURE)}
make -j{BUILD_JOBS} caffe pycaffe
make install
"""
# Caffe's own unit tests (src/caffe/test), built only when asked (benchmarks/caffe_coverage.py).
TEST_BUILD_SCRIPT = f"cd {BUILD_DIR} && make -j{BUILD_JOBS} test.testbin"
TEST_BINARY = f"{BUILD_DIR}/test/test.testbin"

# The python the worker runs: the instrumented pycaffe first on the path, libasan preloaded.
# ASAN_OPTIONS and UBSAN_OPTIONS set by the sandbox (sandbox_argv) win over these defaults.
PYTHON_WRAPPER_TEXT = f"""\
#!/bin/sh
export LD_PRELOAD={LIBASAN}
export PYTHONPATH={PREFIX}/lib/python3/dist-packages${{PYTHONPATH:+:$PYTHONPATH}}
export ASAN_OPTIONS="${{ASAN_OPTIONS:-{ASAN_OPTIONS}}}"
export UBSAN_OPTIONS="${{UBSAN_OPTIONS:-{UBSAN_OPTIONS}}}"
export GCOV_PREFIX="${{GCOV_PREFIX:-{GCOV_INSIDE}}}"
exec /usr/bin/python3 "$@"
"""
STAMP_NAME = ".caffe-conformance-stamp.json"


@register_runtime("rootfs-instrumented")
class InstrumentedRuntime(RootfsRuntime):
    """Caffe built with coverage and sanitizers, in a copy of the rootfs runtime's tree.
    coverage_dir: where each worker's gcov counters are kept (a directory per worker start);
    None keeps them in the sandbox, where they are lost with it."""

    def __init__(self, directory: str | Path | None = None, coverage_dir: str | Path | None = None):
        if directory is None:
            directory = os.environ.get("CAFFE_CONFORMANCE_INSTRUMENTED_ROOTFS") or (
                Path.home() / ".cache" / "caffe-conformance" / "rootfs-bullseye-instrumented"
            )
        super().__init__(directory)
        self.coverage_dir = Path(coverage_dir).resolve() if coverage_dir is not None else None

    def is_ready(self) -> bool:
        stamp = self._stamp()
        return stamp is not None and stamp.get("instrumented_format") == INSTRUMENTED_FORMAT

    def ensure_ready(self) -> None:
        self._require_root()
        if shutil.which("bwrap") is None:
            raise RuntimeUnavailable(
                f"runtime {self.name!r}: bubblewrap is not installed (apt-get install bubblewrap)"
            )
        if not self.is_ready():
            raise RuntimeUnavailable(
                f"runtime {self.name!r}: {self.directory} holds no instrumented Caffe; run "
                f"`caffe-conformance runtime install --runtime {self.name}`"
            )

    # -- install --

    def install(self, progress: Progress = _say) -> None:
        self._require_root()
        if self.is_ready():
            self._sync(self.directory, progress)
            return
        base = RootfsRuntime()
        base.install(progress)
        parent = self.directory.parent
        parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{self.directory.name}.building-", dir=parent))
        timings: dict[str, float] = {}
        try:
            started = time.monotonic()
            progress(f"{self.name}: copying {base.directory} into {building}")
            subprocess.run(["cp", "-a", "--reflink=auto", f"{base.directory}/.", str(building)], check=True)
            building.chmod(0o755)  # mkdtemp makes it 0700; it becomes the sandbox's "/"
            (building / STAMP_NAME).unlink()
            for leftover in (building / "tmp").glob("caffe-conformance-log-*"):
                shutil.rmtree(leftover)
            timings["copy_s"] = time.monotonic() - started
            progress(f"{self.name}: fetching the Build-Depends and Debian's source package of Caffe")
            self._build_step(building, FETCH_SCRIPT, progress, "fetch", timings, network=True)
            progress(f"{self.name}: building Caffe with coverage and sanitizers (-j{BUILD_JOBS})")
            self._build_step(building, BUILD_SCRIPT, progress, "build", timings)
            self._write_wrapper(building)
            self._sync(building, progress)
            check = self._chroot(building, PYTHON_WRAPPER, "-c", "import caffe; print(caffe.__file__)")
            if check.returncode != 0 or not check.stdout.startswith(PREFIX):
                raise RuntimeUnavailable(
                    f"runtime {self.name!r}: the instrumented `import caffe` fails in {building} "
                    f"(it gives {check.stdout.strip()!r}): {check.stderr[-2000:]}"
                )
            timings["total_s"] = time.monotonic() - started
            stamp = {
                "instrumented_format": INSTRUMENTED_FORMAT,
                "built": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "source": f"{SOURCE_PACKAGE}_{SOURCE_VERSION}",
                "compile_flags": COMPILE_FLAGS,
                "jobs": BUILD_JOBS,
                "timings": {k: round(v, 1) for k, v in timings.items()},
            }
            (building / STAMP_NAME).write_text(json.dumps(stamp, indent=2) + "\n")
            self._replace(building)
            progress(
                f"{self.name}: ready at {self.directory}; built in {timings['total_s'] / 60:.1f} min "
                f"(copy {timings['copy_s']:.0f} s, fetch {timings['fetch_s']:.0f} s, "
                f"compile {timings['build_s'] / 60:.1f} min)"
            )
        finally:
            if building.exists():
                _remove_tree(building)

    def _build_step(
        self, root: Path, script: str, progress: Progress, what: str, timings: dict, network: bool = False
    ) -> None:
        """Run script in the tree, writable, logging to <tree>/usr/src/caffe/<what>.log."""
        log = root / SOURCE_ROOT.lstrip("/") / f"{what}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        progress(f"  log: {log}")
        started = time.monotonic()
        with open(log, "w") as out:
            done = subprocess.run(
                self._writable_argv(root, network) + ["sh", "-c", script],
                check=False,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        timings[f"{what}_s"] = time.monotonic() - started
        if done.returncode != 0:
            tail = log.read_text(errors="replace").splitlines()[-30:]
            raise RuntimeUnavailable(
                f"runtime {self.name!r}: the {what} step exited with {done.returncode}; the end of "
                f"{log}:\n" + "\n".join(tail)
            )

    def _writable_argv(self, root: Path, network: bool = False) -> list[str]:
        """bubblewrap over the tree read-write, for building it (never for running a case)."""
        argv = ["bwrap", "--bind", str(root), "/", "--dev", "/dev", "--proc", "/proc", "--die-with-parent"]
        if network:
            argv += ["--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"]
        else:
            argv += ["--unshare-net"]
        return argv + ["--"]

    def _chroot(self, root: Path, *command: str, **kwargs) -> subprocess.CompletedProcess:
        # bubblewrap rather than chroot: ASan reads /proc/self/maps, which a bare chroot lacks.
        argv = self._writable_argv(root)
        argv[-1:-1] = ["--chdir", kwargs.pop("cwd", "/")]
        return subprocess.run([*argv, *command], capture_output=True, text=True, check=False, **kwargs)

    def build_tests(self, progress: Progress = _say) -> str:
        """Build Caffe's unit tests in the tree (once); returns the test binary's path inside."""
        self.ensure_ready()
        if not (self.directory / TEST_BINARY.lstrip("/")).exists():
            progress(f"{self.name}: building Caffe's unit tests (test.testbin, -j{BUILD_JOBS})")
            timings: dict[str, float] = {}
            self._build_step(self.directory, TEST_BUILD_SCRIPT, progress, "tests", timings)
            progress(f"{self.name}: unit tests built in {timings['tests_s'] / 60:.1f} min")
        return TEST_BINARY

    def _write_wrapper(self, root: Path) -> None:
        wrapper = root / PYTHON_WRAPPER.lstrip("/")
        wrapper.parent.mkdir(parents=True, exist_ok=True)
        if not wrapper.exists() or wrapper.read_text() != PYTHON_WRAPPER_TEXT:
            wrapper.write_text(PYTHON_WRAPPER_TEXT)
        wrapper.chmod(0o755)

    def _sync(self, root: Path, progress: Progress) -> None:
        """The rootfs runtime's _sync, with the flags probe built against the instrumented
        libcaffe (two libcaffes in one process would register every layer twice)."""
        self._write_wrapper(root)
        target = root / INSTALL_DIR.lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        _copy_if_changed(WORKER_SOURCE, target / "worker.py")
        source_hash = _sha256(PROBE_SOURCE) + _sha256(PROBE_BUILD_SCRIPT) + PREFIX
        hash_file = target / "flags_probe.sha256"
        if (
            (target / "flags_probe.so").exists()
            and hash_file.exists()
            and hash_file.read_text() == source_hash
        ):
            return
        progress(f"{self.name}: compiling the flags probe against the instrumented libcaffe")
        shutil.copyfile(PROBE_SOURCE, target / "flags_probe.cpp")
        shutil.copyfile(PROBE_BUILD_SCRIPT, target / "build_probe.sh")
        build = ["sh", f"{INSTALL_DIR}/build_probe.sh", f"{INSTALL_DIR}/flags_probe.cpp", INSTALL_DIR]
        env = {
            "CAFFE_CXXFLAGS": f"-I{PREFIX}/include",
            "CAFFE_LDFLAGS": f"-L{PREFIX}/lib -Wl,-rpath,{PREFIX}/lib",
        }
        built = self._chroot(root, "env", *(f"{k}={v}" for k, v in env.items()), *build, PYTHON_WRAPPER)
        loads = self._chroot(
            root,
            PYTHON_WRAPPER,
            "-c",
            f"import caffe, ctypes; print(ctypes.PyDLL('{INSTALL_DIR}/flags_probe.so').ccf_version())",
        )
        if built.returncode != 0 or loads.returncode != 0 or loads.stdout.strip() != "2":
            raise RuntimeUnavailable(
                f"runtime {self.name!r}: the flags probe does not build or load in {root}: "
                f"{built.stderr[-2000:]}{loads.stderr[-2000:]}"
            )
        hash_file.write_text(source_hash)

    # -- use --

    def info(self) -> dict:
        out = {
            "runtime": self.name,
            "caffe_version": self.caffe_version,
            "directory": str(self.directory),
            "ready": self.is_ready(),
            "stamp": self._stamp(),
            "source": SOURCE_DIR,
            "build": BUILD_DIR,
            "coverage_dir": str(self.coverage_dir) if self.coverage_dir else None,
        }
        if out["ready"]:
            out["worker"] = shlex.join(self.sandbox_argv(worker_command(PYTHON_WRAPPER, INSTALLED_WORKER)))
        return out

    def argv(
        self,
        worker_path: str | Path = WORKER_SOURCE,
        log_dir: str | None = None,
        memory_mb: int | None = None,
    ) -> list[str]:
        self.ensure_ready()
        self._sync(self.directory, _say)
        if Path(worker_path).resolve() != WORKER_SOURCE:
            _copy_if_changed(Path(worker_path), self.directory / INSTALLED_WORKER.lstrip("/"))
        command = worker_command(PYTHON_WRAPPER, INSTALLED_WORKER, log_dir=log_dir)
        return self.sandbox_argv(command, work_dir=log_dir, memory_mb=memory_mb)

    def sandbox_argv(
        self, command: list[str], work_dir: str | None = None, memory_mb: int | None = None
    ) -> list[str]:
        """The rootfs runtime's sandbox, with ASan's own memory limits in place of RLIMIT_AS
        (its shadow memory reserves terabytes of address space): an allocation over memory_mb
        fails (Caffe then says so), and the process dies once its resident set passes it.
        Where coverage_dir is set, a fresh directory under it receives this worker's counters."""
        argv = super().sandbox_argv(command, work_dir=work_dir, memory_mb=None)
        asan = ASAN_OPTIONS
        if memory_mb:
            asan += f":max_allocation_size_mb={memory_mb}:hard_rss_limit_mb={memory_mb}"
        extra = ["--setenv", "ASAN_OPTIONS", asan, "--setenv", "UBSAN_OPTIONS", UBSAN_OPTIONS]
        extra += ["--setenv", "GCOV_PREFIX", GCOV_INSIDE, "--setenv", "GCOV_PREFIX_STRIP", "0"]
        if self.coverage_dir is not None:
            counters = self.coverage_dir / f"worker-{uuid.uuid4().hex[:12]}"
            counters.mkdir(parents=True)
            extra += ["--bind", str(counters), GCOV_INSIDE]
        end = argv.index("--")
        return argv[:end] + extra + argv[end:]


__all__ = ["BUILD_DIR", "SOURCE_DIR", "InstrumentedRuntime"]
