"""What a campaign shows while it runs: in a CI log a plain line every few seconds, on a
terminal a bar that fits its width, and a clock that never shows more than the budget."""

import io
import re

import pytest

from harness.campaign.fuzz import CaseRecord
from harness.campaign.report import Progress

SUMMARIES = {  # as the comparison and the triage word them
    "agree": "agree",
    "disagree": "forward loss: max abs err 0.001",
    "precision": "precision: the reference in float32 agrees with Caffe",
    "skipped": "skipped: reference does not model this case",
}


def record(number, verdict="agree", **fields):
    return CaseRecord(f"seed0-case{number}", verdict, SUMMARIES[verdict], {}, ["ReLU"], {}, **fields)


BUNDLED = record(9, "disagree", shrinking=True, bundle="/reports/bundles/loss---seed0-1", signature="loss:-")


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as rich (and a person's shell) sees one."""

    def isatty(self):
        return True


def visible_lines(text: str) -> list[str]:
    """What a terminal shows: escape sequences dropped, a line per carriage return or newline."""
    return [line for line in re.split(r"[\r\n]", re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)) if line]


def run_on(stream, seconds_ago=0.0, **progress_options) -> Progress:
    progress = Progress(stream=stream, **progress_options)
    progress.started -= seconds_ago
    for number, verdict in enumerate(["agree", "disagree", "precision", "skipped", "disagree"]):
        progress.update(record(number, verdict, signature="loss:-" if verdict == "disagree" else None))
    progress.update(BUNDLED)
    progress.close()
    return progress


def test_a_ci_log_gets_a_plain_line_every_few_seconds_and_one_at_the_end():
    log = io.StringIO()
    progress = Progress(total=4, stream=log)
    progress.update(record(1))
    progress.update(record(2, "disagree", signature="loss:-"))  # within 5 s of the last line
    progress.started -= 6
    progress.last_print -= 6
    progress.update(record(3, "precision"))
    progress.update(BUNDLED)
    progress.close()
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert [line.split("]")[0] for line in lines if line.startswith("[")] == [
        "[1/4     0s",
        "[3/4     6s",
        "[3/4     6s",
    ]
    assert "agree 1  disagree 1  precision 1  skipped 0  bundles 1" in lines[-1]
    assert lines[-1].endswith("cases/s")
    assert "disagreement bundled: /reports/bundles/loss---seed0-1" in lines


def test_the_clock_never_shows_more_than_the_time_budget():
    log = io.StringIO()
    run_on(log, seconds_ago=33, seconds=30)
    assert "   30s/30s]" in log.getvalue().splitlines()[-1]
    assert "33s" not in log.getvalue()
    terminal = Terminal()
    run_on(terminal, seconds_ago=33, seconds=30)
    shown = "\n".join(visible_lines(terminal.getvalue()))
    assert "0:30/0:30 finishing" in shown and "0:33" not in shown


@pytest.mark.parametrize("width", [60, 45])
def test_on_a_narrow_terminal_the_bar_is_no_wider_than_it(monkeypatch, width):
    monkeypatch.setenv("COLUMNS", str(width))  # rich's width for a terminal it cannot ask
    terminal = Terminal()
    run_on(terminal, seconds_ago=4, total=100)
    lines = visible_lines(terminal.getvalue())
    notes = ["disagreement bundled: /reports/bundles/loss---seed0-1", "    forward loss: max abs err 0.001"]
    assert lines[:2] == notes  # above the bar, left to the terminal to wrap: a path stays whole
    assert max(len(line) for line in lines[2:]) <= width, lines
    assert lines[-2].startswith("━") and "  5% 5/100 0:04 left" in lines[-2], lines


def test_on_a_wide_terminal_the_bar_and_the_counts_share_one_line(monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    terminal = Terminal()
    run_on(terminal, seconds_ago=4, total=100)
    last = visible_lines(terminal.getvalue())[-1]
    assert last.startswith("━") and len(last) == 120
    assert "agree 1  disagree 2  precision 1  skipped 1  bundles 1" in last and last.endswith("cases/s")


def test_a_bundle_saved_again_shrunk_counts_once():
    log = io.StringIO()
    progress = Progress(total=1, stream=log)
    progress.update(record(1, "disagree", signature="loss:-"))
    progress.update(BUNDLED)  # the case as found
    progress.update(BUNDLED)  # its shrunk case, saved over it
    progress.close()
    lines = log.getvalue().splitlines()
    assert "disagreement bundled: /reports/bundles/loss---seed0-1" in lines
    assert "disagreement shrunk: /reports/bundles/loss---seed0-1" in lines
    assert "disagree 1  precision 0  skipped 0  bundles 1" in lines[-1]


def test_quiet_shows_only_the_campaigns_notes_and_verbose_a_line_per_case():
    log = io.StringIO()
    quiet = run_on(log, verbosity=-1, total=5)
    quiet.note("shard 1 failed: a traceback")
    assert log.getvalue() == "shard 1 failed: a traceback\n"
    log = io.StringIO()
    run_on(log, verbosity=1, total=5)
    cases = [line for line in log.getvalue().splitlines() if line.startswith("seed0-case")]
    assert cases == [
        "seed0-case0: agree",
        "seed0-case1: disagree: forward loss: max abs err 0.001",
        "seed0-case2: precision: the reference in float32 agrees with Caffe",
        "seed0-case3: skipped: reference does not model this case",
        "seed0-case4: disagree: forward loss: max abs err 0.001",
    ]
