"""`caffe-conformance runtime install|info`: the functions harness/cli.py calls."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .runtimes import DEFAULT_RUNTIME, get_runtime


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def install(runtime_name: str = DEFAULT_RUNTIME, rootfs_dir: str | Path | None = None) -> dict:
    """Build or refresh a runtime (idempotent), then print and return its info."""
    runtime = get_runtime(runtime_name, rootfs_dir)
    started = time.monotonic()
    runtime.install(_progress)
    _progress(f"{runtime_name}: installed in {time.monotonic() - started:.1f} s")
    return info(runtime_name, rootfs_dir)


def info(runtime_name: str = DEFAULT_RUNTIME, rootfs_dir: str | Path | None = None) -> dict:
    """Which Caffe a runtime holds, which Python, where it lives; printed as JSON."""
    found = get_runtime(runtime_name, rootfs_dir).info()
    print(json.dumps(found, indent=2))
    return found


if __name__ == "__main__":
    # python -m harness.runtime_cli install|info [runtime] [rootfs dir]
    command, *rest = sys.argv[1:] or ["info"]
    {"install": install, "info": info}[command](*rest)
