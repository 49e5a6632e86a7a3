"""Caffe runtimes: the ways to start harness/worker.py next to a real Caffe.

A runtime only starts the worker; harness/caffe_engine.py speaks the protocol. Each runtime
is a small object in RUNTIMES, found by name:

    rootfs       a Debian bullseye root file system with python3-caffe, entered with chroot
                 (needs root; built once per machine with debootstrap, cached outside the checkout)
    docker       the same content as a Docker image (docker/Dockerfile)
    docker-bvlc  the official bvlc/caffe:cpu image: Caffe 1.0, Python 2.7 (docker/Dockerfile.bvlc)
    local        a Python on this machine that can already `import caffe`

Each has install() (idempotent), info(), argv(worker_path) and caffe_version ("master" or "1.0",
the key the reference engine's CaffeSemantics is chosen by).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from .errors import RuntimeUnavailable

HARNESS_DIR = Path(__file__).resolve().parent
REPO_DIR = HARNESS_DIR.parent
WORKER_SOURCE = HARNESS_DIR / "worker.py"
PROBE_SOURCE = HARNESS_DIR / "native" / "flags_probe.cpp"
PROBE_BUILD_SCRIPT = HARNESS_DIR / "native" / "build_probe.sh"
INSTALL_DIR = "/opt/caffe-conformance"  # where the worker and the probe live inside a runtime

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
# debootstrap's per-package log verbs, grouped into the phases a user sees.
PHASES = {
    "Retrieving": "downloading",
    "Validating": "downloading",
    "Extracting": "extracting",
    "Unpacking": "installing",
    "Configuring": "installing",
}

Progress = Callable[[str], None]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Runtime:
    """The interface; subclasses fill it in."""

    name = ""
    caffe_version = ""
    # True: the engine caps the worker's memory with RLIMIT_AS in the child (a plain process);
    # False: the runtime caps it itself (docker run --memory).
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


# ---- rootfs (chroot) -----------------------------------------------------------------------


class RootfsRuntime(Runtime):
    name = "rootfs"
    caffe_version = "master"  # bullseye's 1.0.0+git20180821.99bd997 is BVLC master 9b89154

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
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
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
        if not self.is_ready():
            stamp = self._stamp()
            why = (
                "no stamp file"
                if stamp is None
                else f"stamp format {stamp.get('format')} != {ROOTFS_FORMAT}"
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
        query = self._chroot(
            self.directory, "dpkg-query", "-W", "-f", "${Version}", "python3-caffe"
        )
        out["caffe_package"] = (
            "python3-caffe " + query.stdout.strip()
            if query.returncode == 0
            else query.stderr.strip()
        )
        python = self._chroot(
            self.directory, "python3", "-c", "import sys; print(sys.version.split()[0])"
        )
        out["python"] = python.stdout.strip()
        out["worker"] = f"chroot {self.directory} python3 {INSTALL_DIR}/worker.py"
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
            _copy_if_changed(
                Path(worker_path), self.directory / INSTALL_DIR.lstrip("/") / "worker.py"
            )
        command = ["chroot", str(self.directory), "python3", f"{INSTALL_DIR}/worker.py"]
        return command + (["--log-dir", log_dir] if log_dir else [])

    def new_log_dir(self) -> tuple[Path, str]:
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
    mounted = [
        m.split()[1]
        for m in mounts
        if len(m.split()) > 1 and (m.split()[1] + "/").startswith(prefix)
    ]
    if mounted:
        raise RuntimeUnavailable(
            f"refusing to remove {path}: file systems are mounted inside it: {mounted}"
        )
    shutil.rmtree(path)


# ---- docker --------------------------------------------------------------------------------


class DockerRuntime(Runtime):
    """An image built from docker/<dockerfile>; the worker file is bind-mounted read-only over
    the image's copy, so an edited worker needs no rebuild (the probe does)."""

    name = "docker"
    caffe_version = "master"
    dockerfile = "Dockerfile"
    image = "caffe-conformance:bullseye"
    python = "python3"
    rlimit_memory = False

    def _client(self):
        try:
            import docker  # imported late: only the Docker runtimes need it
        except ImportError as e:
            raise RuntimeUnavailable(
                f"runtime {self.name!r}: the 'docker' Python package is missing ({e})"
            ) from e
        try:
            client = docker.from_env()
            client.ping()
        except docker.errors.DockerException as e:
            raise RuntimeUnavailable(
                f"runtime {self.name!r}: no Docker engine answers ({e})"
            ) from e
        return client

    def _context(self) -> io.BytesIO:
        """The build context: the Dockerfile, the worker and the probe sources, nothing else."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            tar.add(REPO_DIR / "docker" / self.dockerfile, arcname="Dockerfile")
            tar.add(WORKER_SOURCE, arcname="worker.py")
            tar.add(PROBE_SOURCE, arcname="flags_probe.cpp")
            tar.add(PROBE_BUILD_SCRIPT, arcname="build_probe.sh")
        buffer.seek(0)
        return buffer

    def _label(self) -> str:
        parts = [REPO_DIR / "docker" / self.dockerfile, PROBE_SOURCE, PROBE_BUILD_SCRIPT]
        return hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()

    def install(self, progress: Progress = _say) -> None:
        client = self._client()
        import docker

        try:
            current = client.images.get(self.image)
            if current.labels.get("caffe-conformance.sources") == self._label():
                return
        except docker.errors.ImageNotFound:
            pass
        progress(f"{self.name}: building image {self.image} from docker/{self.dockerfile}")
        try:
            for chunk in client.api.build(
                fileobj=self._context(),
                custom_context=True,
                tag=self.image,
                rm=True,
                labels={"caffe-conformance.sources": self._label()},
                decode=True,
            ):
                if "stream" in chunk and chunk["stream"].startswith("Step "):
                    progress("  " + chunk["stream"].strip())
                if "error" in chunk:
                    raise RuntimeUnavailable(
                        f"runtime {self.name!r}: image build failed: {chunk['error']}"
                    )
        except docker.errors.APIError as e:
            raise RuntimeUnavailable(f"runtime {self.name!r}: image build failed: {e}") from e

    def info(self) -> dict:
        out = {"runtime": self.name, "caffe_version": self.caffe_version, "image": self.image}
        client = self._client()
        import docker

        try:
            image = client.images.get(self.image)
        except docker.errors.ImageNotFound:
            out["ready"] = False
            return out
        out.update(ready=True, image_id=image.id, labels=image.labels)
        command = f'{self.python} -c "import sys, caffe; print(sys.version.split()[0]); print(caffe.__version__)"'
        found = (
            client.containers.run(self.image, command, remove=True, network_disabled=True)
            .decode()
            .split()
        )
        out["python"], out["caffe"] = (found + [None, None])[:2]
        return out

    def argv(
        self,
        worker_path: str | Path = WORKER_SOURCE,
        log_dir: str | None = None,
        memory_mb: int | None = None,
    ) -> list[str]:
        if shutil.which("docker") is None:
            raise RuntimeUnavailable(
                f"runtime {self.name!r}: the docker command-line client is not installed"
            )
        self._container = f"caffe-conformance-{uuid.uuid4().hex[:12]}"
        command = [
            "docker",
            "run",
            "-i",
            "--rm",
            "--network",
            "none",
            "--name",
            self._container,
            "-v",
            f"{Path(worker_path).resolve()}:{INSTALL_DIR}/worker.py:ro",
        ]
        if memory_mb:
            command += ["--memory", f"{memory_mb}m", "--memory-swap", f"{memory_mb}m"]
        if log_dir:
            command += [
                "-v",
                f"{self._log_host}:{log_dir}",
                "-e",
                f"CAFFE_CONFORMANCE_LOG_DIR={log_dir}",
            ]
        return command + [self.image, self.python, f"{INSTALL_DIR}/worker.py"]

    def new_log_dir(self) -> tuple[Path, str]:
        host = Path(tempfile.mkdtemp(prefix="caffe-conformance-log-"))
        self._log_host = host
        return host, "/caffe-conformance-log"

    def stop(self, process: subprocess.Popen) -> None:
        # Killing the docker client leaves the container running: kill the container by name.
        name = getattr(self, "_container", None)
        if name and process.poll() is None:
            subprocess.run(["docker", "kill", name], capture_output=True, check=False)
        super().stop(process)


class BvlcDockerRuntime(DockerRuntime):
    name = "docker-bvlc"
    caffe_version = "1.0"
    dockerfile = "Dockerfile.bvlc"
    image = "caffe-conformance:bvlc-1.0"
    python = "python"  # Python 2.7 in bvlc/caffe:cpu


# ---- local ---------------------------------------------------------------------------------


class LocalRuntime(Runtime):
    """A Python here that can import caffe (CAFFE_CONFORMANCE_PYTHON, default python3). Its
    Caffe version is taken as "master" unless CAFFE_CONFORMANCE_CAFFE_VERSION says "1.0"."""

    name = "local"

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
        command = [
            self.python,
            str(Path(worker_path).resolve()),
            "--probe",
            str(self.probe_dir / "flags_probe.so"),
        ]
        return command + (["--log-dir", log_dir] if log_dir else [])


RUNTIMES: dict[str, type[Runtime]] = {
    "rootfs": RootfsRuntime,
    "docker": DockerRuntime,
    "docker-bvlc": BvlcDockerRuntime,
    "local": LocalRuntime,
}
DEFAULT_RUNTIME = "rootfs"


def get_runtime(name: str = DEFAULT_RUNTIME, rootfs_dir: str | Path | None = None) -> Runtime:
    if name not in RUNTIMES:
        raise RuntimeUnavailable(f"runtime={name!r}: unknown (known: {', '.join(RUNTIMES)})")
    if name == "rootfs":
        return RootfsRuntime(rootfs_dir)
    return RUNTIMES[name]()
