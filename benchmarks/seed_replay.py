"""Process replay: hash the cases a seed draws and the verdicts they get, through the
campaign's own hunt, so that a refactor can show it changed neither.

    python benchmarks/seed_replay.py [--examples 500] [--seeds 1 2]

Run it on two commits (git worktree) and compare the printed hashes.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.campaign.fuzz import Budget, CampaignOptions, Hunter, make_engine


class RecordingHunter(Hunter):
    """A hunt that also writes down each case it ran (its digest) and the verdict it got."""

    def execute(self, case, shrinking):
        record, comparison, results = super().execute(case, shrinking)
        self.__dict__.setdefault("rows", []).append(
            f"{case.digest()} {shrinking} {record.verdict} {record.signature} {record.summary}"
        )
        return record, comparison, results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    total = hashlib.sha256()
    for seed in args.seeds:
        options = CampaignOptions(seed=seed)
        reference, caffe = make_engine("reference", options), make_engine("caffe", options)
        with tempfile.TemporaryDirectory() as bundles:
            engines = {"under_test": "reference", "oracle": "caffe"}
            hunter = RecordingHunter(
                reference,
                caffe,
                engines,
                Budget(examples=args.examples),
                seed,
                Path(bundles),
                None,
                lambda record: None,
                {"refusals": True},
                shrink_attempts=40,
            )
            hunter.hunt()
        reference.close()
        caffe.close()
        rows = hunter.rows
        digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()
        total.update(digest.encode())
        verdicts = dict(Counter(row.split()[2] for row in rows))
        print(f"seed {seed}: {len(rows)} executions {verdicts} cases+verdicts sha256 {digest[:16]}")
    print("all", total.hexdigest()[:16])


if __name__ == "__main__":
    main()
