"""Engines for the campaign fault tests (test_campaign_faults.py); they claim nothing about Caffe."""

import os
import time
from pathlib import Path

from tests.harness.fake_engines import PerturbedEngine, RenamedReference


class SlowOnceItDisagrees(PerturbedEngine):
    """Disagrees (PerturbedEngine) on its first case with a loss, then takes ``seconds`` over
    every case: the shrink of that disagreement crawls, for minutes."""

    name = "slow-once-it-disagrees"
    seconds = 5.0

    def __init__(self):
        super().__init__()
        self.disagreed = False

    def run(self, case):
        if self.disagreed:
            time.sleep(self.seconds)
        result = super().run(case)
        self.disagreed = self.disagreed or bool(result.losses)
        return result


class HangsOnceItDisagrees(SlowOnceItDisagrees):
    """Disagrees on its first case with a loss, then never answers again: the shrink of that
    disagreement is stuck on its first case. It touches $HANGING_MARKER as it starts to hang,
    so that a test signals a shrink that is stuck, not one about to start."""

    name = "hangs-once-it-disagrees"
    seconds = 3600.0

    def run(self, case):
        if self.disagreed and "HANGING_MARKER" in os.environ:
            Path(os.environ["HANGING_MARKER"]).touch()
        return super().run(case)


class SlowToStart(RenamedReference):
    """Takes seconds to start, so that a campaign is still starting when it is signalled."""

    name = "slow-to-start"

    def __init__(self):
        time.sleep(20)
        super().__init__()
