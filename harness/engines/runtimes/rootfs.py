"""The rootfs runtime: a Debian bullseye tree holding python3-caffe, the worker run inside it
under bubblewrap (docs/security.md says what that sandbox guarantees)."""

from __future__ import annotations

import json
import os
import re
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
    Runtime,
    _say,
    _sha256,
    register_runtime,
    worker_command,
)

# Everything the worker and the flags probe need, named at debootstrap time so that no apt-get
# (and so no DNS inside the chroot) is needed afterwards.
BULLSEYE_PACKAGES = (
    "python3-caffe",
    "g++",
    "libcaffe-dev",
    "libboost-dev",
    "libboost-system-dev",
    "libboost-thread-dev",
    "libgoogle-glog-dev",
    "libgflags-dev",
    "libprotobuf-dev",
    "libhdf5-dev",
    "libopenblas-dev",
    "protobuf-compiler",
    # Python's and boost::python's headers: the probe reads pycaffe's own Net (ccf_flags_net).
    "libpython3-dev",
    "libboost-python-dev",
)
ROOTFS_FORMAT = 2  # bump when the root file system's content changes: old trees become stale
STAMP_NAME = ".caffe-conformance-stamp.json"
# The sandbox's private /tmp and /dev/shm are tmpfs, which hold memory: this much each, at most.
# The worker writes its files in its work dir, bound from the tree, not there.
SANDBOX_TMP_BYTES = 64 << 20
# debootstrap's per-package log verbs, grouped into the phases a user sees.
PHASES = {
    "Retrieving": "downloading",
    "Validating": "downloading",
    "Extracting": "extracting",
    "Unpacking": "installing",
    "Configuring": "installing",
}


@register_runtime("rootfs")
class RootfsRuntime(Runtime):
    caffe_version = "master"  # bullseye's 1.0.0+git20180821.99bd997 is BVLC master 9b89154
    rlimit_memory = False  # the sandbox sets RLIMIT_AS itself (sandbox_argv)

    def __init__(self, directory: str | Path | None = None):
        if directory is None:
            directory = os.environ.get("CAFFE_CONFORMANCE_ROOTFS") or (
                Path.home() / ".cache" / "caffe-conformance" / "rootfs-bullseye"
            )
        self.directory = Path(directory).expanduser().resolve()

    # -- state --

    def _stamp(self, directory: Path | None = None) -> dict | None:
        path = (directory or self.directory) / STAMP_NAME
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except json.JSONDecodeError:
            return None  # a torn stamp is a missing stamp: the tree is rebuilt

    def is_ready(self) -> bool:
        stamp = self._stamp()
        return stamp is not None and stamp.get("format") == ROOTFS_FORMAT

    def _require_root(self) -> None:
        if os.geteuid() != 0:
            raise RuntimeUnavailable(
                f"runtime 'rootfs': chroot and debootstrap need root (effective uid is {os.geteuid()}); "
                "use --runtime docker or local"
            )

    def _chroot(self, root: Path, *command: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["chroot", str(root), *command], capture_output=True, text=True, check=False, **kwargs
        )

    # -- install --

    def install(self, progress: Progress = _say) -> None:
        self._require_root()
        if self.is_ready():
            self._sync(self.directory, progress)
            return
        if shutil.which("debootstrap") is None:
            raise RuntimeUnavailable(
                "runtime 'rootfs': debootstrap is not installed (apt-get install debootstrap)"
            )
        parent = self.directory.parent
        parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{self.directory.name}.building-", dir=parent))
        building.chmod(0o755)  # mkdtemp makes it 0700; it becomes the chroot's "/"
        try:
            progress(f"rootfs: debootstrap bullseye into {building} (about 2-3 minutes)")
            self._debootstrap(building, progress)
            self._sync(building, progress)
            progress("rootfs: checking that `import caffe` works")
            check = self._chroot(building, "python3", "-c", "import caffe")
            if check.returncode != 0:
                raise RuntimeUnavailable(
                    f"runtime 'rootfs': `import caffe` fails in {building}: {check.stderr[-2000:]}"
                )
            stamp = {
                "format": ROOTFS_FORMAT,
                "built": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "packages": list(BULLSEYE_PACKAGES),
            }
            (building / STAMP_NAME).write_text(json.dumps(stamp, indent=2) + "\n")
            self._replace(building)
            progress(f"rootfs: ready at {self.directory}")
        finally:
            if building.exists():
                _remove_tree(building)

    def _debootstrap(self, target: Path, progress: Progress) -> None:
        command = [
            "debootstrap",
            "--variant=minbase",
            "--include=" + ",".join(BULLSEYE_PACKAGES),
            "bullseye",
            str(target),
        ]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        tail: list[str] = []
        phase, count = None, 0
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            tail = (tail + [line])[-30:]
            # "I: Retrieving <package> <version>" and its kin come once per package: summarize
            # them as one line per phase; print the other phase lines (resolving, installing).
            per_package = re.match(
                r"I: (Retrieving|Validating|Extracting|Unpacking|Configuring) [a-z0-9]", line
            )
            if per_package:
                verb = per_package.group(1)
                if PHASES[verb] != phase:
                    if phase is not None:
                        progress(f"  debootstrap: {phase} done ({count} packages)")
                    phase, count = PHASES[verb], 0
                    progress(f"  debootstrap: {phase} packages ...")
                count += verb in ("Retrieving", "Extracting", "Unpacking")
            elif line.startswith(("I: ", "E: ", "W: ")):
                progress("  debootstrap: " + line[3:])
        if phase is not None:
            progress(f"  debootstrap: {phase} done ({count} packages)")
        if process.wait() != 0:
            raise RuntimeUnavailable(
                f"runtime 'rootfs': debootstrap exited with {process.returncode}; its last lines:\n"
                + "\n".join(tail)
            )

    def _sync(self, root: Path, progress: Progress) -> None:
        """Copy the worker and build the flags probe inside the tree when their sources changed,
        so an edited worker or probe is picked up without rebuilding the tree."""
        target = root / INSTALL_DIR.lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        _copy_if_changed(WORKER_SOURCE, target / "worker.py")
        source_hash = _sha256(PROBE_SOURCE) + _sha256(PROBE_BUILD_SCRIPT)
        hash_file = target / "flags_probe.sha256"
        if (
            (target / "flags_probe.so").exists()
            and hash_file.exists()
            and hash_file.read_text() == source_hash
        ):
            return
        progress("rootfs: compiling the flags probe against libcaffe")
        shutil.copyfile(PROBE_SOURCE, target / "flags_probe.cpp")
        shutil.copyfile(PROBE_BUILD_SCRIPT, target / "build_probe.sh")
        inside = INSTALL_DIR
        built = self._chroot(
            root,
            "sh",
            f"{inside}/build_probe.sh",
            f"{inside}/flags_probe.cpp",
            f"{inside}",
            "python3",
            cwd="/",
        )
        if built.returncode != 0:
            raise RuntimeUnavailable(
                f"runtime 'rootfs': the flags probe does not compile in {root}: {built.stderr[-3000:]}"
            )
        loads = self._chroot(
            root,
            "python3",
            "-c",
            f"import caffe, ctypes; print(ctypes.PyDLL('{inside}/flags_probe.so').ccf_version())",
        )
        # Version 2 has ccf_flags_net, which this tree's packages always allow.
        if loads.returncode != 0 or loads.stdout.strip() != "2":
            raise RuntimeUnavailable(
                f"runtime 'rootfs': the flags probe does not load, or lacks ccf_flags_net (version "
                f"{loads.stdout.strip()!r}): {loads.stderr[-2000:]}{built.stderr[-1000:]}"
            )
        hash_file.write_text(source_hash)

    def _replace(self, building: Path) -> None:
        """Rename the finished tree into place; a stale tree is moved aside first, then removed."""
        if self.directory.exists():
            if self.is_ready():  # another process finished first: keep its tree
                return
            old = self.directory.with_name(f".{self.directory.name}.stale-{uuid.uuid4().hex[:8]}")
            os.rename(self.directory, old)
            _remove_tree(old)
        os.rename(building, self.directory)

    # -- use --

    def ensure_ready(self) -> None:
        self._require_root()
        if shutil.which("bwrap") is None:
            raise RuntimeUnavailable(
                "runtime 'rootfs': bubblewrap is not installed (apt-get install bubblewrap); "
                "the worker runs in its sandbox (docs/security.md)"
            )
        if not self.is_ready():
            stamp = self._stamp()
            why = (
                "no stamp file" if stamp is None else f"stamp format {stamp.get('format')} != {ROOTFS_FORMAT}"
            )
            raise RuntimeUnavailable(
                f"runtime 'rootfs': {self.directory} is not a usable root file system ({why}); "
                "run `caffe-conformance runtime install --runtime rootfs`"
            )

    def info(self) -> dict:
        out = {
            "runtime": self.name,
            "caffe_version": self.caffe_version,
            "directory": str(self.directory),
            "ready": self.is_ready(),
            "stamp": self._stamp(),
        }
        if not out["ready"] or os.geteuid() != 0:
            return out
        query = self._chroot(self.directory, "dpkg-query", "-W", "-f", "${Version}", "python3-caffe")
        out["caffe_package"] = (
            "python3-caffe " + query.stdout.strip() if query.returncode == 0 else query.stderr.strip()
        )
        python = self._chroot(self.directory, "python3", "-c", "import sys; print(sys.version.split()[0])")
        out["python"] = python.stdout.strip()
        out["worker"] = shlex.join(self.sandbox_argv(worker_command("python3", INSTALLED_WORKER)))
        probe = self.directory / INSTALL_DIR.lstrip("/") / "flags_probe.so"
        out["flags_probe"] = str(probe) if probe.exists() else None
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
        command = worker_command("python3", INSTALLED_WORKER, log_dir=log_dir)
        return self.sandbox_argv(command, work_dir=log_dir, memory_mb=memory_mb)

    def sandbox_argv(
        self, command: list[str], work_dir: str | None = None, memory_mb: int | None = None
    ) -> list[str]:
        """``command`` run inside the tree under bubblewrap: the tree read-only as /, a private
        /tmp and /dev/shm, a read-only /dev and a /proc of its own, no network (a network
        namespace of its own holds only loopback), its own PID, IPC and UTS namespaces, no
        capabilities, and SIGKILL when the process that started it dies. ``work_dir``, as
        new_log_dir names it inside, is bound read-write from the tree's /tmp: the one place the
        command can write that outlives it, and that the harness reads. ``memory_mb`` caps the
        command's address space (RLIMIT_AS)."""
        argv = [
            "bwrap",
            "--ro-bind",
            str(self.directory),
            "/",
            "--size",
            str(SANDBOX_TMP_BYTES),
            "--tmpfs",
            "/tmp",
            "--dev",
            "/dev",
            "--size",
            str(SANDBOX_TMP_BYTES),
            "--tmpfs",
            "/dev/shm",
            # Device nodes stay usable on a read-only /dev; nothing else can be written there.
            "--remount-ro",
            "/dev",
            "--proc",
            "/proc",
            "--unshare-net",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            # Root keeps its uid inside, but without capabilities: it cannot remount the tree
            # read-write, mount anything, or reach past its namespaces.
            "--cap-drop",
            "ALL",
            "--die-with-parent",
            # pycaffe imports matplotlib, which wants a writable config directory (else it warns
            # on stderr at every start): the private /tmp, since the tree's /root is read-only.
            "--setenv",
            "MPLCONFIGDIR",
            "/tmp/matplotlib",
        ]
        if work_dir is not None:
            argv += ["--bind", str(self.directory / work_dir.lstrip("/")), work_dir]
        argv.append("--")
        if memory_mb:
            # Set inside, before the command starts: bwrap forks the sandbox's processes at once,
            # so a limit set on bwrap from outside (the engine's prlimit) could come too late.
            argv += ["prlimit", f"--as={memory_mb << 20}", "--"]
        return argv + command

    def new_log_dir(self) -> tuple[Path, str]:
        # In the tree's /tmp, which the sandbox covers with its own tmpfs: each worker sees its
        # own directory there (sandbox_argv binds it) and no other worker's.
        tmp = self.directory / "tmp"
        host = Path(tempfile.mkdtemp(prefix="caffe-conformance-log-", dir=tmp))
        return host, "/" + str(host.relative_to(self.directory))


def _copy_if_changed(source: Path, target: Path) -> None:
    data = source.read_bytes()
    if target.exists() and target.read_bytes() == data:
        return
    partial = target.with_name(target.name + f".{os.getpid()}.tmp")
    partial.write_bytes(data)
    os.replace(partial, target)  # atomic: a worker starting now sees the old or the new file


def _remove_tree(path: Path) -> None:
    # Never recurse into a mounted file system (/proc, a bind mount) inside a chroot tree.
    mounts = Path("/proc/mounts").read_text().split("\n") if Path("/proc/mounts").exists() else []
    prefix = str(path.resolve()) + "/"
    mounted = [m.split()[1] for m in mounts if len(m.split()) > 1 and (m.split()[1] + "/").startswith(prefix)]
    if mounted:
        raise RuntimeUnavailable(f"refusing to remove {path}: file systems are mounted inside it: {mounted}")
    shutil.rmtree(path)
