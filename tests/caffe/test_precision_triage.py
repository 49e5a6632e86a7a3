"""Precision triage (harness/campaign/triage.py) on real Caffe results: each class, and a
small planted rule error that it must still call a disagreement."""

from __future__ import annotations

from unittest import mock

import numpy as np

from harness.campaign.compare import compare
from harness.campaign.triage import PrecisionTriage
from harness.case import Case
from harness.engines.reference import ReferenceEngine
from reference_engine.layers.inner_product import InnerProductLayer

# float32 overflows where float64 does not: 2 * (2e19)^2 = 8e38 > 3.4e38.
OVERFLOW = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 } } }
layer { name: "sq" type: "Reduction" bottom: "x" top: "sq" reduction_param { operation: SUMSQ axis: 1 } }
layer { name: "loss" type: "Reduction" bottom: "sq" top: "loss" loss_weight: 1 }
"""

# 64 values summing to exactly 0 in float64; each float32 summation order leaves its own
# residue of ~1e-7, which the Power layer's scale makes 0.1: decided by rounding alone.
CANCELLATION = """
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 64 } } }
layer { name: "sum" type: "Reduction" bottom: "x" top: "sum" reduction_param { axis: 1 } }
layer { name: "amplify" type: "Power" bottom: "sum" top: "r" power_param { scale: 1e6 } }
layer { name: "loss" type: "Reduction" bottom: "r" top: "loss" loss_weight: 1 }
"""

FITTED = """
force_backward: true
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "t" type: "Input" top: "t" input_param { shape { dim: 2 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 2 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
"""


def cancelling_values(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    half = (rng.uniform(0.1, 1, 32) * 10.0 ** rng.integers(-3, 1, 32)).astype(np.float32)
    values = np.concatenate([half, -half])
    rng.shuffle(values)
    return values.reshape(1, 64)


def triaged(case, caffe_engine, engine=None):
    engine = engine or ReferenceEngine()
    caffe_result = caffe_engine.run(case)
    comparison = compare(engine.run(case), caffe_result, case.params)
    assert not comparison.agree, "the case was meant to mismatch in float64"
    return comparison, PrecisionTriage.for_engines(engine, caffe_engine).classify(
        case, comparison, caffe_result
    )


def test_a_float32_overflow_is_precision(caffe_engine):
    case = Case(net=OVERFLOW, inputs={"x": np.full((1, 2), 2e19, np.float32)})
    _, triage = triaged(case, caffe_engine)
    assert triage.precision == "float32"


def test_a_sum_that_cancels_is_precision_never_a_disagreement(caffe_engine):
    """Each seed's 64 values cancel exactly; the residue float32 leaves depends on the order
    of the sum, which OpenBLAS's sdot picks by CPU (an order may even cancel exactly, and then
    both engines agree). Where the residue shows, it is precision: float32 where the float32
    reference happens to sum in Caffe's order, else ill-conditioned by the perturbations."""
    classes = []
    for seed in range(8):
        case = Case(net=CANCELLATION, inputs={"x": cancelling_values(seed)}, seed=seed)
        caffe_result = caffe_engine.run(case)
        comparison = compare(ReferenceEngine().run(case), caffe_result, case.params)
        if comparison.agree:
            continue
        triage = PrecisionTriage.for_engines(ReferenceEngine(), caffe_engine).classify(
            case, comparison, caffe_result
        )
        assert triage.precision in ("float32", "ill_conditioned"), (seed, triage.evidence)
        if triage.precision == "ill_conditioned":
            assert triage.evidence["spread"] >= 0.5 * triage.evidence["error"]
        classes.append(triage.precision)
    assert len(classes) >= 3, "too few seeds left a residue to test the triage on"


def test_a_small_planted_gradient_error_is_still_a_disagreement(caffe_engine):
    """InnerProduct's bottom diff times 1 + 1e-3, in float64 and float32 alike."""
    rng = np.random.default_rng(4)
    case = Case(
        net=FITTED,
        inputs={
            "x": rng.standard_normal((2, 3)).astype(np.float32),
            "t": rng.standard_normal((2, 2)).astype(np.float32),
        },
        params={
            "ip": (rng.standard_normal((2, 3)).astype(np.float32), rng.standard_normal(2).astype(np.float32))
        },
    )
    backward = InnerProductLayer.backward

    def slightly_wrong(self, top, propagate_down, bottom):
        backward(self, top, propagate_down, bottom)
        if propagate_down[0]:
            bottom[0].diff.mul_(1 + 1e-3)

    with mock.patch.object(InnerProductLayer, "backward", slightly_wrong):
        comparison, triage = triaged(case, caffe_engine)
    assert comparison.first.kind == "bottom_diff"
    assert triage.precision is None, triage.reason
