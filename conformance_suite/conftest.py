"""The suite's fixtures and hooks: loaded only where pytest collects the suite, so that the
options plugin.py adds to every session stay inert everywhere else.

- ``suite``: the session's engines, made once and closed at the end (session.Suite);
- ``check_feature``: a test's check of its feature (check.check), under the test's name;
- the xfails file's known gaps marked xfail, not strict: a known gap that passed is listed at
  the end of the run, and the run stays green, since a Hypothesis search that passed may only
  have missed the gap this time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .session import Suite, SuiteOptions

SUITE_DIRECTORY = Path(__file__).parent
OPTIONS = pytest.StashKey[SuiteOptions]()
UNMATCHED_GAPS = pytest.StashKey[list]()  # names in the xfails file that no test of the suite has


def in_suite(item) -> bool:
    return SUITE_DIRECTORY in Path(item.path).parents


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect: every known gap is matched
def pytest_collection_modifyitems(config, items):
    suite_items = [item for item in items if in_suite(item)]
    if not suite_items:
        return
    options = SuiteOptions.from_config(config)
    config.stash[OPTIONS] = options
    known = set(options.known_gaps)
    for item in suite_items:
        if item.name in known:
            reason = f"a known gap of {options.engine} ({options.xfails_file})"
            item.add_marker(pytest.mark.xfail(reason=reason, strict=False))
    names = {item.name for item in suite_items}
    config.stash[UNMATCHED_GAPS] = [name for name in options.known_gaps if name not in names]


def pytest_terminal_summary(terminalreporter, config):
    options = config.stash.get(OPTIONS, None)
    if options is None or not options.known_gaps:
        return
    passed = [report.nodeid for report in terminalreporter.stats.get("xpassed", [])]
    if passed:
        terminalreporter.section("known gaps that passed")
        terminalreporter.line(
            f"{options.xfails_file} lists them, and they passed this time; where the engine now "
            "models them, take them off the list:"
        )
        for nodeid in passed:
            terminalreporter.line(f"  {nodeid}")
    unmatched = config.stash[UNMATCHED_GAPS]
    if unmatched:
        terminalreporter.section("known gaps that name no test")
        terminalreporter.line(f"{options.xfails_file} lists names that no collected test of the suite has:")
        for name in unmatched:
            terminalreporter.line(f"  {name}")


@pytest.fixture(scope="session")
def suite(request):
    from harness.errors import HarnessError

    try:
        started = Suite(request.config.stash[OPTIONS])
    except HarnessError as e:
        pytest.fail(f"the conformance suite cannot start its engines: {e}", pytrace=False)
    yield started
    started.close()


@pytest.fixture
def check_feature(suite, request):
    from .check import check

    return lambda feature: check(suite, feature, request.node.name)
