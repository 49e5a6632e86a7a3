"""A campaign's shards (fuzz --shard I/N) merged (merge.py) are the report a single run of the
whole campaign writes, record for record and bundle for bundle, whichever way each ran: on
`dask scheduler` and `dask worker` processes (--cluster) or on a LocalCluster of its own.
With engines that claim nothing about Caffe: a loss 1% off, so that every slice bundles."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from harness.campaign.fuzz import CampaignOptions, run_campaign
from harness.campaign.merge import merge_reports
from harness.campaign.report import write_report
from harness.errors import HarnessError
from tests.dask_processes import dask_processes

PERTURBED = "tests.harness.fake_engines:PerturbedEngine"
CAMPAIGN = CampaignOptions(
    under_test=PERTURBED, oracle="reference", examples=30, slice_examples=10, seed=7, shrink_attempts=30
)


class QuietProgress:
    def update(self, record):
        pass

    def note(self, text):
        pass

    def close(self):
        pass


def fuzz(options: CampaignOptions, report: Path) -> dict:
    """The campaign, reported as `caffe-conformance fuzz` reports it (its settings, by flag)."""
    options = replace(options, report_dir=report)
    records, interrupted = run_campaign(options, QuietProgress())
    settings = {
        "engine": options.under_test,
        "against": options.oracle,
        "examples": options.examples,
        "seed": options.seed,
        "shard": list(options.shard) if options.shard else None,
        "cluster": options.cluster,
        "report": str(report),
    }
    write_report(report, records, interrupted, settings)
    return json.loads((report / "report.json").read_text())


def comparable(report: dict) -> list[dict]:
    """Its records without what a rerun changes: the engines' seconds, where bundles were written."""
    return [
        {**case, "seconds": None, "bundle": case["bundle"] and Path(case["bundle"]).name}
        for case in report["cases"]
    ]


def bundle_files(report_dir: Path) -> dict[str, bytes]:
    """Every bundle's case and comparison (its results hold the engines' seconds)."""
    bundles = report_dir / "bundles"
    return {
        str(p.relative_to(bundles)): p.read_bytes()
        for p in sorted(bundles.rglob("*"))
        if p.is_file() and "results" not in p.parts
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with dask_processes(tmp_path_factory.mktemp("dask"), workers=2) as processes:
        yield processes


def test_the_merged_shards_are_the_single_run(cluster, tmp_path):
    single = fuzz(replace(CAMPAIGN, cluster=cluster.address), tmp_path / "single")
    fuzz(replace(CAMPAIGN, cluster=cluster.address, shard=(0, 2)), tmp_path / "shard0")
    fuzz(replace(CAMPAIGN, shard=(1, 2)), tmp_path / "shard1")  # on a LocalCluster of its own
    summary = merge_reports([tmp_path / "shard1", tmp_path / "shard0"], tmp_path / "merged")
    merged = json.loads((tmp_path / "merged" / "report.json").read_text())

    assert summary["cases"] == single["summary"]["cases"] == CAMPAIGN.examples
    assert comparable(merged) == comparable(single)
    assert [r["slice"] for r in single["cases"] if not r["shrinking"]] == [0] * 10 + [1] * 10 + [2] * 10
    # Every slice found the bug; the bundle kept is the first slice's, in both.
    assert [d["bundle"] for d in single["summary"]["disagreements"]] == [
        str(tmp_path / "single" / "bundles" / name) for name in sorted(bundle_names(tmp_path / "single"))
    ]
    assert bundle_files(tmp_path / "merged") == bundle_files(tmp_path / "single") != {}
    assert [d["bundle"] for d in merged["summary"]["disagreements"]] == [
        str(tmp_path / "merged" / "bundles" / name) for name in sorted(bundle_names(tmp_path / "single"))
    ]
    assert "<svg" in (tmp_path / "merged" / "report.html").read_text()


def bundle_names(report_dir: Path) -> list[str]:
    return [p.name for p in (report_dir / "bundles").iterdir()]


def shard_report(directory: Path, shard, **settings) -> Path:
    write_report(directory, [], False, {"seed": 7, "examples": 30, "shard": shard, **settings})
    return directory


def test_merge_refuses_reports_that_are_not_each_shard_of_one_campaign_once(tmp_path):
    half = shard_report(tmp_path / "a", [0, 2])
    with pytest.raises(HarnessError, match=r"differ in seed \(7 vs\. 8\)"):
        merge_reports([half, shard_report(tmp_path / "b", [1, 2], seed=8)], tmp_path / "out")
    with pytest.raises(HarnessError, match=r"shards 0/2: expected each of 0/2 to 1/2 once"):
        merge_reports([half], tmp_path / "out")
    with pytest.raises(HarnessError, match=r"shards 0/2, 0/2"):
        merge_reports([half, shard_report(tmp_path / "c", [0, 2])], tmp_path / "out")
    with pytest.raises(HarnessError, match="one is a whole campaign"):
        merge_reports([half, shard_report(tmp_path / "d", None)], tmp_path / "out")
    with pytest.raises(HarnessError, match="cannot read"):
        merge_reports([half, tmp_path / "nowhere"], tmp_path / "out")
