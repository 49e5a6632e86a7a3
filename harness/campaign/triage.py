"""Precision triage: is a mismatch between the reference engine and Caffe a question of
semantics at all?

Caffe computes in float32, the reference in float64. A mismatch becomes a disagreement only
after two questions, asked in order, each answered by rerunning the reference engine:

1. float32: the same reference code, in Caffe's precision. Where that run agrees with Caffe,
   the float64 mismatch was float32's doing (an overflow to inf, a cancellation, a rounding
   that a kink or a comparison then amplified), not a rule of Caffe's.
2. conditioning: the float32 reference rerun on inputs and initial params moved by a few
   float32 ulps (several draws). Where the reference then disagrees with itself on the same
   quantity at the same layer by at least half the mismatch, the quantity is not determined
   at float32 precision (an adaptive step lr*g/(|g|+delta) with g near delta, say).

Why this is sound. The float32 and float64 runs execute the same semantics code, so a wrong
rule (a missing term, a wrong flag, a factor 1 + 1e-3 on one gradient) shows in both dtypes
and the float32 run disagrees with Caffe as the float64 one did; and a rule error moves a
well-conditioned quantity far more than a few ulps of its inputs do, so the spread stays
below the mismatch. What the triage calls precision is therefore either matched by the same
rules at Caffe's precision, or smaller than the quantity's own float32 sensitivity: neither
can be blamed on semantics. Flag, layer-list and outcome mismatches are never precision: a
flag has no rounding. The triage runs only on mismatches, so agreeing cases cost nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from harness.case import Case

from .compare import Comparison, compare

PRECISION_KINDS = ("forward", "bottom_diff", "param_diff", "loss", "weights", "update")
FLOAT32_EPS = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class Triage:
    """The triage's answer on one mismatching case."""

    precision: str | None  # None: a disagreement; else "float32" or "ill_conditioned"
    evidence: dict = field(default_factory=dict)

    @property
    def reason(self) -> str:
        if self.precision == "float32":
            return f"precision: the reference in float32 agrees with Caffe ({self.evidence['float64']})"
        if self.precision == "ill_conditioned":
            return (
                f"precision: a few float32 ulps of the inputs move this quantity by "
                f"{self.evidence['spread']:.3g}, the mismatch is {self.evidence['error']:.3g}"
            )
        return "semantics"

    def to_json(self) -> dict:
        return {"precision": self.precision, "evidence": self.evidence}


def perturbed(case: Case, rng: np.random.Generator, ulps: float) -> Case:
    """The case with every non-integer input and param value moved by up to ``ulps`` float32
    ulps (labels, indices and other integer values are left as they are)."""

    def move(array):
        array = np.asarray(array)
        if not np.issubdtype(array.dtype, np.floating):
            return array
        step = 1 + ulps * FLOAT32_EPS * rng.uniform(-1.0, 1.0, size=array.shape)
        return np.where(array == np.round(array), array, array * step).astype(array.dtype)

    return dataclasses.replace(
        case,
        inputs={k: move(v) for k, v in case.inputs.items()},
        params={k: tuple(move(b) for b in v) for k, v in case.params.items()},
    )


class PrecisionTriage:
    """Classifies a reference-versus-Caffe mismatch with the float32 twin of the engine under
    test: the same code (a planted rule error included) at Caffe's precision."""

    def __init__(self, float32_engine, draws: int = 4, ulps: float = 4.0):
        self.float32 = float32_engine
        self.draws, self.ulps = draws, ulps

    @classmethod
    def for_engines(cls, under_test, oracle) -> PrecisionTriage | None:
        """The triage for this pair: where Caffe is the oracle and the engine under test can
        run the same code in float32 (``in_float32()``, as the reference engine can)."""
        if oracle.name != "caffe" or not hasattr(under_test, "in_float32"):
            return None
        return cls(under_test.in_float32())

    def classify(self, case: Case, comparison: Comparison, caffe_result) -> Triage:
        first = comparison.first
        if first is None or first.kind not in PRECISION_KINDS or first.max_abs_error is None:
            return Triage(None)
        baseline = self.float32.run(case)
        in_float32 = compare(baseline, caffe_result, case.params)
        if in_float32.agree:
            return Triage("float32", {"float64": comparison.summary()})
        rng = np.random.default_rng(case.seed)
        spread = 0.0
        for _ in range(self.draws):
            moved = compare(self.float32.run(perturbed(case, rng, self.ulps)), baseline, case.params)
            spread = max(
                [spread]
                + [
                    m.max_abs_error or 0.0
                    for m in moved.mismatches
                    if (m.kind, m.layer, m.quantity) == (first.kind, first.layer, first.quantity)
                ]
            )
        evidence = {"float32": in_float32.summary(), "spread": spread, "error": first.max_abs_error}
        if spread >= 0.5 * first.max_abs_error:
            return Triage("ill_conditioned", evidence)
        return Triage(None, evidence)
