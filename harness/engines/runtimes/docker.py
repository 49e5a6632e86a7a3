"""The docker runtimes: the worker in a container, driven by the docker command-line client.

Everything goes through the docker CLI (build, import, inspect, run, rm, events), never the
Docker SDK: the worker must be a process whose stdin and stdout are the protocol's pipes
(harness/engines/command.py), which `docker run --interactive` is, whereas the SDK's attach
socket interleaves stdout with stderr in frames and would need a relay in between.

An image is built from dockerfiles/ where its base image can be pulled; the docker runtime
otherwise imports the rootfs runtime's tree, which holds the same Caffe. Either way the image is
labelled with the sources it was made from: install remakes a stale image, and a run refuses one.
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
import tarfile
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ...errors import HarnessError, RuntimeUnavailable
from .base import (
    INSTALL_DIR,
    INSTALLED_WORKER,
    PROBE_BUILD_SCRIPT,
    PROBE_SOURCE,
    WORKER_SOURCE,
    Progress,
    Runtime,
    _say,
    register_runtime,
    worker_command,
)
from .rootfs import RootfsRuntime

DOCKERFILES_DIR = Path(__file__).resolve().parent / "dockerfiles"
SOURCES_LABEL = "caffe-conformance.sources"
# On every worker container, so that one left behind can be found: docker ps --filter label=...
WORKER_LABEL = "caffe-conformance.worker"
# What the Dockerfile's last lines configure, for an image made by `docker import` instead.
IMPORTED_IMAGE_CONFIG = (
    "ENV GLOG_minloglevel=0 GLOG_logtostderr=1 MPLCONFIGDIR=/tmp/matplotlib",
    f"WORKDIR {INSTALL_DIR}",
    f'CMD ["python3", "{INSTALLED_WORKER}"]',
)
# Left out of an imported tree: the mount points Docker fills itself, and the rootfs runtime's
# scratch space (its engines' log directories).
ROOTFS_EXCLUDES = ("./proc", "./sys", "./dev", "./tmp/*")
# How long Docker may take to report the "oom" event of a worker killed at its memory cap; it
# came within 20 ms of the worker's death here.
OOM_EVENT_WAIT_S = 1.0
# How long Docker may take to remove a killed worker's container (well under a second here).
CONTAINER_REMOVAL_WAIT_S = 10.0
# The build's step lines: the classic builder's "Step 2/6 : RUN ..." and BuildKit's "#5 [2/4] RUN ...".
BUILD_STEP = re.compile(r"^(Step \d+/\d+ :|#\d+ \[)")


@dataclass(frozen=True)
class Image:
    id: str
    sources: str  # the SOURCES_LABEL it carries; "" where it carries none


def _docker(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False, **kwargs)


def container_name(argv: list[str]) -> str:
    """The name a worker's container was started under, from the `docker run` command line."""
    return argv[argv.index("--name") + 1]


@register_runtime("docker")
class DockerRuntime(Runtime):
    """The worker in a container of the image, with no network, a memory cap, and the worker
    file bind-mounted read-only over the image's copy (an edited worker needs no new image; an
    edited flags probe does)."""

    caffe_version = "master"
    dockerfile = DOCKERFILES_DIR / "Dockerfile"
    image = "caffe-conformance:bullseye"
    python = "python3"
    rlimit_memory = False
    # The rootfs runtime's tree holds the same Caffe (bullseye's python3-caffe), so it can be
    # imported as this image where the Dockerfile's base image cannot be pulled.
    imports_rootfs = True

    def __init__(self, rootfs_dir: str | Path | None = None, from_rootfs: bool = False):
        if from_rootfs and not self.imports_rootfs:
            raise HarnessError(
                f"runtime {self.name!r}: from_rootfs: the rootfs runtime holds Caffe master, "
                f"not this runtime's Caffe {self.caffe_version}"
            )
        self.rootfs = RootfsRuntime(rootfs_dir)
        self.from_rootfs = from_rootfs
        self._memory_checked_until: dict[str, str] = {}  # container name: docker events timestamp

    # -- state --

    def server_version(self) -> str:
        """The Docker engine's version; RuntimeUnavailable, saying what to install or start,
        where no engine answers."""
        if shutil.which("docker") is None:
            raise RuntimeUnavailable(
                f"runtime {self.name!r}: the docker command-line client is not installed "
                "(Debian: apt-get install docker.io)"
            )
        answer = _docker("version", "--format", "{{.Server.Version}}")
        if answer.returncode != 0:
            raise RuntimeUnavailable(
                f"runtime {self.name!r}: no Docker engine answers ({answer.stderr.strip()}); "
                "start one (dockerd, or systemctl start docker)"
            )
        return answer.stdout.strip()

    def _image(self, name: str | None = None) -> Image | None:
        found = _docker("image", "inspect", "--format", "{{.Id}} {{json .Config.Labels}}", name or self.image)
        if found.returncode != 0:
            return None
        image_id, labels = found.stdout.strip().split(" ", 1)
        return Image(image_id, (json.loads(labels) or {}).get(SOURCES_LABEL, ""))

    def _dockerfile_sources(self) -> str:
        """The label of an image built from the Dockerfile: it holds the Dockerfile and the flags
        probe's sources (the worker is mounted at each run instead)."""
        digest = hashlib.sha256()
        for path in (self.dockerfile, PROBE_SOURCE, PROBE_BUILD_SCRIPT):
            digest.update(path.read_bytes())
        return f"{self.dockerfile.name}:{digest.hexdigest()}"

    def _rootfs_sources(self) -> str | None:
        """The label of an image imported from the rootfs runtime's tree: that tree (its stamp)
        with the flags probe its install compiles from these sources, configured as
        IMPORTED_IMAGE_CONFIG says. None without a tree."""
        if not self.imports_rootfs or not self.rootfs.is_ready():
            return None
        digest = hashlib.sha256(
            json.dumps([self.rootfs._stamp(), IMPORTED_IMAGE_CONFIG], sort_keys=True).encode()
        )
        for path in (PROBE_SOURCE, PROBE_BUILD_SCRIPT):
            digest.update(path.read_bytes())
        return f"rootfs:{digest.hexdigest()}"

    def _fresh_sources(self) -> set[str]:
        """The labels an image made from this package's sources may carry."""
        return {self._dockerfile_sources(), self._rootfs_sources()} - {None}

    def ensure_ready(self) -> None:
        self.server_version()
        image = self._image()
        if image is None:
            why = "no such image"
        elif image.sources not in self._fresh_sources():
            why = f"stale: made from {image.sources or 'unlabelled sources'}, not from these"
        else:
            return
        raise RuntimeUnavailable(
            f"runtime {self.name!r}: image {self.image}: {why}; "
            f"run `caffe-conformance runtime install --runtime {self.name}`"
        )

    # -- install --

    def install(self, progress: Progress = _say) -> None:
        self.server_version()
        previous = self._image()
        wanted = {self._rootfs_sources()} - {None} if self.from_rootfs else self._fresh_sources()
        if previous is not None and previous.sources in wanted:
            progress(f"{self.name}: image {self.image} is up to date ({previous.sources})")
            return
        if self.from_rootfs:
            self._import(progress)
        else:
            base = re.search(r"^FROM\s+(\S+)", self.dockerfile.read_text(), re.MULTILINE).group(1)
            unavailable = self._pull(base, progress)
            if unavailable is None:
                self._build(progress)
            elif self.imports_rootfs:
                progress(
                    f"{self.name}: {base} cannot be pulled ({unavailable}): importing the rootfs instead"
                )
                self._import(progress)
            else:
                raise RuntimeUnavailable(
                    f"runtime {self.name!r}: {self.dockerfile.name}'s base image {base} cannot be "
                    f"pulled: {unavailable}"
                )
        if previous is not None and previous.id != self._image().id:
            # The replaced image is left untagged; Docker refuses while a container still uses it.
            _docker("image", "rm", previous.id)

    def _pull(self, base: str, progress: Progress) -> str | None:
        """None once the base image is here; otherwise why it cannot be pulled."""
        if self._image(base) is not None:
            return None
        progress(f"{self.name}: pulling {base}")
        pulled = _docker("pull", base)
        return None if pulled.returncode == 0 else pulled.stderr.strip()

    def _context(self) -> io.BytesIO:
        """The build context: the Dockerfile, the worker and the probe sources, nothing else."""
        buffer = io.BytesIO()
        # Plain ustar: `docker build -` takes its input for a tar only if the first 512-byte
        # header parses alone, and a pax extended header does not.
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            tar.add(self.dockerfile, arcname="Dockerfile")
            tar.add(WORKER_SOURCE, arcname="worker.py")
            tar.add(PROBE_SOURCE, arcname="flags_probe.cpp")
            tar.add(PROBE_BUILD_SCRIPT, arcname="build_probe.sh")
        buffer.seek(0)
        return buffer

    def _build(self, progress: Progress) -> None:
        progress(f"{self.name}: building image {self.image} from {self.dockerfile}")
        label = f"{SOURCES_LABEL}={self._dockerfile_sources()}"
        with tempfile.TemporaryFile() as context:
            # From a file, not a pipe: the client sends the whole context before the build talks.
            context.write(self._context().getvalue())
            context.seek(0)
            build = subprocess.Popen(
                ["docker", "build", "--label", label, "--tag", self.image, "-"],
                stdin=context,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            tail: list[str] = []
            for line in build.stdout:
                tail = (tail + [line.rstrip()])[-30:]
                if BUILD_STEP.match(line):
                    progress("  " + line.strip())
            if build.wait() != 0:
                raise RuntimeUnavailable(
                    f"runtime {self.name!r}: docker build exited with {build.returncode}; its last lines:\n"
                    + "\n".join(tail)
                )

    def _import(self, progress: Progress) -> None:
        """The rootfs runtime's tree as the image, the tree built first where it is missing."""
        self.rootfs.install(progress)  # also brings the tree's worker and flags probe up to date
        changes = [f"LABEL {SOURCES_LABEL}={self._rootfs_sources()}", *IMPORTED_IMAGE_CONFIG]
        progress(
            f"{self.name}: importing {self.rootfs.directory} as image {self.image} (about half a minute)"
        )
        with tempfile.TemporaryFile() as tar_errors:
            tar = subprocess.Popen(
                ["tar", "--directory", str(self.rootfs.directory), "--create"]
                + [f"--exclude={pattern}" for pattern in ROOTFS_EXCLUDES]
                + ["."],
                stdout=subprocess.PIPE,
                stderr=tar_errors,
            )
            imported = subprocess.run(
                ["docker", "import", *(f"--change={change}" for change in changes), "-", self.image],
                stdin=tar.stdout,
                capture_output=True,
                text=True,
                check=False,
            )
            tar.stdout.close()
            tar.wait()
            tar_errors.seek(0)
            tar_said = tar_errors.read().decode(errors="replace").strip()
        # GNU tar exits with 1 where a file changed while it was read (a process in the tree
        # writing a cache): the archive is whole all the same.
        if tar.returncode not in (0, 1):
            raise RuntimeUnavailable(
                f"runtime {self.name!r}: tar of {self.rootfs.directory} exited with {tar.returncode}: {tar_said}"
            )
        if imported.returncode != 0:
            raise RuntimeUnavailable(
                f"runtime {self.name!r}: docker import exited with {imported.returncode}: "
                f"{imported.stderr.strip()}"
            )
        if tar_said:
            progress(f"  tar: {tar_said}")

    def info(self) -> dict:
        out = {
            "runtime": self.name,
            "caffe_version": self.caffe_version,
            "image": self.image,
            "docker_server": self.server_version(),
        }
        image = self._image()
        out["ready"] = image is not None and image.sources in self._fresh_sources()
        if image is None:
            return out
        out.update(image_id=image.id, sources=image.sources)
        found = _docker(
            "run",
            "--rm",
            "--network",
            "none",
            self.image,
            self.python,
            "-c",
            "import sys, caffe; print(sys.version.split()[0]); print(caffe.__version__)",
        )
        out["python"], out["caffe"] = (found.stdout.split() + [None, None])[:2]
        return out

    # -- use --

    def argv(
        self,
        worker_path: str | Path = WORKER_SOURCE,
        log_dir: str | None = None,
        memory_mb: int | None = None,
    ) -> list[str]:
        self.ensure_ready()
        command = [
            "docker",
            "run",
            "--interactive",
            "--rm",
            "--network",
            "none",
            "--name",
            f"caffe-conformance-worker-{uuid.uuid4().hex[:12]}",
            "--label",
            WORKER_LABEL,
            # As the harness's own user: what the worker leaves in the log directory is then the
            # harness's to remove.
            "--user",
            f"{os.getuid()}:{os.getgid()}",
            "--volume",
            f"{Path(worker_path).resolve()}:{INSTALLED_WORKER}:ro",
        ]
        if memory_mb:
            # The container's cgroup counts the memory the worker really uses; no swap beyond it.
            command += ["--memory", f"{memory_mb}m", "--memory-swap", f"{memory_mb}m"]
        if log_dir:
            # Mounted at the same path: the base class's new_log_dir, a fresh host directory.
            command += ["--volume", f"{log_dir}:{log_dir}"]
        return command + [self.image] + worker_command(self.python, INSTALLED_WORKER, log_dir=log_dir)

    def stop(self, process: subprocess.Popen) -> None:
        # Killing the docker client would leave its container running: remove the container
        # (--force kills it first), which returns once it is gone, then reap the client.
        name = container_name(process.args)
        if process.poll() is None and _docker("rm", "--force", name).returncode != 0:
            # Docker's own --rm removes a dead container too, and where it came first this rm
            # fails at once ("removal already in progress"): wait until that removal is done.
            deadline = time.monotonic() + CONTAINER_REMOVAL_WAIT_S
            while _docker("container", "inspect", name).returncode == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
        super().stop(process)

    def killed_by_memory_cap(self, process: subprocess.Popen, returncode: int | None) -> bool:
        """Whether Docker reported an "oom" event for the worker's container since the last
        death asked about: the kernel killed a process of it at its --memory cap."""
        # The kernel's OOM killer sends SIGKILL: to the fork server's child (its "died" frame
        # says so), or to the container's first process (docker run then exits with 128 + 9).
        if returncode not in (-signal.SIGKILL, 128 + signal.SIGKILL):
            return False
        name = container_name(process.args)
        since = self._memory_checked_until.get(name, "0")
        deadline = time.monotonic() + OOM_EVENT_WAIT_S
        while True:
            until = f"{time.time():.9f}"
            events = _docker(
                "events",
                "--since",
                since,
                "--until",
                until,
                "--filter",
                f"container={name}",
                "--filter",
                "event=oom",
                "--format",
                "{{.TimeNano}}",
            )
            if events.stdout.strip() or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self._memory_checked_until[name] = until
        return bool(events.stdout.strip())


@register_runtime("docker-bvlc")
class BvlcDockerRuntime(DockerRuntime):
    """Caffe 1.0 from the official bvlc/caffe:cpu image (Ubuntu 16.04, Python 2.7)."""

    caffe_version = "1.0"
    dockerfile = DOCKERFILES_DIR / "Dockerfile.bvlc"
    image = "caffe-conformance:bvlc-1.0"
    python = "python"  # Python 2.7 in bvlc/caffe:cpu
    imports_rootfs = False  # no rootfs holds Caffe 1.0: this image is only ever built
