"""Compare two engines' results on one case, and say where they first disagree.

Flags and layer lists are compared exactly. Arrays are compared with the
tolerances below, one entry per quantity, all in this one table.

Why these tolerances. Real Caffe computes in float32 (pycaffe is always float);
the reference engine computes in float64 by default, so the difference is
Caffe's own rounding. Each float32 operation is exact to half an ulp (6e-8
relative); a value that is a sum of n products carries an error up to about
n·6e-8 times the size of its terms, and the terms can be larger than the result
(cancellation). So the error bound is relative to the largest magnitude in the
array on either side, not to each element: |ref - caffe| <= atol + rtol·max(|ref|, |caffe|)
over the whole array, where the scale also counts what went into the computation (the
largest value between the net's inputs and the layer's bottoms for forward data, the largest
diff between the loss and its tops for bottom diffs, that times its inputs, or 1 for a bias,
for param diffs): a result that cancels to about zero (BatchNorm's gradient of a sum, MVN of two close
values) carries rounding of the size of those terms, not of itself. rtol grows with how
many float32 roundings stand between the inputs and the quantity: forward data < bottom
diffs < param diffs < solver updates (where adaptive solvers divide by square roots of
small accumulated values). A solver iteration is judged by its update w_k - w_(k-1),
relative to the update plus 16 ulps of the weights, so that a wrong update rule cannot hide
behind a small learning rate. atol absorbs values that cancel to near zero. A param whose
gradient is rounding on both sides (zero in exact arithmetic) has no update compared: an
adaptive solver makes a step of Caffe's rounding error (_rounding_only).
NaN must meet NaN and an infinity the same infinity; anything else is a mismatch.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from harness.capabilities import MODELLED_STAGES
from harness.case import LayerRecord, Outcome, Result
from reference_engine.topology import AUTOMATIC_TOP


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float


TOLERANCES = {
    "forward": Tolerance(rtol=1e-4, atol=1e-6),
    "bottom_diff": Tolerance(rtol=5e-4, atol=1e-6),
    "param_diff": Tolerance(rtol=5e-4, atol=1e-6),
    "loss": Tolerance(rtol=1e-4, atol=1e-6),
    "weights": Tolerance(rtol=1e-3, atol=1e-6),
    "update": Tolerance(rtol=1e-3, atol=1e-7),
}
# An update is a difference of float32 weights: each carries half an ulp (2**-24 relative).
# Allow 16 ulps of the weights' size on top of the update's own tolerance.
WEIGHT_ROUNDING = 16 * 2.0**-24

# Flags compared exactly, with the words a report uses for them.
FLAG_FIELDS = {
    "logged_need_backward": "need_backward as Caffe logs it",
    "need_backward": "need_backward",
    "bottom_need_backward": "bottom_need_backward",
    "param_propagate_down": "param_propagate_down",
    "param_lr": "lr_mult after sharing",
    "param_decay": "decay_mult after sharing",
}


@dataclass(frozen=True)
class Mismatch:
    kind: str  # "outcome", "layers", "flags", a key of TOLERANCES
    layer: str | None  # the layer blamed, if any
    message: str  # what differs, in words (for an array: where, both values, the tolerance)
    max_abs_error: float | None = None
    # What differs, free of the case's names and numbers ("top 0 data", "param 1 update",
    # "need_backward", an outcome's message shape): with the blamed layer's type and role it
    # names the cause (fuzz.signature), which a shrink must keep.
    quantity: str = ""

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> Mismatch:
        error = d.get("max_abs_error")  # "Infinity" or "NaN" where not finite (versions.json_text)
        return cls(**{**d, "max_abs_error": None if error is None else float(error)})


@dataclass
class Comparison:
    mismatches: list[Mismatch] = field(default_factory=list)
    skipped: str | None = None  # why the engines were not compared: one does not model this case

    @property
    def agree(self) -> bool:
        return not self.mismatches

    @property
    def verdict(self) -> str:
        if self.skipped:
            return "skipped"
        return "agree" if self.agree else "disagree"

    @property
    def first(self) -> Mismatch | None:
        return self.mismatches[0] if self.mismatches else None

    def summary(self) -> str:
        if self.skipped:
            return f"skipped: {self.skipped}"
        if self.agree:
            return "agree"
        more = f" (and {len(self.mismatches) - 1} more)" if len(self.mismatches) > 1 else ""
        return self.mismatches[0].message + more

    def to_json(self) -> dict:
        # The verdict is derived, stored only for whoever reads the file.
        return {
            "verdict": self.verdict,
            "skipped": self.skipped,
            "mismatches": [m.to_json() for m in self.mismatches],
        }

    @classmethod
    def from_json(cls, d: dict) -> Comparison:
        return cls([Mismatch.from_json(m) for m in d["mismatches"]], d["skipped"])


def normalise_message(message: str) -> str:
    """Caffe's message without what legitimately differs: the list of known layer types, and
    the directory an engine wrote the case's files into."""
    message = re.sub(r" \(known types: [^)]*\)", "", message.strip())
    return re.sub(r"(Failed to parse \w+ file: )\S*/", r"\1", message)


def message_shape(message: str) -> str:
    """A message without the case's own names and numbers, so that one cause, met on many
    nets, reads the same: quoted names and numbers become placeholders, cut to 80 characters."""
    shape = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", normalise_message(message))
    shape = re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "N", shape)
    return shape[:80]


def compare(
    ref: Result, other: Result, initial_params: dict | None = None, stages: tuple[str, ...] = MODELLED_STAGES
) -> Comparison:
    """Everything on which ``other`` (real Caffe, usually) and ``ref`` disagree, in causal
    order: the layer list and its flags (the net as built), the forward layer by layer and its
    loss, the backward from the last layer to the first, then each solver iteration's loss and
    update. So the first mismatch is the earliest quantity that differs: the one to blame.

    Where the outcomes differ, what both engines produced before the failure is compared
    first (a wrong shape that makes a later layer crash is blamed on the layer that made it),
    then the outcomes. ``initial_params`` (the case's) lets the first solver iteration be
    compared as an update. ``stages``: what the engine under test models
    (harness/capabilities.py); where that is the forward only, the layer lists and the forward
    data are all that is compared."""
    for r in (ref, other):  # first: whatever an engine models, Caffe's answer means nothing here
        if r.outcome is Outcome.CAFFE_UNDEFINED:
            return Comparison(skipped=f"Caffe's behaviour is undefined here: {r.message}")
    for r in (ref, other):
        if r.outcome is Outcome.UNSUPPORTED:
            return Comparison(skipped=f"{r.engine} does not model this case: {r.message}")
    result = Comparison()
    if "backward" not in stages:
        ref, other = _forward_part(ref), _forward_part(other)
    both = _Pair(ref, other, result, complete=ref.outcome is Outcome.OK and other.outcome is Outcome.OK)
    # Where both ran to the end, their layer lists are compared whatever they hold (an empty one
    # is a mismatch); where one failed, only what both built.
    built = both.complete or (ref.layers and other.layers and "init" not in (ref.stage, other.stage))
    if built and _compare_layers(ref, other, result):
        _compare_flags(ref, other, result)
        _compare_arrays(both, initial_params)
    _compare_outcomes(ref, other, result)
    return result


def _compare_outcomes(ref: Result, other: Result, result: Comparison):
    stage = ref.stage or other.stage
    if (ref.outcome, ref.stage) != (other.outcome, other.stage):
        failed = [r for r in (ref, other) if r.outcome is not Outcome.OK] or [ref]
        result.mismatches.append(
            Mismatch(
                "outcome",
                None,
                f"outcome: {ref.engine}={_outcome(ref)} {other.engine}={_outcome(other)}",
                quantity=f"{ref.outcome.value}/{other.outcome.value} at {stage}: "
                + " / ".join(message_shape(r.message) for r in failed),
            )
        )
    elif ref.outcome is not Outcome.OK and normalise_message(ref.message) != normalise_message(other.message):
        result.mismatches.append(
            Mismatch(
                "outcome",
                None,
                f"{ref.outcome.value} at {ref.stage} with different messages: "
                f"{ref.engine}={ref.message!r} {other.engine}={other.message!r}",
                quantity=f"{ref.outcome.value} at {stage}: "
                f"{message_shape(ref.message)} / {message_shape(other.message)}",
            )
        )


def _forward_part(r: Result) -> Result:
    """What a forward pass tells: the layer list without its flags, and the blob data."""
    layers = tuple(LayerRecord(x.name, x.type, x.bottoms, x.tops) for x in r.layers)
    return replace(
        r, layers=layers, losses=(), blob_diff={}, param_diff={}, param_history=(), in_place_diff={}
    )


def _outcome(r: Result) -> str:
    text = r.outcome.value + (f" at {r.stage}" if r.stage else "")
    return text + (f" ({r.message})" if r.message else "")


def _wiring(record):
    return (
        record.name,
        record.type,
        tuple(record.bottoms),
        tuple(t for t in record.tops if t != AUTOMATIC_TOP),
    )


def _compare_layers(ref: Result, other: Result, result: Comparison) -> bool:
    a, b = [_wiring(l) for l in ref.layers], [_wiring(l) for l in other.layers]
    if a == b:
        return True
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            result.mismatches.append(
                Mismatch(
                    "layers",
                    x[0],
                    f"layer {i} differs: {ref.engine}={_describe(x)} {other.engine}={_describe(y)}",
                    quantity="layer list",
                )
            )
            return False
    longer, name = (a, ref.engine) if len(a) > len(b) else (b, other.engine)
    extra = ", ".join(l[0] for l in longer[min(len(a), len(b)) :])
    result.mismatches.append(
        Mismatch("layers", None, f"only {name} has the layers {extra}", quantity="layer count")
    )
    return False


def _describe(wiring) -> str:
    name, type_, bottoms, tops = wiring
    return f"{name} ({type_}: {', '.join(bottoms) or '-'} -> {', '.join(tops) or '-'})"


def _compare_flags(ref: Result, other: Result, result: Comparison):
    for x, y in zip(ref.layers, other.layers):
        for name, words in FLAG_FIELDS.items():
            u, v = getattr(x, name), getattr(y, name)
            if u is not None and v is not None and _flag_value(u) != _flag_value(v):
                result.mismatches.append(
                    Mismatch(
                        "flags",
                        x.name,
                        f"{x.name} {words}: {ref.engine}={_flag_value(u)} {other.engine}={_flag_value(v)}",
                        quantity=name,
                    )
                )


def _flag_value(value):
    if isinstance(value, (tuple, list)):
        return [_flag_value(v) for v in value]
    if isinstance(value, float):
        return float(np.float32(value))  # multipliers are proto floats on both sides
    return value


def _size(array) -> float:
    """The largest finite |value| of an array (0 when it has none)."""
    values = np.abs(np.asarray(array, dtype=np.float64))
    values = values[np.isfinite(values)]
    return float(values.max()) if values.size else 0.0


def _largest(sizes: dict[str, float], names) -> float:
    return max((sizes[n] for n in names if n in sizes), default=0.0)


@dataclass
class _Pair:
    """Both results, the comparison they fill, and whether both ran to the end: where one
    failed, an array only one of them has is not a mismatch (the outcomes say why)."""

    ref: Result
    other: Result
    result: Comparison
    complete: bool

    def check(self, kind, layer, quantity, what, a, b, scale: float = 0.0):
        names = self.ref.engine, self.other.engine
        if a is None or b is None:
            if self.complete and (a is not None or b is not None):
                missing = names[0] if a is None else names[1]
                self.result.mismatches.append(
                    Mismatch(kind, layer, f"{what}: missing from {missing}'s result", quantity=quantity)
                )
            return
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            self.result.mismatches.append(
                Mismatch(
                    kind, layer, f"{what}: shape {names[0]}={a.shape} {names[1]}={b.shape}", quantity=quantity
                )
            )
            return
        message, error = array_mismatch(a, b, TOLERANCES[kind], *names, scale)
        if message:
            self.result.mismatches.append(Mismatch(kind, layer, f"{what}: {message}", error, quantity))

    def values(self, field: str, key):
        return getattr(self.ref, field).get(key), getattr(self.other, field).get(key)


def _in_place(record: LayerRecord, blob: str) -> bool:
    return blob in record.bottoms and blob in record.tops


def _compare_arrays(both: _Pair, initial_params: dict | None):
    ref, other, layers = both.ref, both.other, both.ref.layers
    # Each blob's size once: a blob is read by several layers, and by several of the scales below.
    data_size = {name: _size(a) for name, a in ref.blob_data.items()}
    diff_sizes = [{name: _size(a) for name, a in r.blob_diff.items()} for r in (ref, other)]
    _compare_pass(both, "forward", _forward_steps(both), [data_size])
    values = max(data_size.values(), default=0.0)  # a loss sums weighted terms that may cancel
    _compare_loss(both, 0, values)
    incoming_of = _compare_pass(both, "bottom_diff", _backward_steps(both), diff_sizes)[::-1]
    rounding_only = set()  # (layer, i): gradients that are rounding on both sides, see below
    for record, incoming in zip(layers, incoming_of):
        # A param diff sums incoming diffs times bottom values, or times 1 (a bias; Embed's rows).
        terms = incoming * max(1.0, _largest(data_size, record.bottoms))
        for i, (x, y) in enumerate(
            zip(ref.param_diff.get(record.name, ()), other.param_diff.get(record.name, ()))
        ):
            both.check(
                "param_diff", record.name, f"param {i} diff", f"{record.name} param diff {i}", x, y, terms
            )
            if _rounding_only(x, y, TOLERANCES["param_diff"].rtol * terms):
                rounding_only.add((record.name, i))
    # Iteration k computes its loss on the weights of iteration k-1, then updates them: its
    # loss comes before its update, and a wrong update shows first as itself, not as the
    # next iteration's loss.
    previous = (initial_params or {}, initial_params or {})
    for k, snapshots in enumerate(zip(ref.param_history, other.param_history), start=1):
        _compare_loss(both, k, values)
        _compare_update(both, k, previous, snapshots, rounding_only)
        previous = snapshots
    if both.complete and len(ref.param_history) != len(other.param_history):
        both.result.mismatches.append(
            Mismatch(
                "weights",
                None,
                f"solver iterations: {ref.engine}="
                f"{len(ref.param_history)} {other.engine}={len(other.param_history)}",
                quantity="iterations",
            )
        )


def _compare_loss(both: _Pair, k: int, values: float):
    if k < len(both.ref.losses) and k < len(both.other.losses):
        what = "forward loss" if k == 0 else f"loss of solver iteration {k}"
        x, y = np.float64(both.ref.losses[k]), np.float64(both.other.losses[k])
        both.check("loss", None, "forward loss" if k == 0 else "solver loss", what, x, y, values)


def _compare_update(both: _Pair, k: int, previous, snapshots, rounding_only):
    """Iteration k's update w_k - w_(k-1), judged by the size of the update itself plus the
    float32 rounding of the weights: a tolerance relative to the weights alone would hide a
    wrong update rule behind a small learning rate."""
    for record in both.ref.layers:
        before_a, before_b = previous[0].get(record.name, ()), previous[1].get(record.name, ())
        for i, (x, y) in enumerate(zip(snapshots[0].get(record.name, ()), snapshots[1].get(record.name, ()))):
            if (record.name, i) in rounding_only:
                continue
            x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
            if i < len(before_a) and i < len(before_b):
                both.check(
                    "update",
                    record.name,
                    f"param {i} update",
                    f"{record.name} param {i} update at iteration {k}",
                    x - np.asarray(before_a[i], np.float64),
                    y - np.asarray(before_b[i], np.float64),
                    WEIGHT_ROUNDING * _size(x) / TOLERANCES["update"].rtol,
                )
            else:
                what = f"{record.name} param {i} after iteration {k}"
                both.check("weights", record.name, f"param {i} weights", what, x, y)


def _forward_steps(both: _Pair):
    """The forward, layer by layer: what each layer reads and writes, and the values it is
    blamed for. A top that a later layer rewrites in place is judged as that layer reads it
    (in_place_data), and only the last writer is judged by the blob's final data; where an
    engine gave no in_place_data, the top of an earlier writer is not seen."""
    layers, steps = both.ref.layers, []
    for i, record in enumerate(layers):
        blamed = []
        for k, top in enumerate(dict.fromkeys(record.tops)):
            reader = next((later for later in layers[i + 1 :] if _in_place(later, top)), None)
            what, quantity = f"{record.name} top '{top}' data", f"top {k} data"
            if reader is None:
                blamed.append((what, quantity, *both.values("blob_data", top)))
            else:
                values = both.values("in_place_data", reader.name)
                if all(v is not None for v in values):
                    blamed.append((f"{what} (as {reader.name} reads it in place)", quantity, *values))
        steps.append((record, record.bottoms, record.tops, blamed))
    return steps


def _backward_steps(both: _Pair):
    """The backward, last layer first: what each layer reads and writes, and the bottom diffs
    it is blamed for. A bottom diff that an earlier layer in place on that blob reads next is
    judged as that layer reads it (in_place_diff); the final diff of a blob is the work of the
    last layer to run on it, its first reader."""
    layers, steps = both.ref.layers, []
    first_reader = {}
    for record in layers:
        for bottom in record.bottoms:
            first_reader.setdefault(bottom, record.name)
    for i in reversed(range(len(layers))):
        record, blamed = layers[i], []
        for k, bottom in enumerate(record.bottoms):
            what, quantity = f"{record.name} bottom diff {k} ('{bottom}')", f"bottom {k} diff"
            reader = next((earlier for earlier in reversed(layers[:i]) if _in_place(earlier, bottom)), None)
            if reader is not None:
                values = both.values("in_place_diff", reader.name)
                if all(v is not None for v in values):
                    blamed.append((f"{what} (as {reader.name} reads it in place)", quantity, *values))
            elif first_reader[bottom] == record.name:
                blamed.append((what, quantity, *both.values("blob_diff", bottom)))
        steps.append((record, record.tops, record.bottoms, blamed))
    return steps


def _rounding_only(a, b, noise: float) -> bool:
    """Whether a param's gradient is zero but for rounding on both sides (and not exactly zero
    on both: a param no gradient reaches still has its decay compared). Such a gradient is
    zero in exact arithmetic (a bias that a BatchNorm below takes out again), and an adaptive
    solver divides it by its own size: float32 Caffe then steps by up to the learning rate, in
    the direction of its rounding error, and the reference by about nothing. Neither step
    says anything about the update rule, so that param's updates are not compared."""
    if a is None or b is None:
        return False
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if not (np.isfinite(a).all() and np.isfinite(b).all()) or (not a.any() and not b.any()):
        return False
    return max(float(np.abs(a).max(initial=0.0)), float(np.abs(b).max(initial=0.0))) <= noise


def _compare_pass(both: _Pair, kind, steps, sizes) -> list[float]:
    """One pass over the net, forward or backward: ``steps`` holds, in running order, each layer
    with the blobs it reads, the blobs it writes, and (what, quantity, both values) for those
    it is blamed for. Returns each step's scale.

    A blob carries the rounding of every value on its way (a Reduction that cancels to about
    zero passes on the rounding of its terms; a gradient, that of the largest gradient on its
    way from the loss), so a layer's scale is the largest of ``sizes`` at or before what it
    reads."""
    carried: dict[str, float] = {}
    scales = []
    for record, reads, writes, blamed in steps:
        scale = max([_largest(s, reads) for s in sizes] + [carried.get(b, 0.0) for b in reads])
        for blob in writes:
            carried[blob] = max(carried.get(blob, 0.0), scale)
        for what, quantity, a, b in blamed:
            both.check(kind, record.name, quantity, what, a, b, scale)
        scales.append(scale)
    return scales


def array_mismatch(
    a: np.ndarray, b: np.ndarray, tol: Tolerance, name_a="reference", name_b="caffe", scale: float = 0.0
):
    """(message, max abs error) where a and b disagree beyond ``tol`` relative to the larger of
    their magnitudes and ``scale`` (the size of what went into them), else (None, error)."""
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    if (nan_a != nan_b).any():
        where = tuple(int(i) for i in np.argwhere(nan_a != nan_b)[0])
        return f"NaN at {where} on one side only: {name_a}={a[where]:.6g} {name_b}={b[where]:.6g}", float(
            "nan"
        )
    inf_a, inf_b = np.isinf(a), np.isinf(b)
    if (inf_a != inf_b).any() or (a[inf_a] != b[inf_a]).any():
        where = tuple(int(i) for i in np.argwhere((inf_a != inf_b) | (inf_a & (a != b)))[0])
        return f"infinity at {where}: {name_a}={a[where]:.6g} {name_b}={b[where]:.6g}", float("inf")
    finite = ~(nan_a | inf_a)
    if not finite.any():
        return None, 0.0
    diff = np.abs(np.where(finite, a, 0.0) - np.where(finite, b, 0.0))
    scale = max(float(np.abs(a[finite]).max()), float(np.abs(b[finite]).max()), scale)
    bound = tol.atol + tol.rtol * scale
    error = float(diff.max())
    if error <= bound:
        return None, error
    where = tuple(int(i) for i in np.unravel_index(int(diff.argmax()), diff.shape))
    return (
        f"max abs err {error:.2g} at {where}: {name_a}={a[where]:.6g} {name_b}={b[where]:.6g} "
        f"(tolerance {bound:.2g})"
    ), error
