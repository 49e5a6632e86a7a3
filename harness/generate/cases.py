"""The case strategy: a net, maybe a solver, and arrays drawn from one seed.

Only the seed is drawn, never the arrays: shrinking then costs one integer, and the
arrays follow from numpy's RandomState(seed). Values are float32-representable and kept
away from kinks and ties wherever the rule under test is not the tie-breaking itself:
data inputs are distinct, spaced at least 0.0055 apart and at least 0.05 away from 0 (MAX pooling,
ArgMax and Eltwise MAX see no ties in their inputs, ReLU and AbsVal no zeros); labels
are integer class indices in range; positive-only layers (Log, fractional Power) are
only drawn on blobs that are positive by construction (kinds.py).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
from google.protobuf import text_format
from hypothesis import strategies as st

from harness.capabilities import EVERYTHING, Capabilities, within
from harness.case import Case
from harness.errors import HarnessError
from reference_engine.layer import layer_class

from .draft import NetDraft
from .draws import eager, integers
from .nets import net_drafts
from .solvers import LR_POLICIES, SOLVER_TYPES, solver_params

TIED_MAGNITUDES = np.array([0.25, 0.5, 0.75, 1.0])


@functools.cache
def optional_solvers(capabilities: Capabilities):
    """No solver first, else a SolverParameter of the types and lr policies allowed."""
    types = within(SOLVER_TYPES, capabilities.solver_types, "solver_types")
    policies = within(LR_POLICIES, capabilities.lr_policies, "lr_policies")
    return eager(st.none()) | eager(solver_params(types, policies))


@functools.cache
def required_solvers(capabilities: Capabilities, solver_type: str):
    """A SolverParameter of ``solver_type`` and the lr policies allowed, in every case."""
    types = within(SOLVER_TYPES, capabilities.solver_types, "solver_types")
    if not capabilities.models("solver") or "TRAIN" not in capabilities.phases:
        raise HarnessError(f"solver_type={solver_type!r}: these capabilities draw no solver")
    if solver_type not in types:
        raise HarnessError(
            f"solver_type={solver_type!r}: not among the solver types drawn ({', '.join(types)})"
        )
    policies = within(LR_POLICIES, capabilities.lr_policies, "lr_policies")
    return eager(solver_params((solver_type,), policies))


def tied_values(rng, shape, positive: bool = False) -> np.ndarray:
    """Values from a few exact magnitudes, so that equal values meet: the cases where a
    tie-breaking rule (MAX pooling's first maximum, Eltwise MAX, ArgMax) is what is tested."""
    count = math.prod(shape)
    magnitudes = rng.choice(TIED_MAGNITUDES, size=count)
    signs = np.ones(count) if positive else rng.choice([-1.0, 1.0], size=count)
    return (magnitudes * signs).reshape(shape).astype(np.float32)


def data_values(rng, shape, positive: bool = False) -> np.ndarray:
    """Distinct values: a random permutation of 0.05 + s (k + j), j in [0, 0.5), each with a
    random sign (or all positive). The step s is 0.011, or wider for small blobs (0.6 / count),
    so that a normalisation over a few elements (BatchNorm, MVN) divides by a spread well above
    its eps: float32 cancellation would otherwise dominate Caffe's result. The jitter j keeps
    the values off a lattice, where the mean of evenly spaced values is one of them: MVN
    centres it to a rounding error on either side of a ReLU's kink."""
    count = math.prod(shape)
    positions = rng.permutation(count) + 0.5 * rng.uniform(size=count)
    magnitudes = 0.05 + max(0.011, 0.6 / max(count, 1)) * positions
    signs = np.ones(count) if positive else rng.choice([-1.0, 1.0], size=count)
    return (magnitudes * signs).reshape(shape).astype(np.float32)


INPUT_VALUES = {
    "data": lambda rng, shape, classes: data_values(rng, shape),
    "positive": lambda rng, shape, classes: data_values(rng, shape, positive=True),
    "label": lambda rng, shape, classes: rng.randint(0, classes, size=shape).astype(np.float32),
    "index": lambda rng, shape, classes: rng.randint(0, classes, size=shape).astype(np.float32),
    "binary": lambda rng, shape, classes: rng.randint(0, 2, size=shape).astype(np.float32),
    "unit": lambda rng, shape, classes: rng.uniform(0.0, 1.0, size=shape).astype(np.float32),
    "infogain": lambda rng, shape, classes: rng.uniform(0.0, 1.0, size=shape).astype(np.float32),
}


def weights(rng, shape) -> np.ndarray:
    """uniform(-1, 1) / sqrt(fan in), fan in being the product of all but the first axis."""
    fan_in = math.prod(shape[1:]) if len(shape) >= 2 else 1
    return np.asarray(rng.uniform(-1.0, 1.0, size=shape) / math.sqrt(fan_in), dtype=np.float32)


def input_arrays(draft: NetDraft, rng) -> dict[str, np.ndarray]:
    out = {}
    for layer in draft.inputs:
        name = layer.top[0]
        role, classes = draft.input_roles[name]
        shape = tuple(layer.input_param.shape[0].dim)
        if draft.ties and role in ("data", "positive"):
            out[name] = tied_values(rng, shape, positive=role == "positive")
        else:
            out[name] = INPUT_VALUES[role](rng, shape, classes)
    return out


def param_arrays(draft: NetDraft, rng) -> dict[str, tuple[np.ndarray, ...]]:
    """Initial params of every layer the NetState keeps, shaped as the draft recorded them
    (the reference layer's own SetUp, draft.layer_shapes); a sharer gets its owner's arrays,
    the first of its name in net order (Net::ShareWeights makes them one memory in Caffe too)."""
    by_layer: dict[int, list] = {}
    for record in draft.params:
        by_layer.setdefault(record.layer, []).append(record)
    owners: dict[str, np.ndarray] = {}
    params = {}
    for index, records in by_layer.items():
        layer = draft.layers[index]
        shapes = [r.shape for r in records]
        special = layer_class(layer.type).blob_values(rng, shapes)
        arrays = list(special if special is not None else (weights(rng, s) for s in shapes))
        for j, record in enumerate(records):
            if record.name:
                arrays[j] = owners.setdefault(record.name, arrays[j])
        params[layer.name] = tuple(arrays)
    return params


def case_from_draft(draft: NetDraft, seed: int, solver: str | None = None, iterations: int = 0) -> Case:
    """The Case for a drawn net: arrays from RandomState(seed), the NetState in the case's fields.
    Data inputs are tied_values where the draft says ``ties``, distinct values elsewhere."""
    rng = np.random.RandomState(seed)
    net_param = draft.to_proto()
    inputs = input_arrays(draft, rng)
    params = param_arrays(draft, rng)
    net_param.ClearField("state")
    return Case(
        net=text_format.MessageToString(net_param),
        solver=solver,
        phase=draft.phase,
        level=draft.level,
        stages=tuple(draft.stages),
        iterations=iterations,
        inputs=inputs,
        params=params,
        seed=seed,
    )


def cases(
    max_layers: int = 8,
    max_losses: int = 3,
    refusals=False,
    train_dropout: bool = False,
    solvers: bool = True,
    capabilities: Capabilities = EVERYTHING,
    layer_type: str | None = None,
    solver_type: str | None = None,
):
    """harness.case.Case values: a net from ``nets()``, in TRAIN maybe a solver from
    ``solver_params()`` run for 1-3 iterations, and inputs and initial params made from
    one drawn seed. The net's NetState moves into the case's phase, level and stages.
    Only what ``capabilities`` allows is drawn: no solver where they stop before one.
    Cases for one feature's sake: ``layer_type``, every net keeps a layer of that type
    (``nets()``); ``solver_type``, every case is a TRAIN net and a solver of that type
    (whatever ``solvers`` says).

    Shrinks as ``nets()`` does, then towards no solver (where one is not required), distinct
    data values and seed 0."""
    # The strategies are built once here, not at each case: building a composite costs
    # Hypothesis a validation per call.
    if solver_type is not None:
        solver_strategy = required_solvers(capabilities, solver_type)
        # Caffe's solver builds its net in TRAIN (Solver::InitTrainNet).
        capabilities = dataclasses.replace(capabilities, phases=("TRAIN",))
    elif solvers and capabilities.models("solver"):
        solver_strategy = optional_solvers(capabilities)
    else:
        solver_strategy = None
    drafts = net_drafts(max_layers, max_losses, refusals, train_dropout, capabilities, layer_type)
    return _cases(drafts, solver_strategy)


@st.composite
def _cases(draw, drafts, solver_strategy):
    draft = draw(drafts)
    solver, iterations = None, 0
    if solver_strategy is not None and draft.phase == "TRAIN":
        solver_param = draw(solver_strategy)
        if solver_param is not None:
            solver = text_format.MessageToString(solver_param)
            iterations = draw(integers(1, 3))
    return case_from_draft(draft, draw(st.integers(0, 2**32 - 1)), solver, iterations)
