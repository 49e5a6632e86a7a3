"""Campaigns on a Dask cluster of real processes on 127.0.0.1 (`dask scheduler`, `dask worker`,
tests/dask_processes.py) against real Caffe: every slice runs once and is counted once, a
worker whose Caffe runtime is not ready says why and takes none, and a worker SIGKILLed with
slices in flight loses no case and no bundle (Dask runs its slices again elsewhere)."""

import os
import signal
import threading
import time
from collections import Counter
from dataclasses import replace

import pytest

from harness.campaign.bundle import Bundle
from harness.campaign.fuzz import CampaignFailed, CampaignOptions, run_campaign
from harness.campaign.report import write_report
from tests.dask_processes import dask_processes

PERTURBED = "tests.harness.fake_engines:PerturbedEngine"


class Progress:
    """What the campaign shows, kept."""

    def __init__(self):
        self.records, self.notes = [], []

    def update(self, record):
        self.records.append(record)

    def note(self, text):
        self.notes.append(text)

    def close(self):
        pass


@pytest.fixture
def cluster(caffe_runtime, tmp_path):
    with dask_processes(tmp_path / "dask", workers=2) as processes:
        yield processes


def generated_per_slice(records) -> Counter:
    return Counter(r.slice for r in records if not r.shrinking)


def test_a_campaign_on_two_workers_runs_each_slice_once_against_real_caffe(cluster, tmp_path):
    cluster.add_worker({"CAFFE_CONFORMANCE_ROOTFS": str(tmp_path / "no-rootfs")})
    cluster.wait_for_workers(3)
    progress = Progress()
    options = CampaignOptions(examples=200, slice_examples=50, seed=11, cluster=cluster.address)
    records, interrupted = run_campaign(replace(options, report_dir=tmp_path / "report"), progress)

    assert not interrupted
    # Shown as slices finished, reported in order of slice.
    assert sorted(r.name for r in progress.records) == sorted(r.name for r in records)
    assert generated_per_slice(records) == {0: 50, 1: 50, 2: 50, 3: 50}
    assert len({r.name for r in records}) == len(records)
    bundles = [r for r in records if r.bundle]
    assert not bundles, "\n".join(
        f"{r.summary}\n  replay: caffe-conformance replay {r.bundle}" for r in bundles
    )
    assert {"ok", "refused"} <= {r.outcomes["caffe"] for r in records}
    # The worker without a root file system said why, and ran no slice: one would have failed
    # the campaign, for that worker holds no engines.
    unready = [n for n in progress.notes if "takes no slices" in n]
    assert len(unready) == 1 and "no-rootfs is not a usable root file system" in unready[0], progress.notes
    summary = write_report(tmp_path / "report", records, interrupted, {"seed": options.seed})
    assert summary["cases"] == 200 and summary["verdicts"].get("disagree", 0) == 0


def test_workers_killed_with_slices_in_flight_lose_no_case_and_no_bundle(cluster, tmp_path):
    """One worker SIGKILLed: the other runs its slices. Then that one too: the slices wait for
    a worker that joins later."""
    from distributed import Client

    options = CampaignOptions(
        under_test=PERTURBED,
        examples=48,
        slice_examples=8,
        seed=12,
        shrink_attempts=10,
        cluster=cluster.address,
        report_dir=tmp_path / "report",
    )
    outcome = {}

    def campaign():
        outcome["result"] = run_campaign(options, Progress())

    runner = threading.Thread(target=campaign)
    with Client(cluster.address) as client:
        pids = client.run(os.getpid)
        runner.start()
        for worker, pid in pids.items():
            _wait_for_a_slice_on(client, worker)
            os.kill(pid, signal.SIGKILL)
        cluster.add_worker()
        runner.join(timeout=120)
    assert not runner.is_alive() and "result" in outcome, cluster.logs()
    records, interrupted = outcome["result"]

    assert not interrupted
    assert generated_per_slice(records) == {index: 8 for index in range(6)}
    assert len({r.name for r in records}) == len(records)
    # Every slice found the bug, each bundled it; the client kept one bundle, the first slice's.
    bundled = [r for r in records if r.bundle]
    assert [r.slice for r in bundled] == [0] and bundled[0].signature.startswith("loss:")
    on_disk = sorted(p.name for p in (tmp_path / "report" / "bundles").iterdir())
    assert on_disk == [os.path.basename(bundled[0].bundle)]
    assert Bundle.load(bundled[0].bundle).comparison.verdict == "disagree"


def _wait_for_a_slice_on(client, worker: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not any(str(key).startswith("slice-") for key in client.processing([worker])[worker]):
        assert time.monotonic() < deadline, f"{worker} was given no slice within {timeout_s:.0f} s"
        time.sleep(0.02)


def test_a_scheduler_that_goes_away_ends_the_campaign_with_what_finished(cluster, tmp_path):
    class KillsTheScheduler(Progress):
        def update(self, record):
            super().update(record)
            if len(self.records) == 1:  # a slice has finished
                os.kill(cluster.scheduler.pid, signal.SIGKILL)

    options = CampaignOptions(examples=400, slice_examples=50, seed=13, cluster=cluster.address)
    with pytest.raises(CampaignFailed, match=f"the Dask scheduler at {cluster.address} went away") as failure:
        run_campaign(replace(options, report_dir=tmp_path / "report"), KillsTheScheduler())
    finished = generated_per_slice(failure.value.records)
    assert finished and set(finished.values()) == {50} and len(finished) < 8
    assert f"the report holds the {len(finished)} slice(s) that finished" in str(failure.value)
