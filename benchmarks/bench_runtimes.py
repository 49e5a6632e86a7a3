"""Per-case round trip through the docker runtime against the rootfs runtime, side by side.

    python benchmarks/bench_runtimes.py [--cases 30] [--small-only]

Both runtimes hold the same Caffe and run the same worker; what differs is the way in: a
container whose stdin and stdout the docker client relays, against a sandboxed process whose
pipes are the harness's own. Columns: the median round trip per case on each (ms, as
bench_worker.py measures it) and docker over rootfs. The last rows time a refused net followed
by a good case (the fork server's restart) and a worker's start, to its first answer. Prints
figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_worker import BATCH32_224, SMALL, make_case, measure, restart_pair

from harness.engines.caffe import CaffeEngine

RUNTIMES = ("rootfs", "docker")


def first_answer(runtime: str, case, starts: int) -> float:
    """Median seconds from a new engine to its first result: the worker's start included."""
    times = []
    for _ in range(starts):
        started = time.perf_counter()
        with CaffeEngine(runtime, timeout_s=600) as engine:
            engine.run(case)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=30, help="cases per row (the big net uses a fifth)")
    parser.add_argument("--small-only", action="store_true", help="skip the 224x224 conv net")
    args = parser.parse_args()
    small = make_case(SMALL, (4, 16), False)
    rows = [
        ("small MLP, batch 4", SMALL, (4, 16), False, args.cases),
        ("small MLP, batch 4 +1 SGD step", SMALL, (4, 16), True, args.cases),
    ]
    if not args.small_only:
        rows.append(
            ("conv net, batch 32x3x224x224", BATCH32_224, (32, 3, 224, 224), False, max(3, args.cases // 5))
        )
    figures: dict[str, list[float]] = {}
    for runtime in RUNTIMES:
        with CaffeEngine(runtime, timeout_s=600) as engine:
            for label, net, shape, with_solver, repeats in rows:
                case = make_case(net, shape, with_solver)
                figures.setdefault(label, []).append(measure(engine, case, repeats)["round_trip"])
            figures.setdefault("refused net + small MLP, per pair", []).append(
                restart_pair(engine, small, max(3, args.cases // 2))
            )
        figures.setdefault("worker start to first answer", []).append(
            first_answer(runtime, small, max(3, args.cases // 10))
        )
    print(f"medians; times in ms; {RUNTIMES[1]}/{RUNTIMES[0]} is the ratio")
    print(f"{'case':<40}{RUNTIMES[0]:>11}{RUNTIMES[1]:>11}{'ratio':>9}")
    for label, (rootfs, docker) in figures.items():
        print(f"{label:<40}{rootfs * 1e3:>11.2f}{docker * 1e3:>11.2f}{docker / rootfs:>9.2f}")


if __name__ == "__main__":
    main()
