"""What a campaign tells a person: a progress line while it runs, then report.json,
junit.xml (one test case per generated case, and one per bundle) and report.html
(a picture of every minimal failing net, its first divergent layer marked)."""

from __future__ import annotations

import html
import json
import os
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from harness.campaign.fuzz import CaseRecord
from harness.errors import HarnessError


class Progress:
    """One status line on stderr, rewritten in place on a terminal, every few seconds otherwise."""

    def __init__(self, total: int | None = None, seconds: float | None = None, stream=None):
        self.total, self.seconds, self.stream = total, seconds, stream or sys.stderr
        self.started = time.monotonic()
        self.counts: Counter = Counter()
        self.tty = self.stream.isatty()
        self.last_print = 0.0

    def update(self, record: CaseRecord):
        if not record.shrinking or record.bundle:
            self.counts[record.verdict if not record.bundle else "bundled"] += 1
        if record.bundle:
            self.note(f"disagreement bundled: {record.bundle}\n    {record.summary}")
        now = time.monotonic()
        if self.tty or now - self.last_print > 5:
            self.last_print = now
            self._print()

    def _print(self):
        elapsed = time.monotonic() - self.started
        done = sum(v for k, v in self.counts.items() if k != "bundled")
        goal = f"/{self.total}" if self.total else ""
        clock = f" {elapsed:5.0f}s" + (f"/{self.seconds:.0f}s" if self.seconds else "")
        rate = done / elapsed if elapsed > 0 else 0.0
        line = (
            f"[{done}{goal}{clock}] agree {self.counts['agree']}  disagree {self.counts['disagree']}  "
            f"skipped {self.counts['skipped']}  bundles {self.counts['bundled']}  {rate:.1f} cases/s"
        )
        self.stream.write(("\r" + line + "\033[K") if self.tty else line + "\n")
        self.stream.flush()

    def note(self, text: str):
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self):
        self._print()
        if self.tty:
            self.stream.write("\n")


def summarise(records: list[CaseRecord], interrupted: bool, settings: dict) -> dict:
    generated = [r for r in records if not r.shrinking]
    bundles = [r for r in records if r.bundle and not r.name.startswith("corpus/")]
    return {
        "settings": settings,
        "interrupted": interrupted,
        "cases": len(generated),
        "verdicts": dict(Counter(r.verdict for r in generated)),
        "disagreements": [
            {"signature": r.signature, "summary": r.summary, "bundle": r.bundle} for r in bundles
        ],
        "precision": _precision(generated),
        "corpus": [asdict(r) for r in records if r.name.startswith("corpus/")],
        "layer_types_seen": dict(Counter(t for r in generated for t in r.layer_types)),
        "outcomes": dict(Counter(f"{k}={v}" for r in generated for k, v in r.outcomes.items())),
        "engine_seconds": {
            k: round(sum(r.seconds.get(k, 0.0) for r in generated), 3)
            for k in sorted({k for r in generated for k in r.seconds})
        },
    }


def _precision(generated: list[CaseRecord]) -> dict:
    """Cases the triage classified as float32 precision rather than semantics: per class, per
    10,000 generated cases, and each one with its evidence."""
    found = [r for r in generated if r.verdict == "precision"]
    classes = Counter(r.precision["precision"] for r in found)
    scale = 10_000 / max(len(generated), 1)
    return {
        "count": len(found),
        "per_10k": round(len(found) * scale, 2),
        "classes": {k: {"count": v, "per_10k": round(v * scale, 2)} for k, v in sorted(classes.items())},
        "cases": [{"name": r.name, "summary": r.summary, **r.precision} for r in found],
    }


def check_report_dir(directory: Path) -> None:
    """Fail before the first case, not after the whole campaign, where the report cannot be
    written: a file in the way, a read-only or full disk."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _write_atomically(directory / ".writable", b"")
        (directory / ".writable").unlink()
    except OSError as e:
        raise HarnessError(f"--report={str(directory)!r}: cannot write there: {e.strerror or e}") from e


def _write_atomically(path: Path, data: bytes) -> None:
    """The whole file or none of it: a full disk leaves the old file, never a truncated one."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_report(directory: Path, records: list[CaseRecord], interrupted: bool, settings: dict) -> dict:
    directory = Path(directory)
    summary = summarise(records, interrupted, settings)
    report = json.dumps({"summary": summary, "cases": [asdict(r) for r in records]}, indent=2, default=str)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _write_atomically(directory / "report.json", (report + "\n").encode())
        _write_atomically(directory / "junit.xml", _junit(records))
        _write_atomically(directory / "report.html", _html(summary).encode())
    except OSError as e:
        raise HarnessError(f"--report={str(directory)!r}: cannot write the report: {e.strerror or e}") from e
    return summary


def _junit(records: list[CaseRecord]) -> bytes:
    """One testcase per generated case and per bundle. A bug counts once: a generated case
    whose disagreement was bundled is the bundle's testcase, which is named by its signature,
    the same from one run to the next, so a CI's test history follows the bug."""
    bundled = {r.signature for r in records if r.bundle and r.signature}
    shown = [
        r
        for r in records
        if r.bundle or (not r.shrinking and not (r.verdict == "disagree" and r.signature in bundled))
    ]
    suite = ET.Element(
        "testsuite",
        name="caffe-conformance",
        tests=str(len(shown)),
        failures=str(sum(r.verdict == "disagree" for r in shown)),
        skipped=str(sum(r.verdict in ("skipped", "precision") for r in shown)),
    )
    for r in shown:
        case = ET.SubElement(
            suite,
            "testcase",
            classname="bundle" if r.bundle else "generated",
            name=r.signature if r.bundle and r.signature and not r.name.startswith("corpus/") else r.name,
            time=f"{sum(r.seconds.values()):.4f}",
        )
        if r.verdict == "disagree":
            failure = ET.SubElement(case, "failure", message=r.summary[:500])
            failure.text = r.summary + (f"\nreplay: caffe-conformance replay {r.bundle}" if r.bundle else "")
        elif r.verdict in ("skipped", "precision"):  # precision: not a semantic verdict (triage.py)
            ET.SubElement(case, "skipped", message=r.summary[:500])
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


def _html(summary: dict) -> str:
    from harness.campaign.bundle import Bundle

    parts = [
        (
            f"<h1>caffe-conformance report</h1><p>{summary['cases']} generated cases; verdicts "
            f"{html.escape(json.dumps(summary['verdicts']))}"
            f"{' (interrupted)' if summary['interrupted'] else ''}</p>"
        )
    ]
    settings = summary["settings"]
    parts.append(
        f"<p>seed {html.escape(str(settings.get('seed')))}, against "
        f"{html.escape(str(settings.get('against')))}</p>"
    )
    if not summary["disagreements"]:
        parts.append("<p>No disagreement.</p>")
    for d in summary["disagreements"]:
        parts.append(
            f"<h2>{html.escape(d['signature'] or '')}</h2><p>{html.escape(d['summary'])}</p>"
            f"<p><code>caffe-conformance replay {html.escape(d['bundle'])}</code></p>"
        )
        try:
            parts.append(_picture(Bundle.load(Path(d["bundle"]))))
        except HarnessError as e:  # a bundle moved or removed since: the report still stands
            parts.append(f"<p>(no picture: {html.escape(str(e))})</p>")
    precision = summary["precision"]
    if precision["count"]:
        rows = "".join(
            f"<li>{html.escape(c['name'])}: {html.escape(c['summary'])}</li>" for c in precision["cases"]
        )
        parts.append(
            f"<h2>Precision, not semantics ({precision['count']}, {precision['per_10k']} per 10,000)</h2>"
            f"<ul>{rows}</ul>"
        )
    types = ", ".join(f"{k} ({v})" for k, v in sorted(summary["layer_types_seen"].items()))
    parts.append(f"<h2>Layer types exercised</h2><p>{html.escape(types)}</p>")
    return (
        "<!doctype html><meta charset=utf-8><title>caffe-conformance</title>"
        "<style>body{font-family:sans-serif;max-width:70em;margin:auto} svg{max-width:100%}</style>"
        + "\n".join(parts)
    )


def _picture(bundle) -> str:
    """The bundle's net as SVG, or the reason there is no picture."""
    from harness.errors import HarnessError
    from harness.explain.explain import explain
    from harness.explain.graph import render, to_dot
    from reference_engine.checks import CaffeError, Unsupported

    # Marked: the first layer a mismatch blames (an outcome or a loss blames none).
    blame = next((m.layer for m in bundle.comparison.mismatches if m.layer), None)
    try:
        data = explain(bundle.case.net, bundle.case.phase, bundle.case.level, bundle.case.stages)
        return render(to_dot(data, blame=blame), "svg").decode()
    except (CaffeError, Unsupported, HarnessError) as e:
        return f"<p>(no picture: {html.escape(str(e))})</p>"
