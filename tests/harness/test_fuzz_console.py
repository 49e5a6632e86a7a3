"""What `fuzz` and `merge` print: a summary whose numbers are the progress line's, and
-q (the summary and errors only) and -v (a line per case), before the command or after it.
With engines that claim nothing about Caffe: a loss 1% off, so that most cases disagree and
one bundle holds them all."""

import json
import re
from datetime import UTC, datetime

import pytest

from harness.campaign.bundle import Bundle
from harness.campaign.fuzz import CaseRecord
from harness.campaign.report import write_report
from harness.case import Case
from harness.cli import main
from tests.harness.campaigns import PERTURBED
from tests.harness.test_bundle import COMPARISON, ENGINES, NET

FUZZ = ["fuzz", "--engine", PERTURBED, "--against", "reference", "--examples", "15", "--seed", "3"]


def test_the_summary_counts_the_disagreeing_cases_and_their_bundles_as_the_progress_line_does(
    tmp_path, capsys
):
    assert main([*FUZZ, "--report", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    last_progress = [line for line in err.splitlines() if line.startswith("[15/15")][-1]
    disagree, bundles = re.search(r"disagree (\d+) .* bundles (\d+)", last_progress).groups()
    assert int(disagree) > int(bundles) == 1  # several failing cases, one bug bundled
    first = out.splitlines()[1]
    assert first.startswith("15 cases (seed 3): ")
    assert f"{disagree} disagreeing cases in 1 bundle; report in {tmp_path}" in first
    assert f"  loss:-:forward loss ({disagree} cases): forward loss" in out


def test_quiet_prints_only_the_summary(tmp_path, capsys):
    assert main(["-q", *FUZZ, "--report", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith("15 cases (seed 3): ") and "replay: caffe-conformance replay" in out
    assert main([*FUZZ, "--quiet", "--report", str(tmp_path / "again")]) == 1  # after the command too
    assert capsys.readouterr().err == ""


def test_verbose_prints_a_line_per_case(tmp_path, capsys):
    assert main([*FUZZ, "-v", "--report", str(tmp_path)]) == 1
    cases = [line for line in capsys.readouterr().err.splitlines() if re.match(r"seed\d+-case", line)]
    assert len(cases) == 15 and all(
        re.fullmatch(r"seed\d+-case\d+: disagree: .+|.*: agree", c) for c in cases
    )


def test_quiet_and_verbose_together_are_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["-q", "-v", *FUZZ])
    assert exit_.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def record(name, verdict, slice_, **fields):
    summary = "agree" if verdict == "agree" else "forward loss: max abs err 0.1"
    return CaseRecord(name, verdict, summary, {"reference": 0.01}, ["ReLU"], {}, slice=slice_, **fields)


def test_merge_says_what_fuzz_says_and_spans_the_shards_clocks(tmp_path, capsys):
    bundle = Bundle(Case(NET), {}, ENGINES, COMPARISON).save(tmp_path / "a" / "bundles" / "loss---seed7-1")
    shards = {
        "a": [
            record("seed7-case1", "agree", 0),
            record("seed7-case2", "disagree", 0, signature="loss:-"),
            record("seed7-case3", "disagree", 0, signature="loss:-", shrinking=True, bundle=str(bundle)),
        ],
        "b": [record("seed7-case4", "disagree", 1, signature="loss:-")],
    }
    clocks = {
        "a": (datetime(2030, 1, 2, 3, 0, tzinfo=UTC), 60),
        "b": (datetime(2030, 1, 2, 3, 5, tzinfo=UTC), 30),
    }
    for index, (name, records) in enumerate(shards.items()):
        started, seconds = clocks[name]
        ended = datetime.fromtimestamp(started.timestamp() + seconds, UTC)
        settings = {"seed": 7, "examples": 3, "shard": [index, 2], "verbosity": index}
        write_report(tmp_path / name, records, False, settings, started, ended)
    out_dir = tmp_path / "merged"
    assert main(["merge", str(tmp_path / "a"), str(tmp_path / "b"), "--report", str(out_dir), "-v"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == [  # the bundle's shrunk case is no case of the campaign's
        "seed7-case1: agree",
        "seed7-case2: disagree: forward loss: max abs err 0.1",
        "seed7-case4: disagree: forward loss: max abs err 0.1",
    ]
    assert out[3] == (
        f"3 cases (seed 7): 1 agree, 0 precision, 0 skipped, 2 disagreeing cases in 1 bundle "
        f"from 2 shards; report in {out_dir}"
    )
    summary = json.loads((out_dir / "report.json").read_text())["summary"]
    assert summary["started"] == "2030-01-02T03:00:00+00:00" and summary["duration_s"] == 330.0


def test_merge_refuses_a_report_of_another_schema(tmp_path, capsys):
    for index, name in enumerate("ab"):
        write_report(tmp_path / name, [], False, {"seed": 7, "shard": [index, 2]})
    path = tmp_path / "b" / "report.json"
    path.write_text(path.read_text().replace('"version": 1', '"version": 2', 1))
    assert main(["merge", str(tmp_path / "a"), str(tmp_path / "b"), "--report", str(tmp_path / "out")]) == 2
    assert "written by another caffe-conformance (schema" in capsys.readouterr().err
