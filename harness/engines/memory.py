"""What a case costs the harness's own memory, estimated before it runs, and the budget it must fit.

Real Caffe's worker has its cap (RLIMIT_AS, command.py's DEFAULT_MEMORY_MB); the harness holds
every array of both engines' results in its own process and had none (`check` on an Input of
1e9 elements reached 9 GB before it was killed). The estimate counts the elements of every blob
and param of the case's nets as the reference engine's own net construction shapes them, on
torch's meta device, which allocates nothing (about a millisecond for a generated net); then it
multiplies them by the copies each engine keeps. It errs high: every blob counted at the largest
shape it takes, shared params and split tops counted as their own, and working memory allowed
for. A case over the budget is refused with the estimate in the message, never run.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

from harness.case import Case
from harness.errors import HarnessError

DEFAULT_MEMORY_BUDGET = 2 << 30  # bytes: one case's arrays, both engines' copies of them, the comparison
CAFFE_ITEMSIZE = 4  # the worker sends float32 arrays; the case's arrays are float32 too
# Solver history sets (Adam and AdaDelta keep two per param), plus one for the update's temporaries.
SOLVER_PARAM_COPIES = 3
# array_mismatch's temporaries on the largest array: two float64 copies and their difference,
# four boolean masks.
COMPARE_BYTES_PER_ELEMENT = 3 * 8 + 4
SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass(frozen=True)
class Footprint:
    """Element counts of a case's nets: its net and, with a solver, the solver's own train net
    (the larger count of the two)."""

    blobs: int = 0  # every blob's elements (data; its diff is as large), at its largest shape
    params: int = 0  # every param blob's elements
    # What the layers hold beyond their blobs: every layer's scratch_count, and the largest
    # temporary_count (a layer frees its temporaries before the next one runs).
    working: int = 0
    largest: int = 0  # the largest blob or param: a comparison's temporaries scale with it
    arrays: int = 0  # the case's own input and param arrays
    iterations: int = 0  # solver iterations: each result keeps the params after each one

    def reference_bytes(self, itemsize: int = 8) -> int:
        """The reference engine's peak: each net's blobs and params (data and diff) and working
        memory, the result's copies (blob data and diff, param diff), and with a solver its
        second net, its history and each iteration's params."""
        net = 2 * self.blobs + 2 * self.params + self.working
        result = 2 * self.blobs + self.params
        solver = 0
        if self.iterations:
            solver = net + (SOLVER_PARAM_COPIES + self.iterations) * self.params
        return itemsize * (net + result + solver)

    def caffe_bytes(self) -> int:
        """What the Caffe engine holds here (the worker's own memory is capped apart): the case's
        arrays as sent (an npz copy, where the worker speaks no raw arrays) and the reply, blob
        data and diff, param diffs and each iteration's params."""
        reply = 2 * self.blobs + (1 + self.iterations) * self.params
        return CAFFE_ITEMSIZE * (self.arrays + reply)

    def harness_bytes(self) -> int:
        """check, replay and a campaign's case: the case, the reference engine in float64, the
        Caffe engine, and the comparison of their results."""
        return (
            CAFFE_ITEMSIZE * self.arrays
            + self.reference_bytes()
            + self.caffe_bytes()
            + COMPARE_BYTES_PER_ELEMENT * self.largest
        )

    def describe(self) -> str:
        iterations = f", {self.iterations} solver iterations" if self.iterations else ""
        return f"{self.blobs} blob and {self.params} param elements{iterations}"


def case_footprint(case: Case) -> Footprint:
    """The Footprint of a case. Its inputs' shapes count (they reshape the net); a case without
    arrays yet (check and explain estimate a user's net before drawing them) counts its nets
    as they are declared."""
    sizes = [value.size for value in case.arrays().values()]
    shapes = tuple(sorted((name, tuple(value.shape)) for name, value in case.inputs.items()))
    blobs, params, working, largest = _net_counts(
        case.net, case.solver, case.phase, case.level, case.stages, shapes
    )
    return Footprint(blobs, params, working, max([largest, *sizes]), sum(sizes), case.iterations)


# Both engines of a pair estimate the same case: the second asks the cache.
@functools.lru_cache(maxsize=64)
def _net_counts(
    net: str, solver: str | None, phase: str, level: int, stages, input_shapes
) -> tuple[int, ...]:
    """_counts of the case's net and, with a solver, the larger of those and its train net's.
    A net the reference engine refuses counts as empty: it makes no blobs there, and Caffe,
    which refuses it too, sends none."""
    from google.protobuf import text_format

    from reference_engine.checks import CaffeError, Unsupported
    from reference_engine.net import read_net_param, read_solver_net_param

    from .reference import case_solver_param

    counts = [(0, 0, 0, 0)]
    try:
        counts.append(_counts(read_net_param(net, phase, level, stages)[0], dict(input_shapes)))
        if solver is not None:
            # The solver's train net as the reference engine states it; one iteration stands
            # for any number, which does not change the net.
            solver_param = case_solver_param(Case(net, solver, phase, level, stages, iterations=1))
            counts.append(_counts(read_solver_net_param(net, solver_param)[0], dict(input_shapes)))
    except (CaffeError, Unsupported, text_format.ParseError):
        pass
    return tuple(max(values) for values in zip(*counts))


def _counts(param, input_shapes: dict) -> tuple[int, int, int, int]:
    """(blob, param, working and largest element counts) of the reference engine's Net for
    ``param``, built on the meta device; with ``input_shapes`` that differ from the net's own,
    reshaped by them as a forward reshapes it, each blob counted at the larger of its shapes."""
    import torch

    from reference_engine.checks import CaffeError
    from reference_engine.net import Net

    net = Net(param, torch.float32, "meta")
    blob_counts, working = [blob.count() for blob in net.blobs], _working(net)
    given = {name: list(shape) for name, shape in input_shapes.items() if name in net.topology.blob_names}
    if any(shape != net.blob(name).shape for name, shape in given.items()):
        for name, shape in given.items():
            net.blob(name).reshape(shape)
        try:
            for node, layer in zip(net.topology.layers, net.layers):
                layer.reshape(*_bottoms_and_tops(net, node))
        except CaffeError:
            pass  # the forward aborts at this layer: the blobs after it keep their first shapes
        blob_counts = [max(n, blob.count()) for n, blob in zip(blob_counts, net.blobs)]
        working = max(working, _working(net))
    param_counts = [blob.count() for layer in net.layers for blob in layer.blobs]
    return sum(blob_counts), sum(param_counts), working, max(blob_counts + param_counts, default=0)


def _working(net) -> int:
    layers = [(layer, *_bottoms_and_tops(net, node)) for node, layer in zip(net.topology.layers, net.layers)]
    scratch = sum(layer.scratch_count(bottom, top) for layer, bottom, top in layers)
    return scratch + max((layer.temporary_count(bottom, top) for layer, bottom, top in layers), default=0)


def _bottoms_and_tops(net, node):
    return [net.blobs[b] for b in node.bottom_ids], [net.blobs[t] for t in node.top_ids]


def budget_refusal(footprint: Footprint, needed: int, budget: int | None, who: str) -> str | None:
    """Why ``who``, needing ``needed`` bytes for a case of this footprint, must not run it with
    this budget (None: no budget), or None."""
    if budget is None or needed <= budget:
        return None
    return (
        f"{who} needs about {format_size(needed)} for this case ({footprint.describe()}), over the "
        f"memory budget of {format_size(budget)} (--memory-budget)"
    )


def require_within_budget(case: Case, budget: int | None, what: str) -> None:
    """What check, explain and replay ask before they build anything: a HarnessError naming
    ``what`` where the harness (both engines and their comparison) would need more than
    ``budget`` bytes for ``case``. A case without arrays yet counts its nets as declared."""
    footprint = case_footprint(case)
    too_large = budget_refusal(footprint, footprint.harness_bytes(), budget, "the harness")
    if too_large is not None:
        raise HarnessError(f"{what}: {too_large}")


def format_size(size: int) -> str:
    for unit in "tgmk":
        if size >= SIZE_UNITS[unit]:
            return f"{size / SIZE_UNITS[unit]:.1f} {unit.upper()}iB"
    return f"{size} bytes"


def parse_size(text: str) -> int:
    """A size in bytes from "2G", "512MiB", "1.5g" or "1000000" (binary units: K, M, G, T)."""
    found = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if found is None:
        raise HarnessError(f"memory size {text!r}: expected a number with an optional K, M, G or T unit")
    return math.floor(float(found.group(1)) * SIZE_UNITS[found.group(2)])
