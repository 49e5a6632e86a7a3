"""Repro bundles: a disagreement as a directory a person can read and rerun.

BUNDLE/
  bundle.json        which engines, and the comparison as data: the verdict, every mismatch
  case/              the Case (net.prototxt, solver.prototxt, arrays.npz, meta.json)
  results/<engine>/  each engine's Result (result.json, arrays.npz)
  diff.txt           the disagreement in words, first divergence first
  replay.sh          the one command that reruns it
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.campaign.compare import Comparison
from harness.case import Case, Result
from harness.engine import engine_source
from harness.errors import HarnessError
from harness.versions import caffe_of_results, json_text, stamp


@dataclass(frozen=True)
class Bundle:
    case: Case
    results: dict[str, Result]
    engines: dict[str, str]  # role ("under_test", "oracle") -> engine spec
    comparison: Comparison

    def save(self, directory: Path) -> Path:
        """Write the bundle at directory, whole: it is written beside it, then renamed into place,
        over the bundle there if any (a campaign's bundle as found, replaced by its shrunk case),
        so that a process killed at any moment leaves one complete bundle there. A directory
        there that is not a bundle, and not empty, is left alone."""
        directory = Path(directory)
        # Hidden, so that no corpus replays it: bundle.json is there before the bundle is whole.
        partial = directory.absolute().with_name(f".{directory.absolute().name}.partial")
        try:
            if _holds_other_things(directory):
                raise HarnessError(
                    f"bundle={str(directory)!r}: cannot write: it is there and is not a bundle"
                )
            shutil.rmtree(partial, ignore_errors=True)  # a process killed while writing left it
            self._write(partial)
            _rename_over(partial, directory)
        except OSError as e:
            raise HarnessError(f"bundle={str(directory)!r}: cannot write: {e.strerror or e}") from e
        finally:
            shutil.rmtree(partial, ignore_errors=True)  # the bundle replaced, or one half-written
        return directory

    def _write(self, directory: Path) -> None:
        self.case.save(directory / "case")
        for name, result in self.results.items():
            result.save(directory / "results" / name)
        meta = {
            **stamp("bundle"),
            "engines": self.engines,
            "engine_sources": {role: engine_source(spec) for role, spec in self.engines.items()},
            "caffe": caffe_of_results(self.results),
            "comparison": self.comparison.to_json(),
        }
        (directory / "bundle.json").write_text(json_text(meta) + "\n")
        (directory / "diff.txt").write_text(describe(self.comparison, self.case) + "\n")
        script = directory / "replay.sh"
        # The script finds its bundle beside itself: a bundle copied anywhere still replays.
        script.write_text('#!/bin/sh\nexec caffe-conformance replay "$(dirname "$0")" "$@"\n')
        script.chmod(0o755)

    @classmethod
    def load(cls, directory: Path) -> Bundle:
        directory = Path(directory)
        if not (directory / "bundle.json").is_file():
            raise HarnessError(f"bundle={str(directory)!r}: not a repro bundle (no bundle.json)")
        meta = json.loads((directory / "bundle.json").read_text())
        if "comparison" not in meta:
            raise HarnessError(
                f"bundle={str(directory)!r}: written by an older caffe-conformance "
                "(bundle.json holds no comparison); rerun the case to bundle it again"
            )
        results = (
            {p.name: Result.load(p) for p in sorted((directory / "results").iterdir())}
            if (directory / "results").is_dir()
            else {}
        )
        return cls(
            Case.load(directory / "case"), results, meta["engines"], Comparison.from_json(meta["comparison"])
        )


def _is_empty_directory(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def _holds_other_things(path: Path) -> bool:
    """Whether path is there, and neither a bundle nor an empty directory."""
    return path.exists() and not (path / "bundle.json").is_file() and not _is_empty_directory(path)


def _rename_over(source: Path, target: Path) -> None:
    """Put the tree at source where target is. Where a bundle is there already, the two trade
    places in one step (renameat2's RENAME_EXCHANGE, Linux 3.15), leaving the earlier one at
    source; where the file system cannot, the earlier one is moved aside first, so that a kill
    between the two renames leaves it, whole, under a hidden name."""
    if not target.exists() or _is_empty_directory(target):
        os.replace(source, target)
        return
    try:
        _exchange(source, target)
    except (AttributeError, OSError):  # no renameat2 in this C library, or not on this file system
        aside = source.with_name(source.name + ".replaced")
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(target, aside)
        os.replace(source, target)
        shutil.rmtree(aside)


def _exchange(first: Path, second: Path) -> None:
    AT_FDCWD, RENAME_EXCHANGE = -100, 2  # <fcntl.h>, <linux/fs.h>
    libc = ctypes.CDLL(None, use_errno=True)
    paths = os.fsencode(first), os.fsencode(second)
    if libc.renameat2(AT_FDCWD, paths[0], AT_FDCWD, paths[1], RENAME_EXCHANGE) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error), str(second))


def recorded_engines(directory: Path) -> str:
    """The engines bundle.json says the bundle was found with, as text to show (never to run)."""
    path = Path(directory) / "bundle.json"
    try:
        meta = json.loads(path.read_text())
        engines, sources = meta.get("engines", {}), meta.get("engine_sources", {})
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as e:
        return f"(unreadable {path}: {e})"
    if not isinstance(engines, dict) or not isinstance(sources, dict):
        return "(no engines recorded)"
    described = []
    for role, value in sorted(engines.items()):
        source = sources.get(role)
        where = ""
        if isinstance(source, dict) and source.get("module_file"):
            where = f" (from {source['module_file']}: PYTHONPATH={source.get('import_root')})"
        described.append(f"{role}={value!r}{where}")
    return ", ".join(described) or "(no engines recorded)"


def describe_comparison(comparison: Comparison) -> str:
    """The verdict, then every mismatch in blame order."""
    lines = [f"verdict: {comparison.summary()}", ""]
    for m in comparison.mismatches:
        where = f"[{m.kind}{', ' + m.layer if m.layer else ''}] "
        lines.append(where + m.message)
    return "\n".join(lines)


def describe(comparison: Comparison, case: Case) -> str:
    """diff.txt: the comparison, then the net."""
    lines = [describe_comparison(comparison), "", "net.prototxt:", case.net.rstrip()]
    if case.solver:
        lines += ["", f"solver.prototxt ({case.iterations} iterations):", case.solver.rstrip()]
    return "\n".join(lines)
