"""Forward+backward time of the reference engine against real Caffe, side by side, one run.

    python benchmarks/bench_engine.py [--batch 32] [--size 224] [--repeat 3] [--device cpu|cuda]

The net is inception-style: a stem (conv, pool, LRN), one inception block (1x1, 3x3 and 5x5
branches and a pool projection, joined by Concat) and a classifier with SoftmaxWithLoss.
Caffe's time is measured inside the worker around Net::Forward and Net::Backward (its own
CPU build, float32); the reference engine's around Net.forward and Net.backward in this
process, in float32 and float64, on a warm net and (float32) on a net built just before, as
Caffe's is: the worker builds a fresh net for every case. Both get --threads threads (OPENBLAS_NUM_THREADS for
Caffe's gemms, torch.set_num_threads for ours). The engines take turns, one run each per
round, and each prints its median. Prints figures only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.case import Case
from harness.engines.caffe import CaffeEngine
from harness.engines.reference import ReferenceEngine

INCEPTION = """
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: BATCH dim: 3 dim: SIZE dim: SIZE } shape { dim: BATCH } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 32 kernel_size: 7 stride: 2 pad: 3 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "norm1" type: "LRN" bottom: "pool1" top: "norm1" lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 } }
layer { name: "conv2" type: "Convolution" bottom: "norm1" top: "conv2"
  convolution_param { num_output: 64 kernel_size: 3 pad: 1 stride: 2 weight_filler { type: "xavier" } } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "b1x1" type: "Convolution" bottom: "conv2" top: "b1x1"
  convolution_param { num_output: 32 kernel_size: 1 weight_filler { type: "xavier" } } }
layer { name: "b3x3r" type: "Convolution" bottom: "conv2" top: "b3x3r"
  convolution_param { num_output: 32 kernel_size: 1 weight_filler { type: "xavier" } } }
layer { name: "b3x3" type: "Convolution" bottom: "b3x3r" top: "b3x3"
  convolution_param { num_output: 48 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "b5x5r" type: "Convolution" bottom: "conv2" top: "b5x5r"
  convolution_param { num_output: 8 kernel_size: 1 weight_filler { type: "xavier" } } }
layer { name: "b5x5" type: "Convolution" bottom: "b5x5r" top: "b5x5"
  convolution_param { num_output: 16 kernel_size: 5 pad: 2 weight_filler { type: "xavier" } } }
layer { name: "bpool" type: "Pooling" bottom: "conv2" top: "bpool" pooling_param { pool: MAX kernel_size: 3 stride: 1 pad: 1 } }
layer { name: "bproj" type: "Convolution" bottom: "bpool" top: "bproj"
  convolution_param { num_output: 16 kernel_size: 1 weight_filler { type: "xavier" } } }
layer { name: "concat" type: "Concat" bottom: "b1x1" bottom: "b3x3" bottom: "b5x5" bottom: "bproj" top: "concat" }
layer { name: "pool2" type: "Pooling" bottom: "concat" top: "pool2" pooling_param { pool: AVE global_pooling: true } }
layer { name: "ip" type: "InnerProduct" bottom: "pool2" top: "ip" inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def case(batch: int, size: int) -> Case:
    rng = np.random.default_rng(0)
    return Case(
        INCEPTION.replace("BATCH", str(batch)).replace("SIZE", str(size)),
        inputs={
            "data": rng.standard_normal((batch, 3, size, size)).astype(np.float32),
            "label": rng.integers(0, 10, batch).astype(np.float32),
        },
    )


class ReferenceRunner:
    """Each call times one Net.forward + Net.backward: of one net built once and run before
    (warm), or, as Caffe's worker and the harness run every case, of a net built just before
    (fresh: its buffers are new, the build is not timed)."""

    def __init__(self, the_case: Case, dtype: str, device: str, threads: int, fresh: bool = False):
        self.device, self.case, self.fresh = device, the_case, fresh
        self.engine = ReferenceEngine(dtype=dtype, device=device, threads=threads)
        self.net = self.engine._net(the_case)
        self()  # the first run warms the allocator (and, for a warm net, makes the kept buffers)

    def __call__(self) -> float:
        if self.fresh:
            self.net = None  # the old net's memory goes back first, as between two cases
            self.net = self.engine._net(self.case)
        if self.device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        self.net.forward()
        self.net.backward()
        if self.device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started


class CaffeRunner:
    """Real Caffe's worker; each call runs the case and reads Caffe's own forward + backward time."""

    def __init__(self, the_case: Case):
        self.case = the_case
        self.engine = CaffeEngine(timeout_s=600)

    def __call__(self) -> float:
        steps = self.engine.run(self.case).info["steps_s"]
        return steps["forward"] + steps["backward"]

    def close(self):
        self.engine.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count(),
        help="for torch and for Caffe's OpenBLAS alike (default: one per core)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-caffe", action="store_true", help="reference engine only (e.g. on a GPU host)")
    args = parser.parse_args()
    # The worker inherits this environment: Caffe's gemms get the same number of threads.
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    the_case = case(args.batch, args.size)
    print(
        f"inception-style net, batch {args.batch}, {args.size}x{args.size}, "
        f"{args.threads} threads (torch, and Caffe's OpenBLAS)"
    )
    runners = {} if args.no_caffe else {"Caffe (CPU, float32)": CaffeRunner(the_case)}
    runners[f"reference ({args.device}, float32, fresh)"] = ReferenceRunner(
        the_case, "float32", args.device, args.threads, fresh=True
    )
    for dtype in ("float32", "float64"):
        runners[f"reference ({args.device}, {dtype})"] = ReferenceRunner(
            the_case, dtype, args.device, args.threads
        )
    # Round-robin, so that a neighbour's load on a shared machine falls on every engine alike.
    times = {name: [] for name in runners}
    try:
        for _ in range(args.repeat):
            for name, run in runners.items():
                times[name].append(run())
    finally:
        for run in runners.values():
            if isinstance(run, CaffeRunner):
                run.close()
    caffe = statistics.median(times["Caffe (CPU, float32)"]) if not args.no_caffe else None
    for name, seconds in times.items():
        ours = statistics.median(seconds)
        ratio = (
            f"  Caffe/reference = {caffe / ours:.2f}x"
            if caffe is not None and name.startswith("reference")
            else ""
        )
        print(f"{name:<38} {ours * 1000:9.1f} ms{ratio}")


if __name__ == "__main__":
    main()
