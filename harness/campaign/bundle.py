"""Repro bundles: a disagreement as a directory a person can read and rerun.

    BUNDLE/
      bundle.json        which engines, which Caffe, the verdict
      case/              the Case (net.prototxt, solver.prototxt, arrays.npz, meta.json)
      results/<engine>/  each engine's Result (result.json, arrays.npz)
      diff.txt           the disagreement in words, first divergence first
      replay.sh          the one command that reruns it
"""

from __future__ import annotations

import json
import shlex
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
    comparison_text: str

    def save(self, directory: Path) -> Path:
        directory = Path(directory)
        self.case.save(directory / "case")
        for name, result in self.results.items():
            result.save(directory / "results" / name)
        (directory / "bundle.json").write_text(json.dumps({"engines": self.engines}, indent=2) + "\n")
        (directory / "diff.txt").write_text(self.comparison_text + "\n")
        script = directory / "replay.sh"
        script.write_text(f"#!/bin/sh\nexec caffe-conformance replay {shlex.quote(str(directory))} \"$@\"\n")
        script.chmod(0o755)
        return directory

    @classmethod
    def load(cls, directory: Path) -> Bundle:
        directory = Path(directory)
        if not (directory / "bundle.json").is_file():
            raise HarnessError(f"bundle={str(directory)!r}: not a repro bundle (no bundle.json)")
        meta = json.loads((directory / "bundle.json").read_text())
        results = {p.name: Result.load(p) for p in sorted((directory / "results").iterdir())} \
            if (directory / "results").is_dir() else {}
        text = (directory / "diff.txt").read_text() if (directory / "diff.txt").is_file() else ""
        return cls(Case.load(directory / "case"), results, meta["engines"], text)


def describe(comparison: Comparison, case: Case) -> str:
    """diff.txt: the verdict, every mismatch in blame order, then the net."""
    lines = [f"verdict: {comparison.summary()}", ""]
    for m in comparison.mismatches:
        where = f"[{m.kind}{', ' + m.layer if m.layer else ''}] "
        lines.append(where + m.message)
    lines += ["", "net.prototxt:", case.net.rstrip()]
    if case.solver:
        lines += ["", f"solver.prototxt ({case.iterations} iterations):", case.solver.rstrip()]
    return "\n".join(lines)
