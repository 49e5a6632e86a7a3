"""The fuzz, replay and report path end to end, with engines that claim nothing about Caffe:
a pluggable engine (--engine package.module:Class) against the reference engine."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.campaign.bundle import Bundle
from harness.cli import main

PERTURBED = "tests.harness.fake_engines:PerturbedEngine"
RENAMED = "tests.harness.fake_engines:RenamedReference"


def test_a_disagreement_is_shrunk_bundled_reported_and_replayable(tmp_path, capsys):
    report = tmp_path / "report"
    code = main(
        [
            "fuzz",
            "--engine",
            PERTURBED,
            "--against",
            "reference",
            "--examples",
            "15",
            "--seed",
            "3",
            "--report",
            str(report),
        ]
    )
    assert code == 1
    summary = json.loads((report / "report.json").read_text())["summary"]
    assert summary["disagreements"], summary
    bundle = summary["disagreements"][0]["bundle"]
    assert "loss" in summary["disagreements"][0]["summary"]
    suite = ET.parse(report / "junit.xml").getroot()
    assert int(suite.get("failures")) >= 1
    assert "<svg" in (report / "report.html").read_text()
    for name in ("bundle.json", "diff.txt", "replay.sh", "case/net.prototxt", "case/arrays.npz"):
        assert (Path(bundle) / name).exists(), name
    assert Bundle.load(bundle).comparison.summary() == summary["disagreements"][0]["summary"]
    assert main(["replay", bundle, "--engine", PERTURBED, "--against", "reference"]) == 1
    assert "verdict: forward loss" in capsys.readouterr().out


def test_engines_that_agree_exit_zero(tmp_path):
    assert (
        main(
            [
                "fuzz",
                "--engine",
                RENAMED,
                "--against",
                "reference",
                "--examples",
                "10",
                "--report",
                str(tmp_path),
            ]
        )
        == 0
    )
    summary = json.loads((tmp_path / "report.json").read_text())["summary"]
    assert (
        summary["cases"] == 10
        and summary["verdicts"].get("agree", 0) + summary["verdicts"].get("skipped", 0) == 10
    )


def test_usage_errors_exit_two(capsys):
    assert main(["fuzz", "--engine", "reference", "--against", "reference"]) == 2
    assert "cannot be its own oracle" in capsys.readouterr().err
    assert (
        main(["fuzz", "--engine", "no.such.module:Engine", "--against", "reference", "--examples", "1"]) == 2
    )


EXAMPLE = "harness/explain/examples/propagate_down.prototxt"


def test_check_prints_the_verdict_and_the_mismatches_without_the_net(tmp_path, capsys):
    assert (
        main(
            [
                "check",
                EXAMPLE,
                "--engine",
                PERTURBED,
                "--against",
                "reference",
                "--bundle",
                str(tmp_path / "b"),
            ]
        )
        == 1
    )
    out = capsys.readouterr().out
    assert "verdict: forward loss" in out and "\n[loss] forward loss" in out
    assert "net.prototxt" not in out
    assert Bundle.load(tmp_path / "b").comparison.verdict == "disagree"
    assert main(["check", EXAMPLE, "--engine", RENAMED, "--against", "reference", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "agree" and out["mismatches"] == []
