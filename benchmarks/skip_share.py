"""The share of a campaign's cases skipped for an engine that models only part of Caffe:
a forward-and-SGD engine of a handful of layer types (tests/harness/fake_engines.py's
HandfulReference, which answers UNSUPPORTED to any case holding another type or solver),
against the reference engine as the oracle, for speed. The campaign draws within the
engine's capabilities, so the skips should be few (the goal: under 30%).

    python benchmarks/skip_share.py [--time 240] [--seed 1]

Measured here (4 minutes, seed 1, on two cores another job kept busy): 8,487 cases, 21 skipped
(0.2%), none for a type or a solver: each was a case the reference engine itself does not
model (a MAX pooling backward that Caffe computes out of bounds).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.campaign.fuzz import CampaignOptions, run_campaign

ENGINE = "tests.harness.fake_engines:HandfulReference"


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time", type=float, default=240.0, help="seconds (default: 4 minutes)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    options = CampaignOptions(under_test=ENGINE, oracle="reference", seconds=args.time, seed=args.seed)
    records, _ = run_campaign(options, Quiet())
    generated = [r for r in records if not r.shrinking]
    verdicts = Counter(r.verdict for r in generated)
    skipped = verdicts.get("skipped", 0)
    print(f"{len(generated)} cases in {args.time:.0f} s (seed {args.seed}): {dict(verdicts)}")
    print(f"skipped: {skipped} of {len(generated)} ({100 * skipped / max(len(generated), 1):.1f}%)")
    for summary, count in Counter(r.summary for r in generated if r.verdict == "skipped").most_common(5):
        print(f"  {count:5d}  {summary}")


if __name__ == "__main__":
    main()
