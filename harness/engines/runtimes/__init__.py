"""Caffe runtimes: the ways to start harness/engines/worker.py next to a real Caffe.

A runtime only starts the worker; harness/engines/command.py speaks the protocol. Each runtime
is a small object in RUNTIMES, found by name:

    rootfs       a Debian bullseye root file system with python3-caffe, entered with chroot
                 (needs root; built once per machine with debootstrap, cached outside the checkout)
    docker       the same content as a Docker image (docker/Dockerfile)
    docker-bvlc  the official bvlc/caffe:cpu image: Caffe 1.0, Python 2.7 (docker/Dockerfile.bvlc)
    local        a Python on this machine that can already `import caffe`

Each has install() (idempotent), info(), argv(worker_path) and caffe_version ("master" or "1.0",
the key the reference engine's CaffeSemantics is chosen by).
"""

from pathlib import Path

from ...errors import RuntimeUnavailable
from . import docker, local, rootfs  # noqa: F401  each registers itself
from .base import RUNTIMES, WORKER_SOURCE, Runtime, kill_process_group
from .rootfs import RootfsRuntime

DEFAULT_RUNTIME = "rootfs"


def get_runtime(name: str = DEFAULT_RUNTIME, rootfs_dir: str | Path | None = None) -> Runtime:
    if name not in RUNTIMES:
        raise RuntimeUnavailable(f"runtime={name!r}: unknown (known: {', '.join(RUNTIMES)})")
    if name == "rootfs":
        return RootfsRuntime(rootfs_dir)
    return RUNTIMES[name]()


__all__ = ["DEFAULT_RUNTIME", "RUNTIMES", "WORKER_SOURCE", "Runtime", "get_runtime", "kill_process_group"]
