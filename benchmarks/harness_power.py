"""The kill table: every planted bug (tests/planted_bugs.py) against a default campaign.

    python benchmarks/harness_power.py [--examples 1500] [--shrink-attempts 400] [--seed 0]

For each plant: whether a default fuzz run against real Caffe caught it, after how many
generated examples, how many layers the shrunk net kept, and the wall time. Figures only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.engines.caffe import CaffeEngine
from tests.planted_bugs import PLANTS, hunt_planted


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1500)
    parser.add_argument("--shrink-attempts", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    oracle = CaffeEngine(timeout_s=30)
    caught = 0
    try:
        for bug in sorted(PLANTS):
            started = time.monotonic()
            examples, bundle = hunt_planted(
                bug, oracle, args.examples, args.seed, tempfile.mkdtemp(), args.shrink_attempts
            )
            layers = bundle.case.net.count("layer {") if bundle else "-"
            caught += bundle is not None
            print(
                f"{bug:62s} {'caught' if bundle else 'SURVIVED':8s} examples {examples or '-':>5} "
                f"layers {layers:>3} {time.monotonic() - started:6.1f}s",
                flush=True,
            )
    finally:
        oracle.close()
    print(f"kill rate: {caught}/{len(PLANTS)}")


if __name__ == "__main__":
    main()
