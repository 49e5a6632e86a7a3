"""The suite's session: its options checked once, the engines made once, and where the example
database and the bundles go.

Every test reads one ``Suite``: the engine under test and the oracle are started when the
first test needs them and closed when the session ends (conftest.py), so a Caffe worker
starts once, not once a test.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.errors import HarnessError


@dataclass(frozen=True)
class SuiteOptions:
    """The command line's options (plugin.py), checked; paths are absolute."""

    engine: str
    against: str
    runtime: str
    max_examples: int
    bundles: Path
    example_db: Path
    xfails_file: Path | None
    known_gaps: tuple[str, ...]  # test names from the xfails file, in its order

    @classmethod
    def from_config(cls, config) -> SuiteOptions:
        """The options, or a pytest.UsageError that names the one at fault."""
        from harness.engine import load_engine_class
        from harness.engines.runtimes import DEFAULT_RUNTIME, RUNTIMES

        engine, against = config.getoption("--engine"), config.getoption("--against")
        if engine is None:
            raise pytest.UsageError(
                "the conformance suite needs the engine under test: --engine package.module:Class"
            )
        if engine == against:
            raise pytest.UsageError(
                f"--engine={engine} --against={against}: an engine cannot be its own oracle"
            )
        try:
            load_engine_class(engine)
        except HarnessError as e:
            raise pytest.UsageError(f"--engine: {e}") from None
        runtime = config.getoption("--runtime") or DEFAULT_RUNTIME
        if runtime not in RUNTIMES:
            raise pytest.UsageError(f"--runtime={runtime!r}: not a runtime ({', '.join(RUNTIMES)})")
        here = config.invocation_params.dir
        xfails = config.getoption("--xfails")
        xfails_file = (here / xfails).absolute() if xfails else None
        return cls(
            engine=engine,
            against=against,
            runtime=runtime,
            max_examples=config.getoption("--max-examples"),
            bundles=(here / config.getoption("--bundles")).absolute(),
            example_db=(here / config.getoption("--example-db")).absolute(),
            xfails_file=xfails_file,
            known_gaps=read_known_gaps(xfails_file) if xfails_file else (),
        )


def read_known_gaps(path: Path) -> tuple[str, ...]:
    """The test names an xfails file lists: one a line, ``#`` to the end of a line a comment.
    A line may be a whole node id as pytest prints it (``.../test_forward.py::test_forward[Pooling]``):
    its last part, the name, is what is matched."""
    try:
        text = path.read_text()
    except OSError as e:
        raise pytest.UsageError(f"--xfails={str(path)!r}: cannot read it: {e.strerror or e}") from None
    names = []
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            names.append(entry.rsplit("::", 1)[-1])
    return tuple(names)


def file_name(test_name: str) -> str:
    """A test's name as a directory name: test_forward[Pooling] -> test_forward-Pooling."""
    return re.sub(r"[^\w.-]+", "-", test_name).strip("-")


class Suite:
    """The engines and the places a session's tests share."""

    def __init__(self, options: SuiteOptions):
        from harness.campaign.fuzz import CampaignOptions, make_engine
        from harness.campaign.triage import PrecisionTriage
        from harness.capabilities import capabilities_of
        from harness.engines.runtimes import get_runtime

        self.options = options
        if "caffe" in (options.engine, options.against):
            get_runtime(options.runtime).ensure_ready()  # its reason and remedy, not a worker's traceback
        campaign = CampaignOptions(under_test=options.engine, oracle=options.against, runtime=options.runtime)
        self.under_test = make_engine(options.engine, campaign)
        try:
            self.oracle = make_engine(options.against, campaign)
        except BaseException:
            self.under_test.close()
            raise
        if self.under_test.name == self.oracle.name:
            self.close()
            raise HarnessError(f"the engine under test and the oracle share the name {self.oracle.name!r}")
        self.capabilities = capabilities_of(self.under_test)
        # As in a campaign: a reference-like engine's float32 rounding is not a verdict (triage.py).
        self.triage = PrecisionTriage.for_engines(self.under_test, self.oracle)

    def example_database(self, test_name: str):
        """The test's own example database: Hypothesis keys its examples by the test
        function, which one parametrized test shares across its parameters."""
        from hypothesis.database import DirectoryBasedExampleDatabase

        return DirectoryBasedExampleDatabase(str(self.options.example_db / file_name(test_name)))

    def bundle_path(self, test_name: str) -> Path:
        return self.options.bundles / file_name(test_name)

    def engine_roles(self) -> dict[str, str]:
        """Which engine played which role, as a bundle records it."""
        return {"under_test": self.options.engine, "oracle": self.options.against}

    def replay_command(self, bundle: Path) -> str:
        words = ["caffe-conformance", "replay", str(bundle), "--engine", self.options.engine]
        words += ["--against", self.options.against, "--runtime", self.options.runtime]
        return shlex.join(words)

    def close(self) -> None:
        try:
            self.under_test.close()
        finally:
            self.oracle.close()
