"""A Shrink: when it is spent, and which failing case it keeps."""

import time

from harness.campaign.compare import Comparison, Mismatch
from harness.campaign.fuzz import CaseRecord
from harness.campaign.shrink import Shrink, ShrinkLimit
from harness.case import Case

NET = 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 } } }\n'


def record(name):
    return CaseRecord(name, "disagree", "loss", {}, ["Input"], {}, signature="loss:-")


def shrink(limit, started=None):
    comparison = Comparison([Mismatch("loss", None, "forward loss")])
    return Shrink(
        "loss:-",
        time.monotonic() if started is None else started,
        10,
        limit,
        Case(NET),
        comparison,
        {},
        record("first"),
    )


def test_a_shrink_with_attempts_is_spent_after_that_many_cases_whatever_the_time():
    s = shrink(ShrinkLimit(seconds=0.0, attempts=3), started=time.monotonic() - 1e6)
    assert not s.spent(12)
    assert s.spent(13)


def test_a_shrink_without_attempts_is_spent_by_the_clock():
    assert not shrink(ShrinkLimit(seconds=60.0)).spent(10**6)
    assert shrink(ShrinkLimit(seconds=60.0), started=time.monotonic() - 61).spent(11)


def test_a_case_that_fails_again_is_the_one_kept():
    s = shrink(ShrinkLimit(seconds=60.0))
    smaller = Case(NET.replace("dim: 1", "dim: 2"))
    again = Comparison([Mismatch("loss", None, "forward loss again")])
    s.failed_again(smaller, again, {}, record("smaller"))
    assert (s.case, s.comparison, s.record.name) == (smaller, again, "smaller")
    assert (s.signature, s.attempts_base) == ("loss:-", 10)
