"""run_campaign's one event loop, on the normal path and after Ctrl-C, with engines that claim
nothing about Caffe."""

import pytest

from harness.campaign.fuzz import CampaignFailed, CampaignOptions, run_campaign
from tests.harness.fake_engines import RenamedReference

RENAMED = "tests.harness.fake_engines:RenamedReference"


class BrokenEngine(RenamedReference):
    """Fails on every case, as a harness bug would."""

    name = "broken"

    def run(self, case):
        raise RuntimeError("broken engine")


class Progress:
    """Records what the campaign shows; ``interrupt_at``: the record on which Ctrl-C comes."""

    def __init__(self, interrupt_at=None):
        self.records, self.notes, self.interrupt_at = [], [], interrupt_at

    def update(self, record):
        self.records.append(record)
        if len(self.records) == self.interrupt_at:
            raise KeyboardInterrupt

    def note(self, text):
        self.notes.append(text)

    def close(self):
        pass


def test_every_shard_is_heard_until_it_is_done():
    progress = Progress()
    records, interrupted = run_campaign(
        CampaignOptions(under_test=RENAMED, oracle="reference", examples=6, jobs=2), progress
    )
    assert not interrupted and len(records) == 6 and progress.records == records
    assert {r.name.split("-")[0] for r in records} == {"seed0", "seed1"}


class InterruptedOnceBothShardsRun(Progress):
    """Ctrl-C on the first record after both shards have sent one: both are running then."""

    def update(self, record):
        self.records.append(record)
        if self.interrupt_at is None and len({r.name.split("-")[0] for r in self.records}) == 2:
            self.interrupt_at = len(self.records)
            raise KeyboardInterrupt


def test_after_ctrl_c_the_records_are_kept_and_the_shards_stop():
    progress = InterruptedOnceBothShardsRun()
    records, interrupted = run_campaign(
        CampaignOptions(under_test=RENAMED, oracle="reference", examples=400, jobs=2), progress
    )
    assert interrupted
    assert any(n.startswith("interrupted:") for n in progress.notes)
    # A shard between two cases at Ctrl-C has none in flight to hand over: at least the
    # records seen are kept, and the shards stop long before their 400 cases.
    assert progress.interrupt_at <= len(records) < 400 and progress.records == records


def test_a_shard_that_fails_fails_the_campaign_with_its_traceback():
    progress = Progress()
    with pytest.raises(CampaignFailed, match="broken engine") as failure:
        run_campaign(
            CampaignOptions(under_test=f"{__name__}:BrokenEngine", oracle="reference", examples=2, jobs=2),
            progress,
        )
    assert not failure.value.interrupted
    assert sorted(n.split(" failed")[0] for n in progress.notes) == ["shard 0", "shard 1"]
