"""The conformance suite's command-line options, and nothing else.

pytest loads this module in every session of an environment that has the package installed
(a pytest11 entry point, pyproject.toml): pytest parses the command line before it collects
anything, so options that a conftest inside a package collected by ``--pyargs`` adds come too
late. Options are all it adds; the suite's fixtures and hooks are in conftest.py, which pytest
loads only when it collects the suite, so another project's tests run as if it were absent.
Without the entry point (PYTEST_DISABLE_PLUGIN_AUTOLOAD), ``-p conformance_suite.plugin``.
"""

from __future__ import annotations

import argparse

WORKING_DIRECTORY = ".caffe-conformance"  # under the directory pytest runs in
DEFAULT_MAX_EXAMPLES = 50


def positive_integer(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be at least 1")
    return value


def pytest_addoption(parser):
    group = parser.getgroup("caffe-conformance", "the conformance suite (pytest --pyargs conformance_suite)")
    group.addoption(
        "--engine",
        default=None,
        metavar="MODULE:CLASS",
        help="the engine under test: package.module:Class, or a registered name (reference, opencv)",
    )
    group.addoption(
        "--against",
        default="caffe",
        choices=("caffe", "reference"),
        help="the oracle: real Caffe, or the reference engine (default: caffe)",
    )
    # Checked against the runtime registry when the suite starts: importing it here would
    # cost every pytest session of the environment.
    group.addoption(
        "--runtime",
        default=None,
        metavar="NAME",
        help="how real Caffe is started, as for caffe-conformance's --runtime (default: rootfs)",
    )
    group.addoption(
        "--xfails",
        default=None,
        metavar="FILE",
        help="the engine's known gaps: test names, one a line, # for comments; each is marked xfail",
    )
    group.addoption(
        "--max-examples",
        type=positive_integer,
        default=DEFAULT_MAX_EXAMPLES,
        metavar="N",
        help=f"cases each test generates, besides those replayed (default: {DEFAULT_MAX_EXAMPLES})",
    )
    group.addoption(
        "--bundles",
        default=f"{WORKING_DIRECTORY}/bundles",
        metavar="DIR",
        help=f"where a failing test's shrunk case is bundled (default: {WORKING_DIRECTORY}/bundles)",
    )
    group.addoption(
        "--example-db",
        default=f"{WORKING_DIRECTORY}/examples",
        metavar="DIR",
        help=f"Hypothesis's example database: failures replayed first (default: {WORKING_DIRECTORY}/examples)",
    )
