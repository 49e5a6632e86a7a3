"""One report from the reports of a CI matrix's shards (`fuzz --shard I/N`, one report each):
the report a single run of the whole campaign would have written.

Each shard ran every N-th slice of the same campaign (slices.py), so the merge is the slices'
records in order of index, each bug's bundle from the lowest slice that found it (as the
client of a single run keeps it), copied into the merged report's bundles/; the corpus,
which every shard replayed, counts once. The shards must be of one campaign (the same
settings but for where each ran and wrote) and all there, each once.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import fields
from datetime import datetime, timedelta
from pathlib import Path

from harness.campaign.fuzz import CaseRecord
from harness.campaign.report import write_report
from harness.campaign.slices import SliceCollector
from harness.errors import HarnessError
from harness.versions import stamp

# The settings that may differ between the shards of one campaign: which shard, and where and
# with what each ran and wrote, and how much it said while it ran.
PER_SHARD = ("shard", "report", "corpus", "jobs", "cluster", "verbosity")


def merge_reports(
    directories: list[Path], out: Path, on_record: Callable[[CaseRecord], None] = lambda record: None
) -> dict:
    """Write the merged report.json, junit.xml, report.html and bundles/ into out; its summary.
    ``on_record`` sees each merged record in order."""
    shards = [(Path(d), *_load(Path(d))) for d in directories]
    settings = _one_campaign([report for _, report, _ in shards])
    collector = SliceCollector(Path(out) / "bundles", on_record)
    for record in shards[0][2]:
        if record.slice is None:  # the corpus, replayed alike by every shard
            collector.take_corpus(record)
    for directory, _, records in shards:
        by_slice: dict[int, list[CaseRecord]] = {}
        for record in records:
            if record.slice is not None:
                by_slice.setdefault(record.slice, []).append(record)
        for index, kept in by_slice.items():
            collector.take(index, kept, lambda bundle, path, d=directory: _copy_bundle(d, bundle, path))
    interrupted = any(report["summary"]["interrupted"] for _, report, _ in shards)
    started, ended = _campaign_span([report["summary"] for _, report, _ in shards])
    return write_report(
        out, collector.records(), interrupted, {**settings, "shard": None, "report": str(out)}, started, ended
    )


def _campaign_span(summaries: list[dict]) -> tuple[datetime | None, datetime | None]:
    """The campaign's start and end: the first shard's start and the last one's end."""
    spans = []
    for summary in summaries:
        if summary["started"] is not None and summary["duration_s"] is not None:
            start = datetime.fromisoformat(summary["started"])
            spans.append((start, start + timedelta(seconds=summary["duration_s"])))
    if not spans:
        return None, None
    return min(start for start, _ in spans), max(end for _, end in spans)


def _load(directory: Path) -> tuple[dict, list[CaseRecord]]:
    path = directory / "report.json"
    try:
        report = json.loads(path.read_text())
    except OSError as e:
        raise HarnessError(f"{path}: cannot read: {e.strerror}") from e
    except json.JSONDecodeError as e:
        raise HarnessError(f"{path}: not a report: {e}") from e
    expected = stamp("report")["schema"]
    if report.get("schema") != expected:
        raise HarnessError(
            f"{path}: written by another caffe-conformance (schema {report.get('schema')}; "
            f"this one merges {expected})"
        )
    known = {f.name for f in fields(CaseRecord)}
    unknown = {key for case in report["cases"] for key in case} - known
    if unknown:
        raise HarnessError(f"{path}: written by another caffe-conformance (unknown fields {sorted(unknown)})")
    return report, [CaseRecord(**case) for case in report["cases"]]


def _one_campaign(reports: list[dict]) -> dict:
    """The campaign's settings, if the reports are each shard of one campaign once."""
    settings = [report["summary"]["settings"] for report in reports]
    first = {k: v for k, v in settings[0].items() if k not in PER_SHARD}
    for other in settings[1:]:
        differ = sorted(
            k for k in first.keys() | other.keys() if k not in PER_SHARD and first.get(k) != other.get(k)
        )
        if differ:
            raise HarnessError(
                "merge: the reports are not of one campaign; they differ in "
                + ", ".join(f"{k} ({first.get(k)!r} vs. {other.get(k)!r})" for k in differ)
            )
    marks = [s.get("shard") for s in settings]
    if None in marks:
        raise HarnessError("merge: every report must be a shard (fuzz --shard I/N); one is a whole campaign")
    count = marks[0][1]
    if any(n != count for _, n in marks) or sorted(i for i, _ in marks) != list(range(count)):
        found = ", ".join(f"{i}/{n}" for i, n in sorted(marks))
        raise HarnessError(f"merge: shards {found}: expected each of 0/{count} to {count - 1}/{count} once")
    return settings[0]


def _copy_bundle(shard_dir: Path, bundle: str, target: Path) -> None:
    """A shard's bundle, found in its report's bundles/ (where a CI artifact holds it), else
    where the shard wrote it."""
    for source in (shard_dir / "bundles" / Path(bundle).name, Path(bundle)):
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
            return
    raise HarnessError(
        f"merge: {shard_dir}: bundle {bundle!r} is neither in {shard_dir / 'bundles'} nor there"
    )
