"""Repro bundles: a disagreement as a directory a person can read and rerun.

BUNDLE/
  bundle.json        which engines, and the comparison as data: the verdict, every mismatch
  case/              the Case (net.prototxt, solver.prototxt, arrays.npz, meta.json)
  results/<engine>/  each engine's Result (result.json, arrays.npz)
  diff.txt           the disagreement in words, first divergence first
  replay.sh          the one command that reruns it
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.campaign.compare import Comparison
from harness.case import Case, Result
from harness.errors import HarnessError


@dataclass(frozen=True)
class Bundle:
    case: Case
    results: dict[str, Result]
    engines: dict[str, str]  # role ("under_test", "oracle") -> engine spec
    comparison: Comparison

    def save(self, directory: Path) -> Path:
        directory = Path(directory)
        try:
            self._write(directory)
        except OSError as e:
            raise HarnessError(f"bundle={str(directory)!r}: cannot write: {e.strerror or e}") from e
        return directory

    def _write(self, directory: Path) -> None:
        self.case.save(directory / "case")
        for name, result in self.results.items():
            result.save(directory / "results" / name)
        meta = {"engines": self.engines, "comparison": self.comparison.to_json()}
        (directory / "bundle.json").write_text(json.dumps(meta, indent=2) + "\n")
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


def recorded_engines(directory: Path) -> str:
    """The engines bundle.json says the bundle was found with, as text to show (never to run)."""
    path = Path(directory) / "bundle.json"
    try:
        engines = json.loads(path.read_text()).get("engines", {})
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as e:
        return f"(unreadable {path}: {e})"
    if not isinstance(engines, dict):
        return "(no engines recorded)"
    return (
        ", ".join(f"{role}={value!r}" for role, value in sorted(engines.items())) or "(no engines recorded)"
    )


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
