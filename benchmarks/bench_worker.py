"""Per-case cost of running Caffe through the worker, against Caffe's own time.

    python benchmarks/bench_worker.py [--runtime rootfs] [--cases 30]

Columns (medians over the cases, in ms):
- "round trip": measured by the harness: send the case, read every frame, decode the result;
- "Caffe own": what a pycaffe user would spend on the case: net construction, forward,
  backward, and the solver's construction and steps (the worker's steps_s);
- "all Caffe": every Caffe call the worker makes, the flags probe and the bottom_written
  observation's bookkeeping included;
- "worker": the worker's run_case, from the request decoded to the reply built;
- "trip/own": round trip over Caffe's own time.

The restart lines time a net Caffe refuses followed by a good one (per pair): served by the
fork server's fresh child, and, for comparison, by a worker started with --no-fork, which dies
with the refusal and is started again. Prints figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.case import Case
from harness.engines.caffe import CaffeEngine

# Caffe's own work on a case (the worker's steps_s keys), as a pycaffe user would do it.
OWN_STEPS = ("net", "forward", "backward", "solver_init", "step")

SMALL = """
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 4 dim: 16 } shape { dim: 4 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" inner_product_param { num_output: 32 } }
layer { name: "relu" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" inner_product_param { num_output: 10 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""

BATCH32_224 = """
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 32 dim: 3 dim: 224 dim: 224 } shape { dim: 32 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 32 kernel_size: 7 stride: 2 pad: 3 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
  convolution_param { num_output: 64 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "conv3" type: "Convolution" bottom: "pool2" top: "conv3"
  convolution_param { num_output: 64 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "pool3" type: "Pooling" bottom: "conv3" top: "pool3" pooling_param { pool: AVE global_pooling: true } }
layer { name: "ip" type: "InnerProduct" bottom: "pool3" top: "ip"
  inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


# net.cpp, Net::Init: CHECK propagate_down_size() == bottom_size() unless it is 0.
REFUSED = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 4 dim: 16 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  propagate_down: true propagate_down: false inner_product_param { num_output: 4 } }
"""


class NoForkCaffeEngine(CaffeEngine):
    """The worker without its fork server: an abort ends it, and the next case starts another."""

    def _argv(self, worker_log_dir: str) -> list[str]:
        return super()._argv(worker_log_dir) + ["--no-fork"]


def make_case(net: str, data_shape: tuple[int, ...], with_solver: bool) -> Case:
    rng = np.random.default_rng(0)
    inputs = {
        "data": rng.standard_normal(data_shape).astype(np.float32),
        "label": rng.integers(0, 10, data_shape[0]).astype(np.float32),
    }
    if with_solver:
        return Case(
            net=net,
            inputs=inputs,
            solver='type: "SGD" base_lr: 0.01 momentum: 0.9 lr_policy: "fixed"',
            iterations=1,
        )
    return Case(net=net, inputs=inputs)


def measure(engine: CaffeEngine, case: Case, repeats: int) -> dict:
    engine.run(case)  # warm: worker start, first allocation
    rows = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = engine.run(case)
        wall = time.perf_counter() - started
        if result.outcome.value != "ok":
            raise SystemExit(
                f"benchmark case failed: {result.outcome.value} at {result.stage}: {result.message}"
            )
        steps = result.info["steps_s"]
        own = sum(steps.get(step, 0.0) for step in OWN_STEPS)
        rows.append((wall, own, result.info["caffe_s"], result.info["worker_s"]))
    return {
        name: statistics.median(r[i] for r in rows)
        for i, name in enumerate(("round_trip", "own", "caffe", "worker"))
    }


def restart_pair(engine: CaffeEngine, good: Case, pairs: int) -> float:
    """Median seconds for a refused net followed by a good case."""
    engine.run(good)
    times = []
    for _ in range(pairs):
        started = time.perf_counter()
        refused = engine.run(Case(net=REFUSED))
        after = engine.run(good)
        times.append(time.perf_counter() - started)
        if refused.outcome.value != "refused" or after.outcome.value != "ok":
            raise SystemExit(f"restart pair: {refused.outcome.value}, then {after.outcome.value}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", default="rootfs")
    parser.add_argument("--cases", type=int, default=30, help="cases per row (the big net uses a fifth)")
    parser.add_argument("--small-only", action="store_true", help="skip the 224x224 conv net")
    args = parser.parse_args()
    small = make_case(SMALL, (4, 16), False)
    with CaffeEngine(args.runtime, timeout_s=600) as engine:
        print(f"runtime {args.runtime}; medians over the cases; times in ms")
        print(
            f"{'case':<40}{'round trip':>11}{'Caffe own':>11}{'all Caffe':>11}{'worker':>9}{'trip/own':>10}"
        )
        rows = [("small MLP, batch 4", SMALL, (4, 16), args.cases)]
        if not args.small_only:
            rows.append(
                ("conv net, batch 32x3x224x224", BATCH32_224, (32, 3, 224, 224), max(3, args.cases // 5))
            )
        for label, net, shape, repeats in rows:
            for with_solver in (False, True):
                m = measure(engine, make_case(net, shape, with_solver), repeats)
                name = label + (" +1 SGD step" if with_solver else "")
                print(
                    f"{name:<40}{m['round_trip'] * 1e3:>11.2f}{m['own'] * 1e3:>11.2f}"
                    f"{m['caffe'] * 1e3:>11.2f}{m['worker'] * 1e3:>9.2f}{m['round_trip'] / m['own']:>10.2f}"
                )
        pairs = max(3, args.cases // 2)
        forked = restart_pair(engine, small, pairs)
    with NoForkCaffeEngine(args.runtime, timeout_s=600) as engine:
        restarted = restart_pair(engine, small, max(3, pairs // 5))
    print(f"{'refused net + small MLP, per pair:':<40}{'fork server':>15}{forked * 1e3:>9.2f}")
    print(f"{'':<40}{'full restart':>15}{restarted * 1e3:>9.2f}")


if __name__ == "__main__":
    main()
