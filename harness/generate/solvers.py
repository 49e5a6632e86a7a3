"""The solver strategy: SolverParameters without a net, ready for text_format.

Values stay where float32 Caffe is well-conditioned: base_lr <= 0.1, momentum < 1,
decays and clipping thresholds of ordinary size, and a delta no smaller than Caffe's
default. Caffe's own checks are honoured by construction: AdaGrad and RMSProp get no
momentum (sgd_solvers.hpp constructors), rms_decay lies in [0, 1), every lr_policy
gets the fields Solver::GetLearningRate reads.
"""

from __future__ import annotations

from hypothesis import strategies as st

from reference_engine import caffe_pb2

from .draws import eager, integers, maybe, pick

SOLVER_TYPES = ("SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam")
LR_POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")
STEP_VALUES = eager(st.lists(integers(1, 3), min_size=1, max_size=3, unique=True))


def _set(message, name, value):
    if value is not None:
        setattr(message, name, value)


def lr_policies(draw, solver, policies=LR_POLICIES):
    """lr_policy, one of ``policies``, and exactly the fields its formula reads (solver.cpp,
    GetLearningRate). Shrinks towards "fixed" (or the first of ``policies``)."""
    policy = pick(draw, policies)
    solver.lr_policy = policy
    if policy == "step":
        solver.gamma = pick(draw, (0.5, 0.1))
        solver.stepsize = draw(integers(1, 2))
    elif policy == "exp":
        solver.gamma = pick(draw, (0.9, 0.5))
    elif policy == "inv":
        solver.gamma = pick(draw, (0.1, 1.0))
        solver.power = pick(draw, (0.75, 1.0))
    elif policy == "multistep":
        solver.gamma = pick(draw, (0.5, 0.1))
        steps = draw(STEP_VALUES)
        solver.stepvalue.extend(sorted(steps))
    elif policy == "poly":
        solver.power = pick(draw, (1.0, 0.5, 2.0))
        solver.max_iter = draw(integers(4, 10))
    elif policy == "sigmoid":
        solver.gamma = pick(draw, (0.5, 2.0))  # master CHECKs gamma >= 0 for every policy
        solver.stepsize = draw(integers(1, 3))


@st.composite
def solver_params(draw, types=SOLVER_TYPES, policies=LR_POLICIES):
    """caffe_pb2.SolverParameter messages with no net field.

    type (one of ``types``; SGD, left unset, first), base_lr, the momentum fields valid for
    the type, delta for the adaptive types, weight_decay and regularization_type, an lr_policy
    (one of ``policies``) with its parameters, iter_size and clip_gradients.

    Shrinks towards SGD with base_lr 0.01, policy "fixed", and every optional field unset
    (no momentum, no weight decay, L2, iter_size 1, no clipping)."""
    solver = caffe_pb2.SolverParameter()
    kind = pick(draw, types)
    if kind != "SGD":
        solver.type = kind
    solver.base_lr = pick(draw, (0.01, 0.1, 0.001))
    if kind in ("SGD", "Nesterov"):
        _set(solver, "momentum", draw(maybe(0.9, 0.5)))
    elif kind == "AdaDelta":
        _set(solver, "momentum", draw(maybe(0.95, 0.9)))
    elif kind == "Adam":
        _set(solver, "momentum", draw(maybe(0.9)))
        _set(solver, "momentum2", draw(maybe(0.99)))
    elif kind == "RMSProp":
        _set(solver, "rms_decay", draw(maybe(0.9, 0.5)))
    if kind in ("AdaGrad", "RMSProp", "AdaDelta", "Adam"):
        # A bigger delta keeps a near-zero gradient from making a full-size step.
        _set(solver, "delta", draw(maybe(1e-4, 1e-2)))
    _set(solver, "weight_decay", draw(maybe(1e-3, 0.01, 0.0)))
    _set(solver, "regularization_type", draw(maybe("L1")))
    lr_policies(draw, solver, policies)
    _set(solver, "iter_size", draw(maybe(2, 3)))
    _set(solver, "clip_gradients", draw(maybe(1.0, 0.1)))
    return solver
