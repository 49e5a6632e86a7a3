"""The share of a campaign's cases skipped for an engine that models only part of Caffe, and
whether the oracle ran any case that was skipped (a case outside the engine's capabilities is
run on neither engine; only a case the engine itself answers UNSUPPORTED costs the oracle a run).
The campaign draws within the engine's capabilities, so the skips should be few (the goal: under
30%). Two engines, each a forward-and-SGD engine of a handful of layer types:

- ``handful``: tests/harness/fake_engines.py's HandfulReference, which answers UNSUPPORTED to any
  case holding another type or solver, against the reference engine as the oracle, for speed;
- ``kit``: the adapter kit's example (tests/harness/kit_engines.py's ExampleEngine: seven layer
  types, SGD with the fixed and step policies), against real Caffe.

    python benchmarks/skip_share.py [--engine handful|kit] [--time 240] [--seed 1]

Measured here (two cores another job kept busy):
- handful, 4 minutes, seed 1: 8,487 cases, 21 skipped (0.2%), none for a type or a solver: each
  was a case the reference engine itself does not model (a MAX pooling backward that Caffe
  computes out of bounds).
- kit, 2 minutes, seed 1: 2,375 cases, every one agreeing with Caffe, none skipped (0.0%), so
  Caffe ran no skipped case.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.campaign.fuzz import CampaignOptions, run_campaign

# name: (the engine under test, the oracle)
ENGINES = {
    "handful": ("tests.harness.fake_engines:HandfulReference", "reference"),
    "kit": ("tests.harness.kit_engines:ExampleEngine", "caffe"),
}


class Quiet:
    """A campaign's progress, kept rather than shown."""

    def __init__(self):
        self.records = []

    def update(self, record):
        self.records.append(record)

    def note(self, text):
        pass

    def close(self):
        pass


def measure(engine: str, seconds: float, seed: int):
    under_test, oracle = ENGINES[engine]
    options = CampaignOptions(under_test=under_test, oracle=oracle, seconds=seconds, seed=seed)
    records, _ = run_campaign(options, Quiet())
    generated = [r for r in records if not r.shrinking]
    verdicts = Counter(r.verdict for r in generated)
    skipped = [r for r in generated if r.verdict == "skipped"]
    # A record's outcomes hold the engines that ran its case: none where the capabilities
    # kept it from both.
    oracle_ran = [r for r in skipped if oracle in r.outcomes]
    print(
        f"{engine}: {len(generated)} cases in {seconds:.0f} s (seed {seed}) against {oracle}: {dict(verdicts)}"
    )
    print(
        f"  skipped: {len(skipped)} of {len(generated)} ({100 * len(skipped) / max(len(generated), 1):.1f}%)"
    )
    print(f"  skipped cases that {oracle} ran: {len(oracle_ran)}")
    for summary, count in Counter(r.summary for r in skipped).most_common(5):
        print(f"  {count:5d}  {summary}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=sorted(ENGINES), help="one engine (default: both)")
    parser.add_argument("--time", type=float, default=240.0, help="seconds per engine (default: 4 minutes)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for engine in [args.engine] if args.engine else ENGINES:
        measure(engine, args.time, args.seed)


if __name__ == "__main__":
    main()
