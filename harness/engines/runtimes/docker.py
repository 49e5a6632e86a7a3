"""The docker runtime."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
import tempfile
import uuid
from pathlib import Path

from ...errors import RuntimeUnavailable
from .base import (
    INSTALL_DIR,
    PROBE_BUILD_SCRIPT,
    PROBE_SOURCE,
    REPO_DIR,
    WORKER_SOURCE,
    Progress,
    Runtime,
    _say,
    register_runtime,
)


@register_runtime("docker")
class DockerRuntime(Runtime):
    """An image built from docker/<dockerfile>; the worker file is bind-mounted read-only over
    the image's copy, so an edited worker needs no rebuild (the probe does)."""

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
            raise RuntimeUnavailable(f"runtime {self.name!r}: no Docker engine answers ({e})") from e
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
                    raise RuntimeUnavailable(f"runtime {self.name!r}: image build failed: {chunk['error']}")
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
        command = (
            f'{self.python} -c "import sys, caffe; print(sys.version.split()[0]); print(caffe.__version__)"'
        )
        found = (
            client.containers.run(self.image, command, remove=True, network_disabled=True).decode().split()
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


@register_runtime("docker-bvlc")
class BvlcDockerRuntime(DockerRuntime):
    caffe_version = "1.0"
    dockerfile = "Dockerfile.bvlc"
    image = "caffe-conformance:bvlc-1.0"
    python = "python"  # Python 2.7 in bvlc/caffe:cpu
