"""End-to-end fuzzing throughput, and where the time goes.

    python benchmarks/bench_fuzz.py [--examples 600] [--jobs 2] [--seed 0]

Runs a campaign of the reference engine against real Caffe and prints cases per second
(generated cases over wall time, shrinking included if a disagreement turns up) and the
share of the shards' time spent in Caffe (the worker round trip), in the reference engine,
and in the harness itself (generation, comparison, Hypothesis, bookkeeping). Figures only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.fuzz import CampaignOptions, run_campaign
from harness.report import Progress


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=600)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    options = CampaignOptions(examples=args.examples, jobs=args.jobs, seed=args.seed,
                              report_dir=Path(tempfile.mkdtemp(prefix="bench-fuzz-")))
    started = time.monotonic()
    records, _ = run_campaign(options, Progress(args.examples, stream=open("/dev/null", "w")))
    wall = time.monotonic() - started
    generated = [r for r in records if not r.shrinking]
    caffe = sum(r.seconds.get("caffe", 0.0) for r in records)
    reference = sum(r.seconds.get("reference", 0.0) for r in records)
    shard_time = wall * args.jobs
    print(f"{len(generated)} cases ({len(records) - len(generated)} more while shrinking) in {wall:.1f} s "
          f"with --jobs {args.jobs}: {len(generated) / wall:.1f} cases/s")
    print(f"share of shard time: Caffe {caffe / shard_time:.0%}, reference engine {reference / shard_time:.0%}, "
          f"harness {1 - (caffe + reference) / shard_time:.0%}")
    print(f"verdicts: { {v: sum(r.verdict == v for r in generated) for v in ('agree', 'disagree', 'skipped')} }")


if __name__ == "__main__":
    main()
