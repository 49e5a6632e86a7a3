"""The fuzz campaign: generate cases, run the engine under test and the oracle, compare,
shrink each new disagreement and write it as a repro bundle.

The hunt is a sequence of Hypothesis runs. In each run the first disagreement of a
kind not yet bundled is bundled as found and starts a Shrink (shrink.py); Hypothesis
shrinks it (other kinds found on the way pass, so the shrink cannot slip to another bug)
and the minimal case replaces the bundle. The next run then hunts for the next kind,
until the budget is spent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, Verbosity, settings

from harness.campaign.compare import Comparison, compare
from harness.campaign.shrink import Shrink, ShrinkLimit
from harness.capabilities import capabilities_of
from harness.case import Case
from harness.engines.memory import DEFAULT_MEMORY_BUDGET  # cheap: no torch
from harness.errors import HarnessError

CHUNK = 25  # examples per Hypothesis run between budget checks
SHRINK_SECONDS = 60.0  # per disagreement; the smallest case found by then is bundled
STOP_SECONDS = 30.0  # after Ctrl-C, for the cases in flight to finish before the shards are killed
# Examples per slice of a sliced campaign (slices.py): a second or two against Caffe, so that a
# slice's trip through Dask (some 15 ms of a worker's time) stays near 1% of it, and a lost
# worker or Ctrl-C loses little. docs/cluster.md sizes it for a scheduler with 100 workers.
SLICE_EXAMPLES = 100
# What a default campaign generates: nets Caffe accepts, and a controlled share it refuses
# (one in ten), so that refusals are compared too.
DEFAULT_STRATEGY_OPTIONS = {"refusals": True}

HYPOTHESIS_PROFILE = "caffe-conformance"
PROFILE_VARIABLE = "CAFFE_CONFORMANCE_HYPOTHESIS_PROFILE"
# The hunt's Hypothesis settings that are not its mechanics (hunt_settings). Its parent is
# Hypothesis's own default profile, not whichever profile is loaded (a test suite's, or the
# "ci" profile Hypothesis loads on a CI machine), so that a campaign's cases depend on its seed.
settings.register_profile(
    HYPOTHESIS_PROFILE,
    settings.get_profile("default"),
    deadline=None,  # a case's time is the engines' (a Caffe worker starting, a case timing out)
    suppress_health_check=list(HealthCheck),  # slow and large draws are a campaign's normal
    print_blob=False,  # a case is rerun from its bundle, not from a Hypothesis blob
    verbosity=Verbosity.quiet,
)


def hunt_settings(database) -> settings:
    """The settings of one Hypothesis run of the hunt: the profile that
    CAFFE_CONFORMANCE_HYPOTHESIS_PROFILE names ("caffe-conformance" when unset), under the
    settings the hunt's mechanics rest on, which no profile changes: CHUNK examples a run (the
    budget is checked between runs), the campaign's example database (``database``), and one
    bug a run (report_multiple_bugs=False: a Shrink follows one signature). The seed is the
    hunt's too (Hunter._hunt_round's @seed).

    A profile named there takes the place of "caffe-conformance" whole, so derive it from
    that one, and register it in a module the campaign imports (an --engine module:Class's
    module is imported before any case runs)::

        settings.register_profile(
            "verbose-hunt", settings.get_profile("caffe-conformance"), verbosity=Verbosity.verbose
        )

    A name no profile has is a HarnessError (preflight asks before any shard starts)."""
    from hypothesis.errors import InvalidArgument

    name = os.environ.get(PROFILE_VARIABLE, HYPOTHESIS_PROFILE)
    try:
        profile = settings.get_profile(name)
    except InvalidArgument:
        raise HarnessError(
            f"{PROFILE_VARIABLE}={name!r}: no Hypothesis profile of that name is registered"
        ) from None
    return settings(profile, max_examples=CHUNK, database=database, report_multiple_bugs=False)


@dataclass
class CaseRecord:
    """One executed case, as the report shows it."""

    name: str
    verdict: str  # "agree", "disagree", "precision" (triage.py), "skipped"
    summary: str
    seconds: dict[str, float]
    layer_types: list[str]
    outcomes: dict[str, str]
    shrinking: bool = False  # not a generated case: a shrink's attempt, or a bundle's case
    bundle: str | None = None  # an absolute path
    # A bundle's case is the shrink's smallest (True), or the case as first found (False): its
    # shard was killed before the shrink ended.
    shrunk: bool = False
    signature: str | None = None
    # A bundle's signature and its blamed layer's fields set away from their defaults in the
    # bundled case (cause()): what tells two bugs of one signature apart once shrunk.
    cause: str | None = None
    precision: dict | None = None  # the triage's class and evidence, where verdict is "precision"
    slice: int | None = None  # the slice that ran it (slices.py); None in a --jobs shard or the corpus


@dataclass
class Budget:
    examples: int | None = None
    seconds: float | None = None
    started: float = field(default_factory=time.monotonic)
    generated: int = 0
    stop_requested: bool = False  # generate no more; a shrink under way still ends as it would
    stop_event: object | None = None  # an Event another process sets to stop everything (Ctrl-C)

    def stopped(self) -> bool:
        """Whether nothing more may run, not even a shrink: stopped (stop_event), or out of time."""
        if self.stop_event is not None and self.stop_event.is_set():
            return True
        return self.seconds is not None and time.monotonic() - self.started >= self.seconds

    def exhausted(self) -> bool:
        """Whether no more case may be generated."""
        if self.stop_requested or (self.examples is not None and self.generated >= self.examples):
            return True
        return self.stopped()


class Disagreement(Exception):
    """Raised inside the Hypothesis test so that it shrinks the case."""


def signature(comparison: Comparison, results: dict) -> str:
    """What makes two disagreements the same bug: the first mismatch's kind and quantity (an
    outcome's message shape among them), and the type and role of the layer it blames, as the
    engines built the net (so a Split layer Caffe inserted has its type). A shrink keeps it:
    only a case with the same signature counts as failing again, so it cannot slip to a
    different quantity or a layer in another role."""
    first = comparison.first
    blamed = "-"
    for result in results.values():
        record = next((r for r in result.layers if r.name == first.layer), None)
        if record is not None:
            blamed = record.type + (" in place" if set(record.tops) & set(record.bottoms) else "")
            break
    return f"{first.kind}:{blamed}:{first.quantity or '-'}"


def bundle_name(signature_: str) -> str:
    """A directory name for a signature's bundle: its kind and blamed type, readable, and a
    digest of the whole signature, which holds spaces and quotes."""
    kind, blamed = signature_.split(":")[:2]
    readable = re.sub(r"[^A-Za-z0-9]+", "-", f"{kind}-{blamed}").strip("-")
    return f"{readable}-{hashlib.sha1(signature_.encode()).hexdigest()[:8]}"


def cause(signature_: str, case: Case, layer: str | None) -> str:
    """The signature and the blamed layer's fields that the case sets away from Caffe's
    defaults: once shrunk, those that matter to the bug ("ReLU ... + relu_param.negative_slope")."""
    fields = set_fields(case, layer) if layer else []
    return signature_ + (" + " + ", ".join(fields) if fields else "")


def set_fields(case: Case, layer: str) -> list[str]:
    """The fields of the case's layer ``layer`` that differ from their defaults, by path."""
    from google.protobuf.text_format import ParseError

    from reference_engine.net import parse_net

    try:
        found = [l for l in parse_net(case.net).layer if l.name == layer]
    except ParseError:  # a net that does not parse names no fields
        return []
    return sorted(_set_paths(found[0], "", skip={"name", "type", "bottom", "top"})) if found else []


def _set_paths(message, prefix: str, skip=frozenset()) -> set[str]:
    paths = set()
    for descriptor, value in message.ListFields():
        if descriptor.name in skip:
            continue
        path = prefix + descriptor.name
        repeated = descriptor.is_repeated
        items = value if repeated else [value]
        if descriptor.message_type is not None:
            for item in items:
                paths |= _set_paths(item, path + ".") or {path}
        elif repeated or value != descriptor.default_value:
            paths.add(path)
    return paths


def run_pair(case: Case, under_test, oracle) -> tuple[Comparison, dict]:
    """Both engines' results on the case, compared; a case outside the capabilities of the
    engine under test (a corpus case drawn for another engine) runs on neither."""
    capabilities = capabilities_of(under_test)
    outside = capabilities.outside(case)
    if outside is not None:
        return Comparison(skipped=f"{under_test.name} does not model this case: {outside}"), {}
    results = {}
    for engine in (under_test, oracle):
        results[engine.name] = engine.run(case)
    if len(results) != 2:
        raise HarnessError(f"engines under test and oracle share the name {under_test.name!r}")
    comparison = compare(results[under_test.name], results[oracle.name], case.params, capabilities.stages)
    return comparison, results


def layer_types_of(case: Case) -> dict[str, str]:
    from reference_engine.net import parse_net

    return {layer.name: layer.type for layer in parse_net(case.net).layer}


class Hunter:
    """One shard of a campaign: its own engines, its own Hypothesis seed."""

    def __init__(
        self,
        under_test,
        oracle,
        engines: dict[str, str],
        budget: Budget,
        seed: int,
        bundle_dir: Path,
        database_dir: Path | None,
        on_record,
        strategy_options: dict,
        shrink_seconds: float = SHRINK_SECONDS,
        shrink_attempts: int | None = None,
        triage=None,
        known: frozenset[str] = frozenset(),
    ):
        self.under_test, self.oracle, self.engines = under_test, oracle, engines
        self.triage = triage  # a PrecisionTriage, where the engine under test is the reference
        self.budget, self.seed, self.bundle_dir = budget, seed, Path(bundle_dir).absolute()
        self.database_dir, self.on_record, self.options = database_dir, on_record, strategy_options
        self.shrink_limit = ShrinkLimit(shrink_seconds, shrink_attempts)
        self.known: set[str] = set(known)  # the signatures bundled already: not bundled again
        self.count = 0

    def execute(self, case: Case, shrinking: bool) -> tuple[CaseRecord, Comparison, dict]:
        comparison, results = run_pair(case, self.under_test, self.oracle)
        types = layer_types_of(case)
        self.count += 1
        verdict, summary, precision = comparison.verdict, comparison.summary(), None
        if verdict == "disagree" and self.triage is not None:
            triage = self.triage.classify(case, comparison, results[self.oracle.name])
            if triage.precision is not None:
                verdict, summary, precision = "precision", f"{triage.reason}; {summary}", triage.to_json()
        record = CaseRecord(
            name=f"seed{self.seed}-case{self.count}",
            verdict=verdict,
            summary=summary,
            seconds={n: r.info.get("seconds", 0.0) for n, r in results.items()},
            layer_types=sorted(set(types.values())),
            outcomes={n: r.outcome.value for n, r in results.items()},
            shrinking=shrinking,
            signature=signature(comparison, results) if verdict == "disagree" else None,
            precision=precision,
        )
        return record, comparison, results

    def hunt(self):
        from hypothesis.database import DirectoryBasedExampleDatabase

        from harness.generate import cases

        strategy = cases(**self.options, capabilities=capabilities_of(self.under_test))
        database = DirectoryBasedExampleDatabase(str(self.database_dir)) if self.database_dir else None
        round_ = 0
        while not self.budget.exhausted():
            round_ += 1
            shrink = self._hunt_round(strategy, database, round_)
            if shrink is not None:
                self._bundle(shrink, round_, shrunk=True)

    def _hunt_round(self, strategy, database, round_: int) -> Shrink | None:
        """One Hypothesis run: the first disagreement of a kind not yet bundled, bundled as
        found, then shrunk; None if the run found none."""
        from hypothesis import given, seed
        from hypothesis.errors import Flaky

        shrink: Shrink | None = None

        @hunt_settings(database)
        @seed(self.seed * 7919 + round_)
        @given(strategy)
        def fails_on_a_new_disagreement(case):
            nonlocal shrink
            shrinking = shrink is not None
            if shrinking and (shrink.spent(self.count) or self.budget.stopped()):
                # Every further attempt passes, so Hypothesis stops; its final replay then
                # passes too (Flaky) and the smallest case so far is kept.
                return
            if not shrinking:
                if self.budget.exhausted():
                    return
                self.budget.generated += 1
            record, comparison, results = self.execute(case, shrinking)
            if not shrinking:
                self.on_record(record)
                if record.signature is None or record.signature in self.known:
                    return
                shrink = Shrink(
                    record.signature,
                    time.monotonic(),
                    self.count,
                    self.shrink_limit,
                    case,
                    comparison,
                    results,
                    record,
                )
                # Bundled at once: a shard stopped mid-shrink (its case hanging past Ctrl-C's
                # grace) still leaves the bug, as found.
                self._bundle(shrink, round_, shrunk=False)
            elif record.signature == shrink.signature:
                shrink.failed_again(case, comparison, results, record)
            else:
                return  # another bug: left for a later round, so this shrink cannot slip to it
            raise Disagreement(comparison.summary())

        try:
            fails_on_a_new_disagreement()
        except (Disagreement, Flaky):
            if shrink is None:
                raise  # an error of the harness's own that did not recur: it fails the shard
            # Flaky: Hypothesis's final replay passed, because the shrink was spent or an
            # engine is not deterministic on the case; the latest failing case is bundled.
            return shrink
        return None

    def _bundle(self, shrink: Shrink, round_: int, shrunk: bool) -> None:
        """Save the shrink's case as its bundle (the shrunk one over the one found) and report
        it: records of one bundle share its path, and the latest stands (Records)."""
        from harness.campaign.bundle import Bundle

        self.known.add(shrink.signature)
        path = self.bundle_dir / f"{bundle_name(shrink.signature)}-seed{self.seed}-{round_}"
        Bundle(shrink.case, shrink.results, self.engines, shrink.comparison).save(path)
        found = cause(shrink.signature, shrink.case, shrink.comparison.first.layer)
        self.on_record(
            dataclasses.replace(shrink.record, bundle=str(path), shrinking=True, shrunk=shrunk, cause=found)
        )


class Records:
    """A campaign's records in the order they came, one per bundle: a bundle saved as found
    and saved again when its shrink ends is one bug, and its latest record stands."""

    def __init__(self):
        self.kept: list[CaseRecord] = []
        self._index: dict[str, int] = {}  # a bundle's path -> where its record is in kept

    def take(self, record: CaseRecord) -> None:
        """Keep the record, in place of the earlier record of its bundle if there is one."""
        index = self._index.get(record.bundle) if record.bundle else None
        if index is not None:
            self.kept[index] = record
            return
        if record.bundle:
            self._index[record.bundle] = len(self.kept)
        self.kept.append(record)


def known_signatures(corpus: list[CaseRecord]) -> frozenset[str]:
    """The bugs the corpus's replay found again: bundled already, so not bundled again."""
    return frozenset(r.signature for r in corpus if r.signature)


# ---- a whole campaign: shards in worker processes, one progress line, one report ----------


@dataclass(frozen=True)
class CampaignOptions:
    under_test: str = "reference"
    oracle: str = "caffe"
    engine_cmd: str | None = None
    examples: int | None = None
    seconds: float | None = None
    seed: int = 0
    jobs: int = 1
    report_dir: Path | None = None
    corpus_dir: Path | None = None
    runtime: str = "rootfs"
    timeout_s: float = 20.0
    shrink_seconds: float = SHRINK_SECONDS
    shrink_attempts: int | None = None  # given: a shrink stops after this many cases, on any machine
    memory_budget: int | None = (
        DEFAULT_MEMORY_BUDGET  # bytes a case may take in the harness (engines/memory.py)
    )
    triage: bool = True  # precision triage of reference-versus-Caffe mismatches (triage.py)
    strategy_options: dict = field(default_factory=lambda: dict(DEFAULT_STRATEGY_OPTIONS))
    # A campaign run as slices (slices.py) on Dask (cluster.py): on the scheduler at cluster, or
    # with a shard (I, N), only every N-th slice from the I-th, for a CI matrix (merge.py joins
    # the shards' reports). slice_examples is part of what the cases are, as the seed is.
    cluster: str | None = None
    shard: tuple[int, int] | None = None
    slice_examples: int = SLICE_EXAMPLES
    # fuzz --coverage: the rootfs-instrumented runtime's gcov counters are kept here, and the
    # campaign ends with their report (coverage.py).
    coverage_dir: Path | None = None


def make_engine(spec: str, options: CampaignOptions, engine_cmd: str | None = None):
    from harness.engine import load_engine_class

    if engine_cmd is not None:
        from harness.engines.command import CommandEngine

        return CommandEngine(engine_cmd, timeout_s=options.timeout_s)
    cls = load_engine_class(spec)
    if spec == "caffe":
        runtime = options.runtime
        if options.coverage_dir is not None:
            from harness.campaign.coverage import counters_dir
            from harness.engines.runtimes import get_runtime

            runtime = get_runtime(options.runtime)
            runtime.coverage_dir = counters_dir(options.coverage_dir)
        return cls(runtime=runtime, timeout_s=options.timeout_s, memory_budget=options.memory_budget)
    if spec == "reference":
        # The reference follows the Caffe the runtime holds (master or 1.0: semantics.py).
        from harness.engines.runtimes import get_runtime

        return cls(semantics=get_runtime(options.runtime).caffe_version, memory_budget=options.memory_budget)
    if spec == "opencv":
        return cls(timeout_s=options.timeout_s)
    return cls()


def preflight(options: CampaignOptions) -> None:
    """Fail here, with the reason, before any shard starts: a bad engine name, a missing runtime,
    a Hypothesis profile no one registered (after the engines' modules, which may register it)."""
    from harness.engine import load_engine_class
    from harness.engines.runtimes import get_runtime

    specs = [options.oracle] + ([] if options.engine_cmd else [options.under_test])
    for spec in specs:
        load_engine_class(spec)
    hunt_settings(database=None)
    if "caffe" in specs:
        get_runtime(options.runtime).ensure_ready()


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux prctl
    PR_SET_PDEATHSIG): a harness killed with SIGKILL leaves no shard running on."""
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the parent's own cleanup is all there is
        pass


def _shard(
    options: CampaignOptions, shard: int, events, stop_event, started: float, known: frozenset[str]
) -> None:
    """One shard: its Hunter, until its share of the budget is spent or stop_event is set.
    ``started``: when the campaign started (time.monotonic(), one clock for every process),
    which its time budget counts from; ``known``: the signatures the corpus bundled already."""
    import signal

    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us cleanly and writes the report
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    under_test = make_engine(options.under_test, options, options.engine_cmd)
    oracle = make_engine(options.oracle, options)
    per_shard = None if options.examples is None else -(-options.examples // options.jobs)
    budget = Budget(examples=per_shard, seconds=options.seconds, started=started, stop_event=stop_event)
    bundle_dir = _bundle_dir(options)
    database = options.corpus_dir / "hypothesis" if options.corpus_dir else None

    def on_record(record):
        events.put(("record", shard, record))

    hunter = Hunter(
        under_test,
        oracle,
        engine_roles(options),
        budget,
        options.seed * 1000 + shard,
        bundle_dir,
        database,
        on_record,
        options.strategy_options,
        options.shrink_seconds,
        options.shrink_attempts,
        triage=precision_triage(options, under_test, oracle),
        known=known,
    )
    try:
        hunter.hunt()
    except Exception:  # noqa: BLE001 - reported to the parent, which fails the campaign with it
        import traceback

        events.put(("error", shard, traceback.format_exc()))
    finally:
        under_test.close()
        oracle.close()
        events.put(("done", shard, None))


def engine_roles(options: CampaignOptions) -> dict[str, str]:
    """Which engine plays which role, as a bundle records it."""
    under_test = f"cmd:{options.engine_cmd}" if options.engine_cmd else options.under_test
    return {"under_test": under_test, "oracle": options.oracle}


def precision_triage(options: CampaignOptions, under_test, oracle):
    from harness.campaign.triage import PrecisionTriage

    return PrecisionTriage.for_engines(under_test, oracle) if options.triage else None


def _bundle_dir(options: CampaignOptions) -> Path:
    """Where the campaign's bundles go, as an absolute path: a report read from anywhere
    finds them."""
    base = options.corpus_dir or options.report_dir or Path("reports")
    return (Path(base) / "bundles").absolute()


def corpus_cases(options: CampaignOptions) -> list[tuple[str, Case]]:
    """Every bundle saved in the corpus, by path, with its case (a hidden directory is a
    bundle being written, or the one it replaced: bundle.py)."""
    directory = _bundle_dir(options)
    if options.corpus_dir is None or not directory.is_dir():
        return []
    paths = sorted(
        p for p in directory.iterdir() if not p.name.startswith(".") and (p / "bundle.json").is_file()
    )
    return [(str(path), Case.load(path / "case")) for path in paths]


def replay(cases: list[tuple[str, Case]], under_test, oracle, triage, on_record) -> None:
    """Run each corpus case (corpus_cases) again; its record is named for its bundle."""
    hunter = Hunter(under_test, oracle, {}, Budget(), 0, Path(), None, on_record, {}, triage=triage)
    for path, case in cases:
        record, _, _ = hunter.execute(case, shrinking=False)
        record.name, record.bundle = f"corpus/{Path(path).name}", path
        on_record(record)


def replay_corpus(options: CampaignOptions, on_record) -> None:
    """Replay every bundle saved in the corpus before generating anything new."""
    cases = corpus_cases(options)
    if not cases:
        return
    under_test = make_engine(options.under_test, options, options.engine_cmd)
    oracle = make_engine(options.oracle, options)
    try:
        replay(cases, under_test, oracle, precision_triage(options, under_test, oracle), on_record)
    finally:
        under_test.close()
        oracle.close()


def run_campaign(options: CampaignOptions, progress) -> tuple[list[CaseRecord], bool]:
    """Run the campaign; returns every record and whether Ctrl-C cut it short. A shard that
    fails (a harness bug) raises HarnessError with its traceback once the others are done.

    Nothing found is lost on Ctrl-C: a bug is bundled the moment it is found, its shrink ends
    at the next case (the smallest so far replaces the bundle), and the cases in flight are
    given STOP_SECONDS to finish before their shards are killed. The time budget counts from
    here, and a shrink ends with it too.

    With a cluster or a shard the campaign runs as slices on Dask instead (cluster.py). --jobs
    stays a fork of shards here: a LocalCluster's workers, spawned afresh, take seconds to
    import what forked shards inherit, most of a short campaign's time (docs/cluster.md)."""
    if options.cluster is not None or options.shard is not None:
        from harness.campaign.cluster import run_sliced_campaign

        return run_sliced_campaign(options, progress)
    import multiprocessing as mp
    import queue

    started = time.monotonic()
    records = Records()

    def take(record):
        records.take(record)
        progress.update(record)  # which counts a bundle saved again (shrunk) once, and says so

    context = mp.get_context("fork")
    events, stop_event = context.Queue(), context.Event()
    shards: list = []  # the shards started, shard j at index j
    running: set[int] = set()
    errors: list[str] = []

    def take_events(until: float | None = None):
        """Take the shards' events until every shard is done (or the monotonic time ``until``)."""
        while running and (until is None or time.monotonic() < until):
            try:
                kind, shard, payload = events.get(timeout=0.5)
            except queue.Empty:
                for j in [j for j in running if not shards[j].is_alive()]:
                    if shards[j].exitcode not in (0, None):
                        progress.note(f"shard {j} ended with exit code {shards[j].exitcode}")
                    running.discard(j)
                continue
            if kind == "record":
                take(payload)
            elif kind == "error":
                errors.append(f"shard {shard}:\n{payload}")
                progress.note(f"shard {shard} failed:\n{payload}")
            else:
                running.discard(shard)

    interrupted = False
    try:  # from the start: a Ctrl-C during the engines' start or the corpus's replay is reported too
        preflight(options)
        replay_corpus(options, take)
        known = known_signatures(records.kept)
        for j in range(options.jobs):
            process = context.Process(
                target=_shard, args=(options, j, events, stop_event, started, known), daemon=True
            )
            process.start()
            shards.append(process)
            running.add(j)
        take_events()
    except KeyboardInterrupt:
        interrupted = True
        progress.note("interrupted: finishing the cases in flight, then writing the report")
        stop_event.set()
        take_events(until=time.monotonic() + STOP_SECONDS)
        for process in shards:
            if process.is_alive():
                # A shard ignores SIGTERM (it stops on stop_event); what it found is bundled.
                process.kill()
    finally:
        for process in shards:
            process.join(timeout=5)
        progress.close()
    if options.coverage_dir is not None:
        report_coverage(options.coverage_dir)
    if errors:
        raise CampaignFailed(records.kept, interrupted, errors)
    return records.kept, interrupted


def report_coverage(coverage_dir: Path) -> None:
    """The campaign's coverage of Caffe (fuzz --coverage): gcovr's HTML and JSON under
    coverage_dir, and the summary per group, printed and written as groups.json."""
    from harness.campaign.coverage import table, write_coverage_report

    rows = write_coverage_report(coverage_dir)
    print(f"Caffe's source reached (report in {coverage_dir / 'html' / 'index.html'}):")
    print(table({"campaign": rows}), flush=True)


class CampaignFailed(HarnessError):
    """A shard died of a harness bug; the records of what ran are kept for the report."""

    def __init__(self, records, interrupted, errors):
        super().__init__("the campaign failed:\n" + "\n".join(errors))
        self.records, self.interrupted = records, interrupted
