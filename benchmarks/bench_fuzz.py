"""End-to-end fuzzing throughput, and where the time goes.

    python benchmarks/bench_fuzz.py [--examples 600] [--jobs 2] [--seed 0]

Runs a campaign of the reference engine against real Caffe and prints cases per second
(generated cases over wall time, shrinking included if a disagreement turns up) and the
share of the shards' time spent in Caffe (the worker round trip), in the reference engine,
and in the harness itself (generation, comparison, Hypothesis, bookkeeping). Then, to split
the harness's share, the same strategy alone (Hypothesis's engine and the net generation, no
engines) in this process, in CPU time per case. Figures only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.campaign.fuzz import DEFAULT_STRATEGY_OPTIONS, CampaignOptions, run_campaign
from harness.campaign.report import Progress


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=600)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    options = CampaignOptions(
        examples=args.examples,
        jobs=args.jobs,
        seed=args.seed,
        report_dir=Path(tempfile.mkdtemp(prefix="bench-fuzz-")),
    )
    started = time.monotonic()
    with open(os.devnull, "w") as quiet:
        records, _ = run_campaign(options, Progress(args.examples, stream=quiet))
    wall = time.monotonic() - started
    generated = [r for r in records if not r.shrinking]
    caffe = sum(r.seconds.get("caffe", 0.0) for r in records)
    reference = sum(r.seconds.get("reference", 0.0) for r in records)
    shard_time = wall * args.jobs
    print(
        f"{len(generated)} cases ({len(records) - len(generated)} more while shrinking) in {wall:.1f} s "
        f"with --jobs {args.jobs}: {len(generated) / wall:.1f} cases/s"
    )
    print(
        f"share of shard time: Caffe {caffe / shard_time:.0%}, reference engine {reference / shard_time:.0%}, "
        f"harness {1 - (caffe + reference) / shard_time:.0%}"
    )
    print(
        f"verdicts: { {v: sum(r.verdict == v for r in generated) for v in ('agree', 'disagree', 'skipped')} }"
    )
    per_case = 1000 * shard_time / max(1, len(records))
    alone = generation_ms(min(args.examples, 300), args.seed)
    print(
        f"shard time per case {per_case:.1f} ms; generation alone {alone:.1f} ms CPU per case "
        f"({alone / per_case:.0%} of it)"
    )


def generation_ms(examples: int, seed: int) -> float:
    """CPU milliseconds per case that Hypothesis and the campaign's strategy take on their own."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as fixed_seed

    from harness.generate import cases

    count = 0

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @fixed_seed(seed)
    @given(cases(**DEFAULT_STRATEGY_OPTIONS))
    def generate(case):
        nonlocal count
        count += 1

    started = time.process_time()
    generate()
    return 1000 * (time.process_time() - started) / max(1, count)


if __name__ == "__main__":
    main()
