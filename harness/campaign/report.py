"""What a campaign tells a person: progress while it runs, a summary at its end, then
report.json, junit.xml (one test case per generated case, and one per bundle) and report.html
(the run in tables, then a picture of every minimal failing net, its first divergent layer
marked). docs/reports.md describes each file, docs/schema/ holds report.json's schema."""

from __future__ import annotations

import contextlib
import fcntl
import html
import os
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from harness.campaign.fuzz import CaseRecord
from harness.errors import HarnessError
from harness.versions import json_text, stamp

VERDICTS = ("agree", "disagree", "precision", "skipped")  # the order every count is shown in
PLAIN_EVERY_S = 5.0  # a plain progress line (a CI log) at most this often
NARROWEST_BAR = 10  # columns; narrower, the counts go to a line of their own
SHORT_LABELS = {"agree": "agr", "disagree": "dis", "precision": "prec", "skipped": "skip", "bundles": "bund"}


def is_corpus(record: CaseRecord) -> bool:
    return record.name.startswith("corpus/")


class Tally:
    """The counts a person follows: cases by verdict, and the bundles of disagreements, each
    bundle written and each corpus bundle that still disagrees. The progress line and the
    final summary both count with it, so that their numbers agree."""

    def __init__(self, records: list[CaseRecord] = ()):
        self.verdicts: Counter = Counter()
        self.disagreeing: Counter = Counter()  # generated disagreeing cases per signature
        self.bundles: dict[str, CaseRecord] = {}  # by path: a bundle written again counts once
        for record in records:
            self.add(record)

    def add(self, record: CaseRecord) -> None:
        if not record.shrinking:
            self.verdicts[record.verdict] += 1
            if record.verdict == "disagree" and not is_corpus(record):
                self.disagreeing[record.signature] += 1
        if record.bundle and (not is_corpus(record) or record.verdict == "disagree"):
            self.bundles[record.bundle] = record

    @property
    def cases(self) -> int:
        return sum(self.verdicts.values())

    def cases_of(self, bundle: CaseRecord) -> int:
        """The disagreeing cases a bundle stands for: those of its signature, or its own replay."""
        return 1 if is_corpus(bundle) else self.disagreeing[bundle.signature]

    def counts(self, gap: str = "  ", labels: dict | None = None) -> str:
        """``agree 3  disagree 2 ...``; ``labels``: shorter names for narrow terminals (SHORT_LABELS)."""
        figures = {**{v: self.verdicts[v] for v in VERDICTS}, "bundles": len(self.bundles)}
        return gap.join(f"{(labels or {}).get(name, name)} {n}" for name, n in figures.items())


def case_line(record: CaseRecord) -> str:
    """A case in one line, as -v shows each. A summary names its verdict ("agree", "skipped:
    ...", "precision: ...") but a disagreement's, which is its first mismatch alone."""
    return f"{record.name}: {'disagree: ' if record.verdict == 'disagree' else ''}{record.summary}"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """What a campaign shows while it runs, on stderr. On a terminal a bar (rich) with the
    share of the budget done, the time left, the counts and the rate, redrawn in place, with
    each note printed above it; otherwise (a CI log) a plain line every few seconds.
    ``verbosity``: -1 shows only the campaign's own notes (a shard's failure, an interruption),
    1 adds a line per case."""

    def __init__(self, total: int | None = None, seconds: float | None = None, stream=None, verbosity=0):
        self.total, self.seconds, self.verbosity = total, seconds, verbosity
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.tally = Tally()
        self.tty = self.stream.isatty()
        self.last_print = 0.0
        self.live = None  # the bar, started with the first case (a campaign that fails to start shows none)

    def update(self, record: CaseRecord):
        """Count a record; a bundle's second record (its shrunk case, saved over the case as
        found) counts no new bundle."""
        saved_again = record.bundle in self.tally.bundles
        self.tally.add(record)
        if self.verbosity < 0:
            return
        if self.tty and self.live is None:
            self._start_bar()
        if self.verbosity > 0 and not record.shrinking:
            self.note(case_line(record))
        if record.bundle and not is_corpus(record):
            done = "shrunk" if saved_again else "bundled"
            self.note(f"disagreement {done}: {record.bundle}\n    {record.summary}")
        now = time.monotonic()
        if not self.tty and now - self.last_print > PLAIN_EVERY_S:
            self.last_print = now
            self._print_plain()

    def note(self, text: str):
        if self.live is not None:
            from rich.text import Text

            self.live.console.print(Text(text), soft_wrap=True)  # a path wrapped by us would not paste
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self):
        if self.live is not None:
            self.live.stop()  # its last drawing stays, as the run's final counts
        elif self.verbosity >= 0 and not self.tty:
            self._print_plain()

    def _elapsed(self) -> tuple[float, float]:
        """Seconds since the start, and as shown: never past a time budget, since the cases in
        flight and the last shrink finish after it."""
        elapsed = time.monotonic() - self.started
        return elapsed, min(elapsed, self.seconds) if self.seconds else elapsed

    def _rate(self, elapsed: float) -> float:
        return self.tally.cases / elapsed if elapsed > 0 else 0.0

    def _print_plain(self):
        elapsed, shown = self._elapsed()
        goal = f"/{self.total}" if self.total else ""
        clock = f" {shown:5.0f}s" + (f"/{self.seconds:.0f}s" if self.seconds else "")
        line = f"[{self.tally.cases}{goal}{clock}] {self.tally.counts()}  {self._rate(elapsed):.1f} cases/s"
        self.stream.write(line + "\n")
        self.stream.flush()

    def _start_bar(self):
        from rich.console import Console
        from rich.live import Live

        console = Console(file=self.stream, highlight=False)
        # Not redirected: the shards are forked from here, and a child must not inherit a
        # stdout that writes through the parent's console.
        self.live = Live(
            console=console,
            get_renderable=lambda: self._bar(console.width),
            refresh_per_second=4,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.live.start()

    def _done(self, elapsed: float) -> tuple[float, str]:
        """The share of the budget spent, and what is left of it in words."""
        done = self.tally.cases
        if self.seconds:
            share, left = elapsed / self.seconds, self.seconds - elapsed
        elif self.total:
            share = done / self.total
            left = elapsed * (self.total - done) / done if done else None
        else:
            return 0.0, ""
        if share >= 1:
            return 1.0, "finishing"
        return share, "left -:--" if left is None else f"left {_clock(left)}"

    def _bar(self, width: int):
        """The bar and its figures in one line, or two where the terminal is narrow, the counts
        in the longest words that fit, each line cut to ``width``: a terminal wraps a longer
        line, and every redraw would then leave one behind."""
        from rich.text import Text

        elapsed, shown = self._elapsed()
        share, left = self._done(shown)
        goal = f"/{self.total}" if self.total else ""
        budget = f"/{_clock(self.seconds)}" if self.seconds else ""
        figures = f"{share:4.0%} {self.tally.cases}{goal} {_clock(shown)}{budget} {left}".rstrip()
        rate = self._rate(elapsed)
        wordings = [
            f"{self.tally.counts()}  {rate:.1f} cases/s",
            f"{self.tally.counts(' ')} {rate:.1f}/s",
            f"{self.tally.counts(' ', SHORT_LABELS)} {rate:.1f}/s",
        ]
        one_line = [c for c in wordings if width - len(figures) - len(c) - 4 >= NARROWEST_BAR]
        if one_line:
            counts, bar_width = f"   {one_line[0]}", width - len(figures) - len(one_line[0]) - 4
        else:
            counts = "\n" + next((c for c in wordings if len(c) <= width), wordings[-1])
            bar_width = max(width - len(figures) - 1, 0)
        filled = round(bar_width * share)
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append("━" * filled, style="bar.finished" if share >= 1 else "bar.complete")
        line.append("━" * (bar_width - filled), style="bar.back")
        line.append(f" {figures}{counts}")
        return line


def summarise(
    records: list[CaseRecord],
    interrupted: bool,
    settings: dict,
    started: datetime | None = None,
    ended: datetime | None = None,
) -> dict:
    """report.json's summary (docs/reports.md); ``started`` and ``ended``: the campaign's
    clock, None where not known."""
    tally = Tally(records)
    generated = [r for r in records if not r.shrinking]
    outcomes: dict[str, Counter] = {}
    for r in generated:
        for engine, outcome in r.outcomes.items():
            outcomes.setdefault(engine, Counter())[outcome] += 1
    return {
        "settings": settings,
        "engines": _engines(settings),
        "started": started.isoformat(timespec="seconds") if started else None,
        "duration_s": round((ended - started).total_seconds(), 1) if started and ended else None,
        "interrupted": interrupted,
        "cases": tally.cases,
        "verdicts": dict(tally.verdicts),
        "disagreements": [
            {
                "signature": r.signature,
                "cause": r.cause,
                "summary": r.summary,
                "bundle": r.bundle,
                "cases": tally.cases_of(r),
                "corpus": is_corpus(r),
            }
            for r in tally.bundles.values()
        ],
        "precision": _precision(generated),
        "corpus": [asdict(r) for r in records if is_corpus(r)],
        "layer_types_seen": dict(Counter(t for r in generated for t in r.layer_types)),
        "outcomes": {engine: dict(counts) for engine, counts in sorted(outcomes.items())},
        "engine_seconds": {
            k: round(sum(r.seconds.get(k, 0.0) for r in generated), 3)
            for k in sorted({k for r in generated for k in r.seconds})
        },
    }


def _engines(settings: dict) -> dict:
    """The engines, as the campaign named them; Caffe's runtime and the version it holds where
    one of them was real Caffe."""
    from harness.engines.runtimes import DEFAULT_RUNTIME, RUNTIMES

    command = settings.get("engine_cmd")
    caffe = None
    if "caffe" in (settings.get("against"), None if command else settings.get("engine")):
        runtime = settings.get("runtime", DEFAULT_RUNTIME)
        caffe = {
            "runtime": runtime,
            "version": RUNTIMES[runtime].caffe_version if runtime in RUNTIMES else None,
        }
    return {
        "under_test": command or settings.get("engine"),
        "oracle": settings.get("against"),
        "caffe": caffe,
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


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def console_summary(summary: dict, where: str = "") -> str:
    """The end of a campaign in words, its numbers the progress line's (Tally): the counts,
    then each bundle with the cases it stands for and its replay command, then each precision
    case. ``where``: what follows the first line (where the report is)."""
    verdicts, bundles = summary["verdicts"], summary["disagreements"]
    seed = summary["settings"].get("seed")
    counts = (
        f"{verdicts.get('agree', 0)} agree, {verdicts.get('precision', 0)} precision, "
        f"{verdicts.get('skipped', 0)} skipped, "
        f"{_plural(verdicts.get('disagree', 0), 'disagreeing case')} in {_plural(len(bundles), 'bundle')}"
    )
    seeded = f" (seed {seed})" if seed is not None else ""
    lines = [f"{_plural(summary['cases'], 'case')}{seeded}: {counts}{where}"]
    for d in bundles:
        origin = ", from the corpus" if d["corpus"] else ""
        lines.append(
            f"  {d['cause'] or d['signature']} ({_plural(d['cases'], 'case')}{origin}): {d['summary']}"
        )
        lines.append(f"    replay: caffe-conformance replay {d['bundle']}")
    lines += [f"  precision {c['name']}: {c['summary']}" for c in summary["precision"]["cases"]]
    return "\n".join(lines)


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


@contextlib.contextmanager
def held_for_campaign(directories: list[Path]):
    """Each directory's .lock, held (flock) until the campaign ends: a second campaign on a
    report or corpus directory would mix its cases and bundles with this one's, so it is
    refused, with the pid of the campaign that holds it. The kernel lets go of a lock when
    its process ends, however it ends; a directory named twice is locked once."""
    with contextlib.ExitStack() as held:
        for directory in dict.fromkeys(Path(d).absolute() for d in directories):
            held.enter_context(_lock(directory))
        yield


@contextlib.contextmanager
def _lock(directory: Path):
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise HarnessError(f"{directory}: cannot lock it for the campaign: {e.strerror or e}") from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "not known yet"
            raise HarnessError(f"{directory} is in use by another campaign (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


REPORT_FILES = ("report.json", "junit.xml", "report.html")


def set_earlier_report_aside(directory: Path, keep_bundles: bool) -> Path | None:
    """Move an earlier campaign's report files and bundles/ into DIR/earlier/<when it last
    wrote them>/, deleting nothing, so that a report in DIR always describes the bundles
    beside it. ``keep_bundles``: DIR/bundles is the corpus's (--corpus DIR), kept to be
    replayed. Returns where they went, or None where there was nothing to move."""
    directory = Path(directory)
    names = REPORT_FILES if keep_bundles else (*REPORT_FILES, "bundles")
    found = [directory / name for name in names if (directory / name).exists()]
    if not found:
        return None
    written = time.strftime("%Y-%m-%dT%H-%M-%S", time.localtime(max(path.stat().st_mtime for path in found)))
    target, copies = directory / "earlier" / written, 1
    while target.exists():  # two campaigns ended in one second
        copies += 1
        target = directory / "earlier" / f"{written}-{copies}"
    try:
        target.mkdir(parents=True)
        for path in found:
            path.rename(target / path.name)
    except OSError as e:
        raise HarnessError(
            f"--report={str(directory)!r}: cannot move the earlier report aside: {e.strerror or e}"
        ) from e
    return target


def _write_atomically(path: Path, data: bytes) -> None:
    """The whole file or none of it: a full disk leaves the old file, never a truncated one."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_report(
    directory: Path,
    records: list[CaseRecord],
    interrupted: bool,
    settings: dict,
    started: datetime | None = None,
    ended: datetime | None = None,
) -> dict:
    directory = Path(directory)
    summary = summarise(records, interrupted, settings, started, ended)
    document = {**stamp("report"), "summary": summary, "cases": [asdict(r) for r in records]}
    report = json_text(document)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _write_atomically(directory / "report.json", (report + "\n").encode())
        _write_atomically(directory / "junit.xml", _junit(records))
        _write_atomically(directory / "report.html", _html(document).encode())
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
            name=r.signature if r.bundle and r.signature and not is_corpus(r) else r.name,
            time=f"{sum(r.seconds.values()):.4f}",
        )
        if r.verdict == "disagree":
            failure = ET.SubElement(case, "failure", message=r.summary[:500])
            failure.text = r.summary + (f"\nreplay: caffe-conformance replay {r.bundle}" if r.bundle else "")
        elif r.verdict in ("skipped", "precision"):  # precision: not a semantic verdict (triage.py)
            ET.SubElement(case, "skipped", message=r.summary[:500])
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72em; margin: 1.5em auto; padding: 0 1em;
       color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.2em; }
.verdict { font-size: 1.15em; padding: 0.5em 0.8em; border-radius: 4px; }
.verdict.red { background: #fce8e6; border-left: 6px solid #cc0000; }
.verdict.green { background: #e6f4ea; border-left: 6px solid #38761d; }
.tables { display: flex; flex-wrap: wrap; gap: 1em 2em; align-items: flex-start; }
table { border-collapse: collapse; font-size: 0.92em; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3em; white-space: nowrap; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
section.signature { border-top: 1px solid #ccc; margin-top: 1.5em; }
.picture svg, .legend svg { max-width: 100%; height: auto; }
.legend { margin: 0 0 1em 0; padding: 0.5em; border: 1px solid #ddd; display: inline-block; }
.legend figcaption { font-weight: 600; font-size: 0.9em; }
code, pre { background: #f6f6f6; padding: 0.1em 0.3em; }
pre { padding: 0.5em; overflow-x: auto; }
table.mismatches td:nth-child(3) { font-family: monospace; font-size: 0.9em; }
"""


def _table(caption: str, header: list[str] | None, rows: list[list], css_class: str) -> str:
    """An HTML table, every cell escaped and a number right-aligned; with no header, the first
    cell of each row is the row's heading."""

    def cell(value) -> str:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return f"<td class=number>{value}</td>" if number else f"<td>{html.escape(str(value))}</td>"

    def row(values: list) -> str:
        if header is None:
            return (
                f"<tr><th scope=row>{html.escape(str(values[0]))}</th>{''.join(map(cell, values[1:]))}</tr>"
            )
        return f"<tr>{''.join(map(cell, values))}</tr>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header or [])
    head = f"<thead><tr>{head}</tr></thead>" if header is not None else ""
    body = "".join(map(row, rows)) or f"<tr><td colspan={len(header or [0, 0])}>none</td></tr>"
    return f'<table class="{css_class}"><caption>{html.escape(caption)}</caption>{head}<tbody>{body}</tbody></table>'


def _side_by_side(rows: list[list], most: int) -> list[list]:
    """A long two-column table folded into column pairs read down, at most three, of ``most``
    rows each or more where three such do not hold it."""
    height = max(most, -(-len(rows) // 3))
    folded = [rows[i : i + height] for i in range(0, len(rows), height)]
    return [
        [value for column in folded for value in (column[i] if i < len(column) else ["", ""])]
        for i in range(len(folded[0]) if folded else 0)
    ]


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else _clock(seconds)


def _run_rows(document: dict) -> list[list]:
    """Which campaign this was: its engines and their versions, its seed, budget and clock."""
    summary = document["summary"]
    settings, engines, caffe = summary["settings"], summary["engines"], summary["engines"]["caffe"]
    if settings.get("time"):
        budget = _duration(settings["time"])
    else:
        budget = settings.get("examples") and f"{settings['examples']} cases"
    started = summary["started"] and datetime.fromisoformat(summary["started"]).strftime(
        "%Y-%m-%d %H:%M:%S %Z"
    )
    rows = [
        ["under test", engines["under_test"]],
        ["oracle", engines["oracle"]],
        ["Caffe", f"{caffe['version']} (runtime {caffe['runtime']})" if caffe else "not run"],
        [document["tool"]["name"], document["tool"]["version"]],
        ["seed", settings.get("seed")],
        ["budget", budget],
        ["started", started],
        ["duration", None if summary["duration_s"] is None else _duration(summary["duration_s"])],
        ["interrupted", "yes" if summary["interrupted"] else "no"],
    ]
    return [[key, "unknown" if value is None else str(value)] for key, value in rows]


def _summary_tables(document: dict) -> str:
    summary = document["summary"]
    verdicts = summary["verdicts"]
    shown = [*VERDICTS, *sorted(set(verdicts) - set(VERDICTS))]
    engines = sorted(summary["outcomes"])
    kinds = sorted({k for counts in summary["outcomes"].values() for k in counts})
    precision = summary["precision"]
    layer_types = sorted(
        ([t, n] for t, n in summary["layer_types_seen"].items()), key=lambda r: (-r[1], r[0])
    )
    folded = _side_by_side(layer_types, most=8)
    tables = [
        _table("Run", None, _run_rows(document), "run"),
        _table(
            f"Verdicts ({_plural(summary['cases'], 'case')})",
            ["verdict", "cases"],
            [[v, verdicts.get(v, 0)] for v in shown]
            + [["bundles of disagreements", len(summary["disagreements"])]],
            "verdicts",
        ),
        _table(
            "Outcomes",
            ["engine", *kinds],
            [[e, *(summary["outcomes"][e].get(k, 0) for k in kinds)] for e in engines],
            "outcomes",
        ),
        _table(
            f"Precision classes ({_plural(precision['count'], 'case')})",
            ["class", "cases", "per 10,000"],
            [[k, c["count"], c["per_10k"]] for k, c in precision["classes"].items()],
            "precision",
        ),
        _table(
            "Layer types seen",
            ["type", "cases"] * (len(folded[0]) // 2 if folded else 1),
            folded,
            "layer-types",
        ),
    ]
    return '<div class="tables">' + "".join(tables) + "</div>"


def _verdict_line(summary: dict) -> str:
    disagreeing = summary["verdicts"].get("disagree", 0)
    interrupted = " The campaign was interrupted." if summary["interrupted"] else ""
    if disagreeing:
        text = (
            f"{_plural(disagreeing, 'disagreeing case')} in "
            f"{_plural(len(summary['disagreements']), 'bundle')}, of {summary['cases']}."
        )
        return f'<p class="verdict red">{html.escape(text + interrupted)}</p>'
    text = f"No disagreement in {_plural(summary['cases'], 'case')}."
    return f'<p class="verdict green">{html.escape(text + interrupted)}</p>'


def _html(document: dict) -> str:
    summary = document["summary"]
    parts = ["<h1>caffe-conformance report</h1>", _verdict_line(summary), "<h2>Summary</h2>"]
    parts.append(_summary_tables(document))
    if summary["disagreements"]:
        parts.append("<h2>Disagreements, one section per signature</h2>")
        parts.append(_legend())
        parts += [_section(d) for d in summary["disagreements"]]
    precision = summary["precision"]
    if precision["count"]:
        parts.append("<h2>Precision cases</h2>")
        rows = [[c["name"], c["precision"], c["summary"]] for c in precision["cases"]]
        parts.append(
            _table("Precision, not semantics", ["case", "class", "summary"], rows, "precision-cases")
        )
    return (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>caffe-conformance report</title>"
        f"<style>{STYLE}</style><body>" + "\n".join(parts) + "</body></html>\n"
    )


def _svg(dot: str) -> str:
    """Graphviz's SVG to inline in HTML: without its XML prolog."""
    from harness.explain.graph import render

    svg = render(dot, "svg").decode()
    return svg[svg.index("<svg") :]


def _legend() -> str:
    """The one legend of every picture on the page (each is drawn without its own)."""
    from harness.explain.graph import legend_dot

    try:
        picture = _svg(legend_dot())
    except HarnessError as e:
        picture = f"<p>(no legend: {html.escape(str(e))})</p>"
    return f'<figure class="legend">{picture}<figcaption>legend of the pictures</figcaption></figure>'


def _section(disagreement: dict) -> str:
    """A signature's bundle: what it says, how to rerun it, its net's picture and its mismatches,
    all read from the bundle (its comparison is data, never diff.txt parsed back)."""
    from harness.campaign.bundle import Bundle

    signature, bundle_path = disagreement["signature"] or "", disagreement["bundle"]
    origin = ", from the corpus" if disagreement["corpus"] else ""
    parts = [
        f'<section class="signature" id="{Path(bundle_path).name}">',
        f"<h3>{html.escape(disagreement.get('cause') or signature)}</h3>",
        f"<p>{_plural(disagreement['cases'], 'disagreeing case')}{origin}: {html.escape(disagreement['summary'])}</p>",
        f"<pre class=replay>caffe-conformance replay {html.escape(bundle_path)}</pre>",
    ]
    try:
        bundle = Bundle.load(Path(bundle_path))
    except HarnessError as e:  # a bundle moved or removed since: the report still stands
        parts.append(f"<p>(no picture: {html.escape(str(e))})</p>")
    else:
        parts.append(f'<div class="picture">{_picture(bundle)}</div>')
        rows = [
            [
                m.kind,
                m.layer or "",
                m.message,
                f"{m.max_abs_error:.3g}" if m.max_abs_error is not None else "",
            ]
            for m in bundle.comparison.mismatches
        ]
        parts.append(_table("Mismatches", ["kind", "layer", "message", "max abs error"], rows, "mismatches"))
    return "\n".join([*parts, "</section>"])


def _picture(bundle) -> str:
    """The bundle's net as SVG, without a legend (the page has one), or the reason there is no picture."""
    from harness.explain.explain import explain
    from harness.explain.graph import to_dot
    from reference_engine.checks import CaffeError, Unsupported

    # Marked: the first layer a mismatch blames (an outcome or a loss blames none).
    blame = next((m.layer for m in bundle.comparison.mismatches if m.layer), None)
    try:
        data = explain(bundle.case.net, bundle.case.phase, bundle.case.level, bundle.case.stages)
        return _svg(to_dot(data, blame=blame, legend=False))
    except (CaffeError, Unsupported, HarnessError) as e:
        return f"<p>(no picture: {html.escape(str(e))})</p>"
