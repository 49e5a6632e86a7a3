"""How much of Caffe's source a short campaign reaches, beside Caffe's own CPU unit tests.

    python benchmarks/caffe_coverage.py [--examples 200] [--seed 0] [--jobs 1]
        [--unit-filter '*'] [--out DIR] [--skip-unit-tests] [--campaign-from DIR]

Both run in the rootfs-instrumented runtime (docs/coverage.md):
  campaign    `caffe-conformance fuzz --runtime rootfs-instrumented --coverage DIR/campaign`
  unit tests  src/caffe/test (test.testbin, built in the same tree on first use), each test
              suite in a process of its own, so that a suite that dies (a sanitizer's report, a
              failed CHECK) loses only its own counters; those suites are listed
and prints each group's line and branch coverage side by side (harness/campaign/coverage.py),
with the time each took. --campaign-from takes the counters of an earlier
`fuzz --coverage DIR` instead of running a campaign. Figures only: it asserts nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.campaign.coverage import CoverageReport, counters_dir, table
from harness.engines.runtimes.instrumented import ASAN_OPTIONS, GCOV_INSIDE, SOURCE_DIR, InstrumentedRuntime

ROOT = Path(__file__).resolve().parents[1]


def campaign(out: Path, examples: int, seed: int, jobs: int) -> float:
    started = time.monotonic()
    command = [sys.executable, "-m", "harness", "fuzz", "--runtime", "rootfs-instrumented", "-q"]
    command += ["--examples", str(examples), "--seed", str(seed), "--jobs", str(jobs)]
    command += ["--timeout", "300", "--shrink-time", "5s", "--coverage", str(out)]
    done = subprocess.run(command, cwd=ROOT, check=False)
    if done.returncode not in (0, 1):  # 1: a disagreement, which is no failure here
        raise SystemExit(f"the campaign exited with {done.returncode}")
    return time.monotonic() - started


def test_suites(runtime: InstrumentedRuntime, binary: str, pattern: str) -> list[str]:
    listed = _run_in_tree(runtime, None, [binary, "--gtest_list_tests", f"--gtest_filter={pattern}"])
    return [line.strip().rstrip(".") for line in listed.stdout.splitlines() if line and not line[0].isspace()]


def _run_in_tree(runtime: InstrumentedRuntime, counters: Path | None, command: list[str]):
    # From the source root, as Caffe's tests expect: they read src/caffe/test/test_data/...
    argv = ["bwrap", "--ro-bind", str(runtime.directory), "/", "--dev", "/dev", "--proc", "/proc"]
    argv += ["--tmpfs", "/tmp", "--unshare-net", "--die-with-parent", "--chdir", SOURCE_DIR]
    argv += ["--setenv", "ASAN_OPTIONS", ASAN_OPTIONS, "--setenv", "GCOV_PREFIX", GCOV_INSIDE]
    argv += ["--setenv", "GLOG_minloglevel", "2"]
    if counters is not None:
        argv += ["--bind", str(counters), GCOV_INSIDE]
    return subprocess.run(argv + ["--", *command], capture_output=True, text=True, check=False)


def unit_tests(runtime: InstrumentedRuntime, out: Path, pattern: str) -> tuple[float, list[str]]:
    binary = runtime.build_tests()
    started = time.monotonic()
    counters = counters_dir(out) / "worker-unit-tests"
    counters.mkdir(parents=True, exist_ok=True)
    died = []
    for suite in test_suites(runtime, binary, pattern):
        done = _run_in_tree(runtime, counters, [binary, f"--gtest_filter={suite}.*"])
        if done.returncode != 0:
            died.append(f"{suite} (exit {done.returncode})")
        print(f"  {suite}: exit {done.returncode}", flush=True)
    return time.monotonic() - started, died


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--unit-filter", default="*", help="gtest filter of the unit tests run")
    parser.add_argument("--skip-unit-tests", action="store_true")
    parser.add_argument("--campaign-from", type=Path, default=None, help="an earlier fuzz --coverage DIR")
    parser.add_argument("--out", type=Path, default=None, help="where the reports go (default: a temp dir)")
    args = parser.parse_args()
    out = (args.out or Path(tempfile.mkdtemp(prefix="caffe-coverage-"))).resolve()
    runtime = InstrumentedRuntime()
    runtime.ensure_ready()
    columns, seconds = {}, {}
    if args.campaign_from is None:
        seconds["campaign"] = campaign(out / "campaign", args.examples, args.seed, args.jobs)
        columns[f"campaign ({args.examples})"] = CoverageReport(out / "campaign", runtime).write()
    else:
        columns["campaign"] = CoverageReport(args.campaign_from, runtime).write()
    if not args.skip_unit_tests:
        seconds["unit tests"], died = unit_tests(runtime, out / "unit-tests", args.unit_filter)
        columns["unit tests"] = CoverageReport(out / "unit-tests", runtime).write()
        if died:
            print(f"unit-test suites that died (their counters lost): {', '.join(died)}")
    print(", ".join(f"{name} {s / 60:.1f} min" for name, s in seconds.items()) + f"; reports in {out}")
    print(table(columns))


if __name__ == "__main__":
    main()
