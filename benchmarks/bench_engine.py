"""Forward+backward time of the reference engine against real Caffe, side by side, one run.

    python benchmarks/bench_engine.py [--batch 32] [--size 224] [--repeat 3] [--device cpu|cuda]

The net is inception-style: a stem (conv, pool, LRN), one inception block (1x1, 3x3 and 5x5
branches and a pool projection, joined by Concat) and a classifier with SoftmaxWithLoss.
Caffe's time is measured inside the worker around Net::Forward and Net::Backward (its own
CPU build, float32); the reference engine's around Net.forward and Net.backward in this
process, in float32 and float64, with torch's default threads. Prints figures only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.caffe_engine import CaffeEngine  # noqa: E402
from harness.case import Case  # noqa: E402
from reference_engine.engine import ReferenceEngine  # noqa: E402

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
        inputs={"data": rng.standard_normal((batch, 3, size, size)).astype(np.float32),
                "label": rng.integers(0, 10, batch).astype(np.float32)},
    )


def reference_seconds(the_case: Case, dtype: str, device: str, repeat: int) -> float:
    engine = ReferenceEngine(dtype=dtype, device=device, threads=None)
    net = engine._net(the_case)
    times = []
    for _ in range(repeat + 1):  # the first run warms up allocations
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        net.forward()
        net.backward()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def caffe_seconds(the_case: Case, repeat: int) -> float:
    engine = CaffeEngine(timeout_s=600)
    try:
        times = []
        for _ in range(repeat):
            result = engine.run(the_case)
            steps = result.info["steps_s"]
            times.append(steps["forward"] + steps["backward"])
        return statistics.median(times)
    finally:
        engine.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-caffe", action="store_true", help="reference engine only (e.g. on a GPU host)")
    args = parser.parse_args()
    the_case = case(args.batch, args.size)
    print(f"inception-style net, batch {args.batch}, {args.size}x{args.size}, torch threads {torch.get_num_threads()}")
    caffe = None if args.no_caffe else caffe_seconds(the_case, args.repeat)
    if caffe is not None:
        print(f"{'Caffe (CPU, float32)':<32} {caffe * 1000:9.1f} ms")
    for dtype in ("float32", "float64"):
        ours = reference_seconds(the_case, dtype, args.device, args.repeat)
        ratio = f"  Caffe/reference = {caffe / ours:.2f}x" if caffe is not None else ""
        print(f"{'reference (' + args.device + ', ' + dtype + ')':<32} {ours * 1000:9.1f} ms{ratio}")


if __name__ == "__main__":
    main()
