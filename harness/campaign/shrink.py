"""The shrink of one disagreement: which bug it follows, since when, and the smallest failing
case Hypothesis has found for it so far."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.campaign.compare import Comparison
from harness.case import Case, Result

if TYPE_CHECKING:
    from harness.campaign.fuzz import CaseRecord


@dataclass(frozen=True)
class ShrinkLimit:
    """When a shrink stops: after ``attempts`` cases when given (the same on every machine),
    else after ``seconds``."""

    seconds: float
    attempts: int | None = None


@dataclass
class Shrink:
    signature: str  # the bug followed: only cases with this signature count as failing
    started: float  # time.monotonic() when its first case failed
    attempts_base: int  # the hunter's count of executed cases then
    limit: ShrinkLimit
    # The latest failing case and what it gave: Hypothesis replays its smallest one last, so
    # once it is done this is the minimal case (or, if the shrink was spent, the latest found).
    case: Case
    comparison: Comparison
    results: dict[str, Result]
    record: CaseRecord

    def spent(self, executed: int) -> bool:
        """Whether the shrink is over, ``executed`` being the hunter's count of cases now."""
        if self.limit.attempts is not None:
            return executed - self.attempts_base >= self.limit.attempts
        return time.monotonic() - self.started > self.limit.seconds

    def failed_again(
        self, case: Case, comparison: Comparison, results: dict[str, Result], record: CaseRecord
    ) -> None:
        """A smaller case with the same signature: it is now the one to bundle."""
        self.case, self.comparison, self.results, self.record = case, comparison, results, record
