"""One test of the suite: a Hypothesis search for a case of its feature on which the engine
under test and the oracle disagree, shrunk, bundled, and reported as the test's failure.

The search is Hypothesis's own: the test's example database is replayed first, then new
cases are drawn, and a failing case is shrunk to a minimal one. Its last failing run is
of that minimal case (Hypothesis replays it at the end), and is the one bundled.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from harness.campaign.compare import Comparison, Mismatch
from harness.capabilities import capabilities_of
from harness.case import Case, Result

from .features import Feature, up_to
from .session import Suite


class NonConformance(Exception):
    """Raised inside the Hypothesis test, so that Hypothesis shrinks the case."""


@dataclass(frozen=True)
class Failure:
    case: Case
    comparison: Comparison
    results: dict[str, Result]
    mismatch: Mismatch  # the first, where it fails the feature's test (Feature.failure)
    signature: str  # the bug it stands for, which the shrink keeps


class EngineUpTo:
    """The engine under test as one test sees it: its capabilities end at the test's stage,
    so that the cases drawn, and what run_pair compares, stop there too (a forward test
    compares the layer list and the forward data alone)."""

    def __init__(self, engine, stage: str):
        self.engine, self.name = engine, engine.name
        self.capabilities = up_to(capabilities_of(engine), stage)

    def run(self, case: Case) -> Result:
        return self.engine.run(case)


def check(suite: Suite, feature: Feature, test_name: str) -> None:
    """Run the feature's test: skip it where the engine does not model the feature, fail it
    with the shrunk case's first mismatch, bundled, where the engines disagree."""
    from hypothesis import HealthCheck, Verbosity, given, settings
    from hypothesis.errors import Flaky

    from harness.campaign.fuzz import run_pair, signature

    reason = feature.unsupported(suite.capabilities)
    if reason is not None:
        pytest.skip(reason)
    engine = EngineUpTo(suite.under_test, feature.stage)
    failures: list[Failure] = []

    # Hypothesis's own defaults, not whichever profile is loaded (its "ci" profile has no
    # database), under what the suite rests on.
    @settings(
        settings.get_profile("default"),
        max_examples=suite.options.max_examples,
        database=suite.example_database(test_name),
        deadline=None,  # a case's time is the engines'
        suppress_health_check=list(HealthCheck),  # slow engines, large nets, nets without the type rejected
        report_multiple_bugs=False,  # one failure, one bundle
        print_blob=False,  # the bundle reruns the case
        verbosity=Verbosity.quiet,  # a Case prints as arrays: the bundle and the message say it better
    )
    @given(feature.cases(engine.capabilities))
    def conforms(case):
        comparison, results = run_pair(case, engine, suite.oracle)
        mismatch = feature.failure(comparison, results.get(suite.oracle.name), suite.capabilities)
        if mismatch is None or _precision(suite, case, mismatch, results):
            return
        cause = signature(Comparison([mismatch]), results)
        if failures and cause != failures[0].signature:
            return  # another bug: the shrink follows the first one found (fuzz.signature)
        failures.append(Failure(case, comparison, results, mismatch, cause))
        raise NonConformance(mismatch.message)

    try:
        conforms()
    except (NonConformance, Flaky):
        if not failures:
            raise  # an error of the engines' or the harness's own, which did not recur
    else:
        return
    # Outside the except clause: the message stands alone, not as a second error during the first.
    pytest.fail(_report(suite, test_name, failures[-1]), pytrace=False)


def _precision(suite: Suite, case: Case, mismatch: Mismatch, results: dict[str, Result]) -> bool:
    """Whether the precision triage finds the mismatch to be float32 rounding, not a rule."""
    if suite.triage is None:
        return False
    triage = suite.triage.classify(case, Comparison([mismatch]), results[suite.oracle.name])
    return triage.precision is not None


def _report(suite: Suite, test_name: str, failure: Failure) -> str:
    """The failure's message: the first mismatch, where the bundle is and how to rerun it,
    then the whole comparison and the net (bundle.describe, as diff.txt holds them)."""
    from harness.campaign.bundle import Bundle, describe

    path = suite.bundle_path(test_name)
    Bundle(failure.case, failure.results, suite.engine_roles(), failure.comparison).save(path)
    blamed = f" ({failure.mismatch.layer})" if failure.mismatch.layer else ""
    return "\n".join(
        [
            f"{suite.under_test.name} disagrees with {suite.oracle.name}{blamed}: {failure.mismatch.message}",
            f"bundle: {path}",
            f"rerun:  {suite.replay_command(path)}",
            "",
            describe(failure.comparison, failure.case),
        ]
    )
