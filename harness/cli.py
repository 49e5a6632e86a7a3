"""The ``caffe-conformance`` command.

Exit codes: 0 success (engines agree), 1 a disagreement, 2 a usage or set-up error
or a net Caffe refuses (explain).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from harness.engines.memory import DEFAULT_MEMORY_BUDGET, parse_size
from harness.engines.runtimes import DEFAULT_RUNTIME, RUNTIMES
from harness.errors import HarnessError
from harness.versions import json_text, tool_version

EXIT_OK, EXIT_DISAGREE, EXIT_ERROR = 0, 1, 2


def _read_text(path: str) -> str:
    """A prototxt's text: a regular UTF-8 file (a FIFO or a device would block or never end)."""
    try:
        if Path(path).exists() and not Path(path).is_file():
            raise HarnessError(f"{path}: cannot read: not a regular file")
        return Path(path).read_bytes().decode("utf-8")
    except OSError as e:
        raise HarnessError(f"{path}: cannot read: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise HarnessError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from e


def _write_output(path, data: bytes) -> None:
    """A file the user asked for, or a HarnessError saying why it cannot be written."""
    try:
        Path(path).write_bytes(data)
    except OSError as e:
        raise HarnessError(f"{path}: cannot write: {e.strerror}") from e


def _memory_size(text: str) -> int:
    try:
        return parse_size(text)
    except HarnessError as e:
        raise argparse.ArgumentTypeError(f"--memory-budget: {e}") from None


def _memory_budget_arg(parser):
    parser.add_argument(
        "--memory-budget",
        type=_memory_size,
        default=DEFAULT_MEMORY_BUDGET,
        metavar="SIZE",
        help="memory a case may take in the harness, e.g. 512M or 4G (2G when not given): "
        "a case estimated above it is refused",
    )


def _state_args(parser):
    parser.add_argument("--phase", choices=("TRAIN", "TEST"), default="TRAIN", help="the NetState phase")
    parser.add_argument("--level", type=int, default=0, help="the NetState level")
    parser.add_argument(
        "--stage", action="append", default=[], metavar="S", help="a NetState stage (repeatable)"
    )


def cmd_explain(args) -> int:
    """Explain a net's backward flags and hazards; with --against caffe, confirm them in real Caffe."""
    from google.protobuf import text_format

    from harness.explain.explain import explain, refused_report, render_table
    from reference_engine.checks import CaffeError, Unsupported

    text = _read_text(args.net)
    input_shapes = _parse_input_shapes(args.input_shape)
    try:
        data = explain(text, args.phase, args.level, args.stage)
    except text_format.ParseError as e:
        print(f"{args.net}: not a valid NetParameter prototxt: {e}", file=sys.stderr)
        return EXIT_ERROR
    except Unsupported as e:
        print(f"{args.net}: {e}", file=sys.stderr)
        return EXIT_ERROR
    except CaffeError as e:
        if args.json:
            print(json_text(refused_report(e.message)))
        print(f"{args.net}: Caffe refuses this net: {e.message}", file=sys.stderr)
        if args.against:
            return _confirm_refusal(args, text, e.message)
        return EXIT_ERROR
    status = EXIT_OK
    if args.against:
        status = _explain_against_caffe(args, text, data, input_shapes)
    _write_pictures(args, data)
    if args.json:
        print(json_text(data))
    else:
        width = None if args.wide else shutil.get_terminal_size().columns
        print(render_table(data, width))
        if "caffe" in data:
            from harness.explain.explain import render_caffe

            print()
            print(render_caffe(data["caffe"], width))
    if "caffe" in data and data["caffe"]["outcome"] != "ok":
        c = data["caffe"]
        print(
            f"{args.net}: Caffe {'refuses this net' if c['outcome'] == 'refused' else c['outcome']}"
            f"{'' if c['outcome'] == 'refused' else ' at ' + str(c['stage'])}: {c['message']}",
            file=sys.stderr,
        )
    return status


def _parse_input_shapes(specs):
    from harness.explain.user_nets import parse_input_shapes

    return parse_input_shapes(specs)


def _explain_against_caffe(args, text: str, data: dict, input_shapes) -> int:
    from harness.engines.caffe import CaffeEngine
    from harness.explain.explain import caffe_section, solver_for_explain
    from harness.explain.user_nets import make_runnable, synthetic_case

    runnable = make_runnable(text, args.phase, args.level, args.stage, input_shapes)
    solver_text, solver_param = solver_for_explain(_read_text(args.solver) if args.solver else None)
    if args.phase != "TRAIN":
        solver_text = None  # a solver always trains its TRAIN net (caffe_section says so)
    _within_budget(args, runnable.text, solver_text, 1 if solver_text is not None else 0)
    case, case_notes = synthetic_case(
        runnable, args.phase, args.level, args.stage, solver_text, seed=args.seed
    )
    engine = CaffeEngine(
        runtime=_ready_runtime(args.runtime), timeout_s=args.timeout, memory_budget=args.memory_budget
    )
    try:
        result = engine.run(case)
    finally:
        engine.close()
    section = caffe_section(data, case, result, solver_param)
    section["notes"] = runnable.notes + case_notes + section["notes"]
    section["solver"] = solver_text
    data["caffe"] = section
    if result.outcome.value != "ok":
        return EXIT_ERROR
    return EXIT_OK if section["agree"] else EXIT_DISAGREE


def _confirm_refusal(args, text: str, message: str) -> int:
    """The reference refuses the net: does Caffe refuse it too? (the user's file, unchanged)"""
    from harness.case import Case
    from harness.engines.caffe import CaffeEngine

    engine = CaffeEngine(
        runtime=_ready_runtime(args.runtime), timeout_s=args.timeout, memory_budget=args.memory_budget
    )
    try:
        result = engine.run(Case(net=text, phase=args.phase, level=args.level, stages=tuple(args.stage)))
    finally:
        engine.close()
    if result.outcome.value == "unsupported":
        print(f"{args.net}: not run in real Caffe: {result.message}", file=sys.stderr)
        return EXIT_ERROR
    if result.outcome.value == "refused":
        print(f"{args.net}: real Caffe refuses it too: {result.message}", file=sys.stderr)
        return EXIT_ERROR
    print(
        f"{args.net}: real Caffe does not refuse it (outcome {result.outcome.value}"
        f"{': ' + result.message if result.message else ''}); the reference engine's refusal disagrees",
        file=sys.stderr,
    )
    return EXIT_DISAGREE


def _within_budget(args, net: str, solver: str | None, iterations: int) -> None:
    """Refuse, before any Net is built for its inputs, a user's net whose blobs would not fit
    the memory budget (synthetic_case builds a real float32 Net to shape them)."""
    from harness.case import Case
    from harness.engines.memory import require_within_budget

    case = Case(
        net=net,
        solver=solver,
        phase=args.phase,
        level=args.level,
        stages=tuple(args.stage),
        iterations=iterations,
    )
    require_within_budget(case, args.memory_budget, args.net)


def _write_pictures(args, data: dict):
    from harness.explain.graph import render, to_dot

    if not (args.dot or args.svg or args.png):
        return
    dot = to_dot(data, title=Path(args.net).name + f" ({args.phase})")
    for path, content in (
        (args.dot, lambda: dot.encode()),
        (args.svg, lambda: render(dot, "svg")),
        (args.png, lambda: render(dot, "png")),
    ):
        if path:
            _write_output(path, content())


def cmd_runtime(args) -> int:
    """`runtime install` builds or refreshes a runtime (idempotent); both actions then print,
    once, as JSON, which Caffe and Python it holds and where it lives."""

    from harness.engines.runtimes import get_runtime

    runtime = get_runtime(args.runtime, args.rootfs, args.from_rootfs)
    if args.action == "install":
        started = time.monotonic()

        def say(message):
            if args.verbosity >= 0:
                print(message, file=sys.stderr, flush=True)

        runtime.install(say)
        say(f"{args.runtime}: installed in {time.monotonic() - started:.1f} s")
    print(json.dumps(runtime.info(), indent=2))
    return EXIT_OK


def parse_duration(text: str) -> float:
    """'90s', '10m', '2h' or a plain number of seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text and text[-1] in units:
            value = float(text[:-1]) * units[text[-1]]
        else:
            value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--time={text!r}: expected a duration such as 90s, 10m or 2h"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"--time={text!r}: must be a positive, finite duration")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text}: must be a positive, finite number of seconds")
    return value


def _jobs(text: str) -> int:
    """--jobs: each job is a shard with its own Caffe worker (up to 4 GiB); more than a few
    per core only queues them."""
    value, most = _positive(text), 4 * (os.cpu_count() or 1)
    if value > most:
        raise argparse.ArgumentTypeError(f"--jobs={value}: at most {most} (4 per core) on this machine")
    return value


def parse_shard(text: str) -> tuple[int, int]:
    """--shard 'I/N': the I-th of N shards of a campaign, 0 <= I < N."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard={text!r}: expected I/N, such as 0/4") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"--shard={text!r}: I must be at least 0 and less than N")
    return index, count


def _check_oracle(args):
    if args.engine_cmd is None and args.engine == args.against:
        raise HarnessError(
            f"--engine={args.engine} --against={args.against}: an engine cannot be its own oracle"
        )


def _ready_runtime(name: str):
    """The runtime, checked before any engine starts: a missing one is a line and exit 2 (with
    what to run), never a traceback from deep inside a worker start."""
    from harness.engines.runtimes import get_runtime

    runtime = get_runtime(name)
    runtime.ensure_ready()
    return runtime


def _engines(args):
    """The engine under test and the oracle, from --engine/--engine-cmd/--against."""
    from harness.campaign.fuzz import CampaignOptions, make_engine

    if "caffe" in (args.against, None if args.engine_cmd else args.engine):
        _ready_runtime(args.runtime)
    options = CampaignOptions(
        under_test=args.engine,
        oracle=args.against,
        runtime=args.runtime,
        timeout_s=args.timeout,
        memory_budget=args.memory_budget,
    )
    _check_oracle(args)
    return make_engine(args.engine, options, args.engine_cmd), make_engine(args.against, options)


def cmd_fuzz(args) -> int:
    from harness.campaign.fuzz import SLICE_EXAMPLES, CampaignOptions
    from harness.campaign.report import check_report_dir, held_for_campaign

    if args.examples is None and args.time is None:
        args.examples = 100
    if args.seed is None:  # a fresh seed each night, printed and reported so that it can be rerun
        args.seed = int(time.strftime("%Y%m%d"))
    if args.slice_examples is None:  # here, not as argparse's default: fuzz.py imports torch
        args.slice_examples = SLICE_EXAMPLES
    if args.verbosity >= 0:
        print(f"seed {args.seed}", flush=True)
    options = CampaignOptions(
        under_test=args.engine,
        oracle=args.against,
        engine_cmd=args.engine_cmd,
        examples=args.examples,
        seconds=args.time,
        seed=args.seed,
        jobs=args.jobs,
        report_dir=args.report,
        corpus_dir=args.corpus,
        runtime=args.runtime,
        timeout_s=args.timeout,
        shrink_seconds=args.shrink_time,
        memory_budget=args.memory_budget,
        cluster=args.cluster,
        shard=args.shard,
        slice_examples=args.slice_examples,
        coverage_dir=args.coverage,
    )
    _check_oracle(args)
    if args.coverage is not None and (args.runtime != "rootfs-instrumented" or args.cluster or args.shard):
        raise HarnessError(
            f"--coverage {args.coverage}: needs --runtime rootfs-instrumented (not {args.runtime!r}) "
            "and a campaign on this machine (no --cluster, no --shard)"
        )
    if args.report:
        check_report_dir(args.report)
    with held_for_campaign([d for d in (args.report, args.corpus) if d is not None]):
        if args.report:
            _set_earlier_report_aside(args)
        return _run_fuzz(args, options)


def _set_earlier_report_aside(args) -> None:
    from harness.campaign.report import set_earlier_report_aside

    corpus_is_here = args.corpus is not None and args.corpus.absolute() == args.report.absolute()
    moved = set_earlier_report_aside(args.report, keep_bundles=corpus_is_here)
    if moved is not None and args.verbosity >= 0:
        print(f"{args.report} held an earlier campaign's report: moved to {moved}")


def _run_fuzz(args, options) -> int:
    """The campaign, its report and its exit status, its directories held (cmd_fuzz)."""
    from harness.campaign.fuzz import CampaignFailed, run_campaign
    from harness.campaign.report import Progress, console_summary, summarise, write_report

    progress = Progress(args.examples, args.time, verbosity=args.verbosity)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "handler"}
    started = datetime.now(UTC)  # the report's date and duration
    try:
        records, interrupted = run_campaign(options, progress)
    except CampaignFailed as failure:
        if args.report:  # what ran is still reported, then the failure exits 2
            write_report(
                args.report, failure.records, failure.interrupted, settings, started, datetime.now(UTC)
            )
        raise
    ended = datetime.now(UTC)
    if args.report:
        summary = write_report(args.report, records, interrupted, settings, started, ended)
    else:
        summary = summarise(records, interrupted, settings, started, ended)
    if not interrupted and not any(not r.shrinking and not r.name.startswith("corpus/") for r in records):
        # A nightly that ran nothing (an engine that cannot load, a budget of nothing) is red.
        raise HarnessError("the campaign ran no case: see the messages above")
    print(console_summary(summary, f"; report in {args.report}" if args.report else ""))
    if interrupted:
        return 130
    return _exit_status(summary)


def _exit_status(summary: dict) -> int:
    """1 where a case disagreed (or, with --strict, was classified as precision), else 0."""
    disagreed = summary["verdicts"].get("disagree", 0)
    strict = summary["settings"].get("strict") and summary["precision"]["count"]
    return EXIT_DISAGREE if disagreed or strict else EXIT_OK


def cmd_merge(args) -> int:
    """The reports of a campaign's shards as one; exits as fuzz would have for the whole campaign."""
    from harness.campaign.merge import merge_reports
    from harness.campaign.report import case_line, console_summary

    def show(record):
        if args.verbosity > 0 and not record.shrinking:  # as fuzz -v shows them
            print(case_line(record))

    summary = merge_reports(args.reports, args.report, show)
    print(console_summary(summary, f" from {len(args.reports)} shards; report in {args.report}"))
    return _exit_status(summary)


def cmd_check(args) -> int:
    """One user's net through both engines, with generated inputs and params."""
    import dataclasses

    from google.protobuf import text_format

    from harness.campaign.bundle import Bundle, describe_comparison
    from harness.campaign.fuzz import run_pair
    from harness.explain.explain import solver_for_explain
    from harness.explain.user_nets import make_runnable, parse_input_shapes, synthetic_case
    from reference_engine.checks import CaffeError

    text = _read_text(args.net)
    try:
        runnable = make_runnable(
            text, args.phase, args.level, args.stage, parse_input_shapes(args.input_shape)
        )
    except text_format.ParseError as e:
        raise HarnessError(f"{args.net}: not a valid NetParameter prototxt: {e}") from e
    except CaffeError as e:
        raise HarnessError(f"{args.net}: Caffe refuses this net: {e.message}") from e
    _refuse_caffe_randomness(args, runnable.text)
    solver_text = None
    if args.solver is not None or args.iterations:
        solver_text, _ = solver_for_explain(_read_text(args.solver) if args.solver else None)
    _within_budget(args, runnable.text, solver_text, (args.iterations or 1) if solver_text is not None else 0)
    case, notes = synthetic_case(runnable, args.phase, args.level, args.stage, solver_text, seed=args.seed)
    if solver_text is not None:
        case = dataclasses.replace(case, iterations=args.iterations or 1)
    under_test, oracle = _engines(args)
    try:
        comparison, results = run_pair(case, under_test, oracle)
    finally:
        under_test.close()
        oracle.close()
    if args.bundle is not None:
        engines = {"under_test": args.engine, "oracle": args.against}
        Bundle(case, results, engines, comparison).save(args.bundle)
    if args.json:
        print(
            json_text(
                {
                    "verdict": comparison.verdict,
                    "summary": comparison.summary(),
                    "mismatches": [m.to_json() for m in comparison.mismatches],
                    "outcomes": {
                        name: {"outcome": r.outcome.value, "stage": r.stage, "message": r.message}
                        for name, r in results.items()
                    },
                    "notes": notes + runnable.notes,
                }
            )
        )
    else:
        for note in notes + runnable.notes:
            print(f"note: {note}")
        for name, r in results.items():
            where = f" at {r.stage}" if r.stage else ""
            print(f"{name}: {r.outcome.value}{where}" + (f": {r.message}" if r.message else ""))
        print(describe_comparison(comparison))
    return EXIT_DISAGREE if comparison.verdict == "disagree" else EXIT_OK


def _refuse_caffe_randomness(args, net_text: str) -> None:
    """A layer that draws from Caffe's RNG in TRAIN (Dropout's mask) makes a comparison with
    real Caffe meaningless: say so, and how to check the rest, rather than report a bug. The
    net is the runnable one (make_runnable), so every type in it is known."""
    from reference_engine import caffe_pb2
    from reference_engine.layer import layer_class
    from reference_engine.net import read_net_param
    from reference_engine.state import filter_net

    if "caffe" not in (args.against, args.engine):
        return
    param, _ = read_net_param(net_text, args.phase, args.level, args.stage)
    random = [
        layer.name
        for layer in filter_net(param).layer
        if layer_class(layer.type).random_in_train
        and (layer.phase if layer.HasField("phase") else param.state.phase) == caffe_pb2.TRAIN
    ]
    if random:
        raise HarnessError(
            f"{args.net}: {', '.join(random)} draw(s) a random mask from Caffe's own RNG in TRAIN, "
            "which no other engine can replay, so no comparison would mean anything; check "
            "--phase TEST, or the net without those layers"
        )


def cmd_replay(args) -> int:
    """Rerun a bundle's case on the engines named here, never on the ones the bundle names:
    a bundle is data someone sent, and its engine fields could name any command or module."""
    from harness.campaign.bundle import describe, recorded_engines
    from harness.campaign.fuzz import run_pair
    from harness.case import Case
    from harness.engines.memory import require_within_budget

    case = Case.load(args.bundle / "case")
    require_within_budget(case, args.memory_budget, str(args.bundle))
    recorded = recorded_engines(args.bundle)
    print(
        f"recorded with: {recorded}; replaying with --engine {args.engine_cmd or args.engine} "
        f"--against {args.against}"
    )
    under_test, oracle = _engines(args)
    try:
        comparison, _ = run_pair(case, under_test, oracle)
    finally:
        under_test.close()
        oracle.close()
    print(describe(comparison, case))
    return EXIT_OK if comparison.agree else EXIT_DISAGREE


def _engine_args(parser):
    parser.add_argument("--against", default="caffe", help="the oracle: caffe or reference")
    parser.add_argument(
        "--engine",
        default="reference",
        help="the engine under test: a registered name or package.module:Class",
    )
    parser.add_argument(
        "--engine-cmd",
        default=None,
        metavar="CMD",
        help="put under test any command that speaks the worker protocol (docs/protocol.md)",
    )
    _caffe_args(parser, timeout_s=20.0)


def _caffe_args(parser, timeout_s: float):
    """How real Caffe is started and what a case may take of time and memory."""
    parser.add_argument(
        "--runtime",
        default=DEFAULT_RUNTIME,
        choices=tuple(RUNTIMES),
        help="how real Caffe is started",
    )
    parser.add_argument("--timeout", type=_seconds, default=timeout_s, help="seconds a case may run in Caffe")
    _memory_budget_arg(parser)


ENVIRONMENT = """environment:
  CAFFE_CONFORMANCE_ROOTFS         where the rootfs runtime lives
                                   (default ~/.cache/caffe-conformance/rootfs-bullseye)
  CAFFE_CONFORMANCE_PYTHON         the Python the local runtime runs (default python3)
  CAFFE_CONFORMANCE_CAFFE_VERSION  the local runtime's Caffe: master (default) or 1.0
  CAFFE_CONFORMANCE_HYPOTHESIS_PROFILE
                                   fuzz: a registered Hypothesis profile for the hunt, derived
                                   from caffe-conformance (harness/campaign/fuzz.py, hunt_settings)
  HYPOTHESIS_PROFILE               tests only: dev, ci or nightly (tests/conftest.py)

exit codes: 0 the engines agree, 1 a disagreement, 2 a usage or set-up error, 130 interrupted"""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each option's default after its help, where it has one worth saying; the epilog's
    layout kept."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (
            action.default in (None, False, [], argparse.SUPPRESS)
            or "default" in text
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="caffe-conformance",
        description="Differential testing of Caffe training semantics.",
        epilog=ENVIRONMENT,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {tool_version()}")
    _verbosity_args(parser, default=0)
    # Every command's help shows the defaults, the environment and the exit codes.
    subcommand = functools.partial(
        argparse.ArgumentParser, formatter_class=_HelpFormatter, epilog=ENVIRONMENT
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=subcommand)

    p = sub.add_parser("explain", help="which layers need backward, and why, as Caffe decides it")
    p.add_argument("net", help="a NetParameter prototxt")
    _state_args(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--wide", action="store_true", help="full lines, not wrapped to the terminal's width")
    p.add_argument(
        "--against",
        choices=("caffe",),
        default=None,
        help="also run the net in real Caffe on synthetic inputs: its flags, gradient norms, one step",
    )
    p.add_argument(
        "--solver",
        default=None,
        metavar="SOLVER.prototxt",
        help="solver for the one step (none: SGD, base_lr 0.01, momentum 0.9, weight_decay 5e-4)",
    )
    p.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="BLOB=d0,d1,...",
        help="the shape of a data or Input top (repeatable), e.g. data=1,3,32,32",
    )
    p.add_argument("--dot", default=None, metavar="FILE", help="write the net as a Graphviz dot file")
    p.add_argument("--svg", default=None, metavar="FILE", help="draw the net as SVG (needs Graphviz)")
    p.add_argument("--png", default=None, metavar="FILE", help="draw the net as PNG (needs Graphviz)")
    _caffe_args(p, timeout_s=120.0)
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic inputs and params")
    p.set_defaults(handler=cmd_explain)

    p = sub.add_parser("fuzz", help="generate nets, run both engines, shrink and bundle disagreements")
    _engine_args(p)
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--examples",
        type=_positive,
        default=None,
        help="cases to generate (100 when --time is not given either)",
    )
    budget.add_argument(
        "--time",
        type=parse_duration,
        default=None,
        metavar="DURATION",
        help="run for this long: 90s, 10m, 2h",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="the campaign's seed (default: today's date, YYYYMMDD, new every night)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--jobs", type=_jobs, default=1, help="worker processes side by side on this machine")
    where.add_argument(
        "--cluster",
        default=None,
        metavar="ADDRESS",
        help="run the campaign's slices on the Dask scheduler at ADDRESS, such as tcp://host:8786 "
        "(docs/cluster.md)",
    )
    p.add_argument(
        "--shard",
        type=parse_shard,
        default=None,
        metavar="I/N",
        help="run only every N-th slice from the I-th (--examples counts all N shards), on --cluster or "
        "on --jobs local workers; `caffe-conformance merge` joins the N reports",
    )
    p.add_argument(
        "--slice-examples",
        type=_positive,
        default=None,
        metavar="N",
        help="examples per slice with --cluster or --shard (100 when not given: docs/cluster.md sizes it); "
        "part of what the campaign generates, as the seed is",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 1) on cases the precision triage classifies as float32 precision too",
    )
    p.add_argument(
        "--shrink-time",
        type=parse_duration,
        default=60.0,
        metavar="DURATION",
        help="time spent shrinking each disagreement, in seconds or 90s, 10m",
    )
    p.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="DIR",
        help="write report.json, junit.xml and report.html here",
    )
    p.add_argument(
        "--corpus",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep bundles and Hypothesis's examples here; replayed first next time",
    )
    p.add_argument(
        "--coverage",
        type=Path,
        default=None,
        metavar="DIR",
        help="with --runtime rootfs-instrumented: keep Caffe's gcov counters here and end with a line and "
        "branch report of src/caffe (html/index.html, coverage.json, groups.json: docs/coverage.md)",
    )
    p.set_defaults(handler=cmd_fuzz)

    p = sub.add_parser("merge", help="join the reports of a campaign's shards (fuzz --shard I/N) into one")
    p.add_argument("reports", nargs="+", type=Path, metavar="DIR", help="each shard's --report directory")
    p.add_argument(
        "--report",
        type=Path,
        required=True,
        metavar="OUT",
        help="write the merged report.json, junit.xml, report.html and bundles/ here",
    )
    p.set_defaults(handler=cmd_merge)

    p = sub.add_parser("check", help="one net through both engines, with generated inputs and weights")
    p.add_argument("net", help="a NetParameter prototxt (data layers become Input layers)")
    _state_args(p)
    _engine_args(p)
    p.add_argument("--solver", default=None, help="a SolverParameter prototxt (its net fields are ignored)")
    p.add_argument(
        "--iterations", type=int, default=0, help="solver iterations (0: one when --solver is given)"
    )
    p.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="BLOB=d0,d1,...",
        help="the shape of a data or Input top (repeatable), e.g. data=1,3,32,32",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the generated inputs and weights")
    p.add_argument(
        "--bundle", type=Path, default=None, metavar="DIR", help="also save the case and results here"
    )
    p.add_argument("--json", action="store_true", help="print the verdict, mismatches and outcomes as JSON")
    p.set_defaults(handler=cmd_check)

    p = sub.add_parser("replay", help="rerun a repro bundle: exit 0 if the engines now agree, 1 if not")
    p.add_argument("bundle", type=Path, help="a bundle directory (written by fuzz)")
    _engine_args(p)
    p.set_defaults(handler=cmd_replay)

    p = sub.add_parser("runtime", help="install or describe a real-Caffe runtime")
    p.add_argument("action", choices=("install", "info"), help="build or refresh it, or describe it")
    p.add_argument("--runtime", default=DEFAULT_RUNTIME, choices=tuple(RUNTIMES), help="which runtime")
    p.add_argument(
        "--rootfs",
        default=None,
        help="where the rootfs runtime lives (none: CAFFE_CONFORMANCE_ROOTFS or the cache dir)",
    )
    p.add_argument(
        "--from-rootfs",
        action="store_true",
        help="docker: make the image by importing the rootfs runtime's tree, without trying the Dockerfile",
    )
    p.set_defaults(handler=cmd_runtime)
    for command in sub.choices.values():  # -q/-v after the command too: fuzz -q
        _verbosity_args(command, default=argparse.SUPPRESS)
    return parser


def _verbosity_args(parser, default):
    """-q and -v, before the command or after it; ``default`` SUPPRESS on a command's parser, so
    that it keeps what was given before the command."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-q",
        "--quiet",
        dest="verbosity",
        action="store_const",
        const=-1,
        default=default,
        help="no progress: only the final summary and errors (fuzz, merge, runtime install)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        dest="verbosity",
        action="store_const",
        const=1,
        default=default,
        help="a line per case (fuzz, merge)",
    )


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    # SIGTERM (a CI timeout, a service manager) stops a run as Ctrl-C does: the cases in
    # flight finish and the report is written. SIGINT too, even where it was inherited ignored
    # (a command started with & from a script), where Python would leave it ignored.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)
    try:
        return args.handler(args)
    except HarnessError as e:
        print(f"caffe-conformance: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("caffe-conformance: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (| head): nothing left to say to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
