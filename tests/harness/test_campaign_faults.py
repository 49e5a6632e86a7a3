"""A campaign under faults, on real processes: Ctrl-C mid-shrink or while it starts, a second
campaign on the same directories, an earlier report in the way, a corpus run again, a time
budget with a shrink longer than it, relative directories. Fake engines against the reference
engine: these tests claim nothing about Caffe."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import Verbosity, settings

from harness.campaign.bundle import Bundle
from harness.campaign.compare import Comparison
from harness.campaign.fuzz import (
    CHUNK,
    HYPOTHESIS_PROFILE,
    PROFILE_VARIABLE,
    STOP_SECONDS,
    Budget,
    Hunter,
    hunt_settings,
)
from harness.case import Case
from harness.cli import main
from harness.engines.reference import ReferenceEngine
from tests.harness.fake_engines import PerturbedEngine, RenamedReference

PERTURBED = "tests.harness.fake_engines:PerturbedEngine"  # disagrees on every loss: signature loss:-
RENAMED = "tests.harness.fake_engines:RenamedReference"
HANGS = "tests.harness.fault_engines:HangsOnceItDisagrees"
SLOW = "tests.harness.fault_engines:SlowToStart"
CRAWLS = "tests.harness.fault_engines:SlowOnceItDisagrees"  # 5 s a case once it disagrees
ROOT = Path(__file__).resolve().parents[2]
# A campaign that finds the one bug PERTURBED has within its first cases, and shrinks it briefly.
SHORT_SHRINKS = ["fuzz", "--engine", PERTURBED, "--against", "reference", "--examples", "10"]
SHORT_SHRINKS += ["--shrink-time", "5s"]
NET = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "loss" type: "Reduction" bottom: "x" top: "loss" loss_weight: 1 }
"""


@pytest.fixture
def campaigns(tmp_path):
    """Start `caffe-conformance fuzz --against reference --seed 5 ARGS...` in a session of its
    own, its output in a file; whatever is still running at the end is killed. Seed 5's first
    disagreement takes some 40 cases to shrink."""
    started = []

    def start(*args):
        output = (tmp_path / f"output{len(started)}.txt").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "harness", "fuzz", "--against", "reference", "--seed", "5", *args],
            cwd=ROOT,
            start_new_session=True,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONPATH=str(ROOT), HANGING_MARKER=str(tmp_path / "hanging")),
        )
        process.output = Path(output.name)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_for(found, timeout_s: float):
    """found()'s first true value, asked until timeout_s has passed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"not seen in {timeout_s} s")


def _bundles(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if not p.name.startswith("."))


def _report(directory: Path) -> dict:
    return json.loads((directory / "report.json").read_text())


def _agreeing_corpus(corpus: Path) -> None:
    """A corpus holding one bundle, a case the engines agree on."""
    case = Case(net=NET, inputs={"x": np.ones((2, 3), np.float32)})
    engines = {"under_test": RENAMED, "oracle": "reference"}
    Bundle(case, {}, engines, Comparison()).save(corpus / "bundles" / "b")


def test_a_bug_is_bundled_when_found_and_kept_when_its_stuck_shrink_is_killed(tmp_path, campaigns):
    report = tmp_path / "report"
    process = campaigns("--engine", HANGS, "--time", "10m", "--shrink-time", "10m", "--report", str(report))
    [bundle] = _wait_for(lambda: _bundles(report / "bundles"), 60)
    _wait_for((tmp_path / "hanging").exists, 60)  # the shrink is stuck, not about to start
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=STOP_SECONDS + 15) == 130
    found = _report(report)
    assert [d["bundle"] for d in found["summary"]["disagreements"]] == [str(bundle)]
    assert Bundle.load(bundle).comparison.verdict == "disagree"
    assert [c["shrunk"] for c in found["cases"] if c["bundle"]] == [False]  # as found


def test_ctrl_c_ends_a_shrink_at_its_next_case_and_its_bundle_is_counted_once(tmp_path, campaigns):
    report = tmp_path / "report"
    process = campaigns("--engine", CRAWLS, "--time", "10m", "--shrink-time", "10m", "--report", str(report))
    [bundle] = _wait_for(lambda: _bundles(report / "bundles"), 60)
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=STOP_SECONDS - 10) == 130  # not killed after the grace
    found = _report(report)
    assert [d["bundle"] for d in found["summary"]["disagreements"]] == [str(bundle)]
    assert [c["shrunk"] for c in found["cases"] if c["bundle"]] == [True]
    assert Bundle.load(bundle).comparison.verdict == "disagree"
    assert _bundles(report / "bundles") == [bundle]


def test_seed_5s_first_disagreement_takes_long_to_shrink(tmp_path):
    """What gives the Ctrl-C and time budget tests their power: at 5 s a case (CRAWLS), the
    shrink, left alone, would outlast both Ctrl-C's grace and the time budget."""
    budget = Budget(examples=1)
    options = {"refusals": True}  # a campaign's (DEFAULT_STRATEGY_OPTIONS); 5000: seed 5's shard 0
    hunter = Hunter(
        PerturbedEngine(), ReferenceEngine(), {}, budget, 5000, tmp_path, None, lambda r: None, options
    )
    hunter.hunt()
    assert hunter.count - budget.generated >= 10


def test_a_shrink_ends_with_the_time_budget(tmp_path, campaigns):
    report = tmp_path / "report"
    started = time.monotonic()
    process = campaigns("--engine", CRAWLS, "--time", "20s", "--shrink-time", "10m", "--report", str(report))
    assert process.wait(timeout=40) == 1
    assert time.monotonic() - started < 35
    [disagreement] = _report(report)["summary"]["disagreements"]
    assert Bundle.load(disagreement["bundle"]).comparison.verdict == "disagree"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_campaign_signalled_while_it_starts_still_writes_its_report(tmp_path, campaigns, signum):
    report, corpus = tmp_path / "report", tmp_path / "corpus"
    _agreeing_corpus(corpus)  # replayed first, by an engine that takes its time to start
    process = campaigns("--engine", SLOW, "--examples", "5", "--report", str(report), "--corpus", str(corpus))
    _wait_for(lambda: (report / ".lock").exists(), 60)
    time.sleep(0.5)
    os.killpg(process.pid, signum)
    assert process.wait(timeout=15) == 130
    summary = _report(report)["summary"]
    assert summary["interrupted"] and summary["cases"] == 0


def test_a_directory_in_use_by_a_campaign_is_refused_to_another(tmp_path, campaigns):
    report, corpus = tmp_path / "report", tmp_path / "corpus"
    first = campaigns("--engine", RENAMED, "--time", "5m", "--report", str(report), "--corpus", str(corpus))
    _wait_for(lambda: (report / ".lock").exists() and (corpus / ".lock").read_text().strip(), 60)
    for args, busy in (
        (["--report", str(report)], report),
        (["--report", str(tmp_path / "other"), "--corpus", str(corpus)], corpus),
    ):
        second = campaigns("--engine", RENAMED, "--examples", "1", *args)
        assert second.wait(timeout=60) == 2
        assert f"{busy} is in use by another campaign (pid {first.pid})" in second.output.read_text()
    os.killpg(first.pid, signal.SIGINT)
    assert first.wait(timeout=60) == 130


def test_an_earlier_report_and_its_bundles_are_moved_aside_and_a_corpus_stays(tmp_path, capsys):
    report, corpus = tmp_path / "report", tmp_path / "corpus"
    (report / "bundles" / "old").mkdir(parents=True)
    for name in ("report.json", "junit.xml", "report.html", "bundles/old/bundle.json"):
        (report / name).write_text(f"earlier {name}")
    _agreeing_corpus(corpus)
    fuzz = ["fuzz", "--engine", RENAMED, "--against", "reference", "--examples", "3"]
    assert main([*fuzz, "--report", str(report), "--corpus", str(corpus)]) == 0
    [earlier] = (report / "earlier").iterdir()
    for name in ("report.json", "junit.xml", "report.html", "bundles/old/bundle.json"):
        assert (earlier / name).read_text() == f"earlier {name}"
    assert f"moved to {earlier}" in capsys.readouterr().out
    assert not (report / "bundles").exists()  # this campaign's bundles are the corpus's
    assert _report(report)["summary"]["settings"]["report"] == str(report)

    # A corpus that is the report directory too keeps its bundles; its earlier report goes.
    assert main([*fuzz, "--report", str(corpus), "--corpus", str(corpus)]) == 0
    assert main([*fuzz, "--report", str(corpus), "--corpus", str(corpus)]) == 0
    [earlier] = (corpus / "earlier").iterdir()
    assert sorted(p.name for p in earlier.iterdir()) == ["junit.xml", "report.html", "report.json"]
    assert _bundles(corpus / "bundles") == [corpus / "bundles" / "b"]


@pytest.mark.parametrize("where", [["--jobs", "1"], ["--shard", "0/1"]], ids=["jobs", "dask"])
def test_a_corpus_run_again_bundles_no_bug_it_holds_already(tmp_path, where):
    corpus = tmp_path / "corpus"
    fuzz = [*SHORT_SHRINKS, *where, "--corpus", str(corpus)]
    assert main([*fuzz, "--seed", "3", "--report", str(tmp_path / "first")]) == 1
    [bundle] = _bundles(corpus / "bundles")
    assert main([*fuzz, "--seed", "4", "--report", str(tmp_path / "second")]) == 1
    assert _bundles(corpus / "bundles") == [bundle]
    [again] = _report(tmp_path / "second")["summary"]["disagreements"]
    assert again["corpus"] and again["bundle"] == str(bundle)


def test_bundle_paths_are_absolute_though_the_directories_are_given_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fuzz = [*SHORT_SHRINKS, "--report", "report", "--corpus", "corpus"]
    assert main([*fuzz, "--seed", "3"]) == 1
    [bundle] = _bundles(tmp_path / "corpus" / "bundles")
    assert main([*fuzz, "--seed", "4"]) == 1
    found = _report(tmp_path / "report")
    assert [d["bundle"] for d in found["summary"]["disagreements"]] == [str(bundle)]
    assert [c["bundle"] for c in found["cases"] if c["bundle"]] == [str(bundle)]


VERBOSE = "test-verbose-hunt"
settings.register_profile(
    VERBOSE,
    settings.get_profile(HYPOTHESIS_PROFILE),
    verbosity=Verbosity.verbose,
    max_examples=2,
    report_multiple_bugs=True,
)


def test_a_hypothesis_profile_named_in_the_environment_sets_the_hunt_but_not_its_mechanics(
    tmp_path, monkeypatch, capsys
):
    def hunt():
        hunter = Hunter(
            RenamedReference(), ReferenceEngine(), {}, Budget(examples=2), 0, tmp_path, None, print, {}
        )
        hunter.hunt()
        return capsys.readouterr().out

    assert "Trying example" not in hunt()
    monkeypatch.setenv(PROFILE_VARIABLE, VERBOSE)
    assert "Trying example" in hunt()
    chosen = hunt_settings(database=None)
    assert chosen.verbosity == Verbosity.verbose
    assert (chosen.max_examples, chosen.report_multiple_bugs, chosen.database) == (CHUNK, False, None)


def test_a_hypothesis_profile_no_one_registered_is_refused_before_any_case(monkeypatch, capsys):
    monkeypatch.setenv(PROFILE_VARIABLE, "no-such-profile")
    assert main(["fuzz", "--engine", RENAMED, "--against", "reference", "--examples", "1"]) == 2
    assert f"{PROFILE_VARIABLE}='no-such-profile': no Hypothesis profile" in capsys.readouterr().err
