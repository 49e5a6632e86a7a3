"""report.html: the run in tables first, then one section per signature (what it says, its
replay command, its net's picture, its mismatches read from the bundle), and one legend for
all the pictures."""

import json
import re
from datetime import UTC, datetime

from harness.campaign.bundle import Bundle
from harness.campaign.compare import Comparison, Mismatch
from harness.campaign.fuzz import CaseRecord
from harness.campaign.report import write_report
from harness.case import Case
from harness.explain.explain import explain
from harness.explain.graph import to_dot
from harness.versions import tool_version
from tests.harness.test_bundle import COMPARISON, ENGINES, NET

OUTCOME = Comparison([Mismatch("outcome", None, "outcomes differ: reference=ok caffe=aborted")])
SETTINGS = {"engine": "reference", "against": "caffe", "runtime": "rootfs", "examples": 6, "seed": 7}


def record(number, verdict="agree", **fields):
    return CaseRecord(
        f"seed7-case{number}",
        verdict,
        f"{verdict} summary",
        {"reference": 0.01},
        ["ReLU"],
        {"reference": "ok", "caffe": "aborted" if verdict == "disagree" else "ok"},
        **fields,
    )


def campaign(tmp_path) -> list[CaseRecord]:
    forward = Bundle(Case(NET), {}, ENGINES, COMPARISON).save(tmp_path / "bundles" / "loss---seed7-1")
    outcome = Bundle(Case(NET), {}, ENGINES, OUTCOME).save(tmp_path / "bundles" / "outcome---seed7-2")
    return [
        record(1),
        record(2, "disagree", signature="loss:-"),
        record(3, "disagree", signature="loss:-"),
        record(4, "disagree", shrinking=True, signature="loss:-", bundle=str(forward)),
        record(5, "disagree", signature="outcome:-"),
        record(6, "disagree", shrinking=True, signature="outcome:-", bundle=str(outcome)),
        record(7, "precision", precision={"precision": "float32", "evidence": {"float64": "1e-9"}}),
        record(8, "skipped"),
    ]


def written(tmp_path) -> str:
    started = datetime(2030, 1, 2, 3, 0, tzinfo=UTC)
    ended = datetime(2030, 1, 2, 3, 1, 30, tzinfo=UTC)
    write_report(tmp_path / "report", campaign(tmp_path), False, SETTINGS, started, ended)
    return (tmp_path / "report" / "report.html").read_text()


def table(page: str, css_class: str) -> str:
    return re.search(rf'<table class="{css_class}">.*?</table>', page, re.DOTALL).group(0)


def sections(page: str) -> list[str]:
    return re.findall(r'<section class="signature".*?</section>', page, re.DOTALL)


def test_the_summary_is_tables_first(tmp_path):
    page = written(tmp_path)
    assert page.index('<table class="run">') < page.index('<section class="signature"')
    run = table(page, "run")
    for key, value in [
        ("under test", "reference"),
        ("oracle", "caffe"),
        ("Caffe", "master (runtime rootfs)"),
        ("caffe-conformance", tool_version()),
        ("seed", "7"),
        ("started", "2030-01-02 03:00:00 UTC"),
        ("duration", "1:30"),
    ]:
        assert f"<tr><th scope=row>{key}</th><td>{value}</td></tr>" in run, key
    verdicts = table(page, "verdicts")
    for verdict, count in [("agree", 1), ("disagree", 3), ("precision", 1), ("skipped", 1)]:
        assert f"<td>{verdict}</td><td class=number>{count}</td>" in verdicts
    assert "<td>bundles of disagreements</td><td class=number>2</td>" in verdicts
    assert "<td>float32</td><td class=number>1</td>" in table(page, "precision")
    assert "<td>caffe</td><td class=number>3</td><td class=number>3</td>" in table(page, "outcomes")
    assert "<td>ReLU</td><td class=number>6</td>" in table(page, "layer-types")
    assert '{"' not in page  # no raw JSON


def test_each_signature_has_its_section_with_picture_replay_and_mismatches(tmp_path):
    page = written(tmp_path)
    forward, outcome = sections(page)
    assert "<h3>loss:-</h3>" in forward and "2 disagreeing cases" in forward
    assert f"caffe-conformance replay {tmp_path / 'bundles' / 'loss---seed7-1'}" in forward
    assert "<svg" in forward and "first divergence" in forward  # ip, the first layer blamed
    mismatches = table(forward, "mismatches")
    assert "<td>forward</td><td>ip</td>" in mismatches and "<td>0.5</td>" in mismatches
    assert "<h3>outcome:-</h3>" in outcome and "<svg" in outcome and "first divergence" not in outcome


def test_the_page_has_one_legend_and_its_pictures_none(tmp_path):
    page = written(tmp_path)
    assert page.count("<title>cluster_legend</title>") == 1
    assert page.count('<figure class="legend">') == 1
    assert all("cluster_legend" not in section for section in sections(page))
    data = explain(NET)
    assert "cluster_legend" in to_dot(data) and "cluster_legend" not in to_dot(data, legend=False)


def test_report_json_records_when_the_campaign_started_and_how_long_it_ran(tmp_path):
    written(tmp_path)
    summary = json.loads((tmp_path / "report" / "report.json").read_text())["summary"]
    assert summary["started"] == "2030-01-02T03:00:00+00:00" and summary["duration_s"] == 90.0
    assert summary["engines"] == {
        "under_test": "reference",
        "oracle": "caffe",
        "caffe": {"runtime": "rootfs", "version": "master"},
    }
