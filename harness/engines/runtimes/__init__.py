"""Caffe runtimes: the ways to start harness/engines/worker.py next to a real Caffe.

A runtime only starts the worker; harness/engines/command.py speaks the protocol. Each runtime
is a small object in RUNTIMES, found by name:

    rootfs       a Debian bullseye root file system with python3-caffe, run under bubblewrap
                 (read-only, no network: docs/security.md)
                 (needs root; built once per machine with debootstrap, cached outside the checkout)
    docker       the same content as a Docker image (dockerfiles/Dockerfile, or the rootfs imported)
    docker-bvlc  the official bvlc/caffe:cpu image: Caffe 1.0, Python 2.7 (dockerfiles/Dockerfile.bvlc)
    local        a Python on this machine that can already `import caffe`
    rootfs-instrumented
                 the rootfs tree with Caffe rebuilt from its Debian source with gcov coverage and
                 ASan+UBSan (instrumented.py, docs/coverage.md); built once per machine

Each has install() (idempotent), info(), argv(worker_path) and caffe_version ("master" or "1.0",
the key the reference engine's CaffeSemantics is chosen by).
"""

from pathlib import Path

from ...errors import RuntimeUnavailable
from . import docker, instrumented, local, rootfs  # noqa: F401  each registers itself
from .base import RUNTIMES, WORKER_SOURCE, Runtime, kill_process_group
from .docker import DockerRuntime
from .rootfs import RootfsRuntime

DEFAULT_RUNTIME = "rootfs"


def get_runtime(
    name: str = DEFAULT_RUNTIME, rootfs_dir: str | Path | None = None, from_rootfs: bool = False
) -> Runtime:
    """The runtime called name. rootfs_dir is where the rootfs runtime's tree lives, which the
    docker runtime imports as its image where from_rootfs says so or no base image is pulled."""
    if name not in RUNTIMES:
        raise RuntimeUnavailable(f"runtime={name!r}: unknown (known: {', '.join(RUNTIMES)})")
    if issubclass(RUNTIMES[name], DockerRuntime):
        return RUNTIMES[name](rootfs_dir, from_rootfs)
    if from_rootfs:
        raise RuntimeUnavailable(f"runtime={name!r}: from_rootfs makes a Docker image; this runtime has none")
    if name == "rootfs":
        return RootfsRuntime(rootfs_dir)
    return RUNTIMES[name]()


__all__ = ["DEFAULT_RUNTIME", "RUNTIMES", "WORKER_SOURCE", "Runtime", "get_runtime", "kill_process_group"]
