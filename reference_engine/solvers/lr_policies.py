"""Learning-rate policies: one function per `lr_policy` string, keyed in LR_POLICIES.

Caffe: src/caffe/solvers/sgd_solver.cpp, SGDSolver::GetLearningRate.

Every policy is called as ``policy(param, it, current_step, dtype, checks)`` and returns
``(rate, current_step)``: `step` and `multistep` move Caffe's `current_step_`, the others hand
it back unchanged. ``it`` is `iter_` before this update's increment (0 for the first update).
``dtype`` is the numpy scalar type of the net's Dtype; Caffe computes in Dtype where it says
so, and evaluates `pow(Dtype, int)` in double (C++11 promotion), rounding the product to
Dtype when it is stored in `rate` (docs/semantics.md §4.3, §4.6). ``checks`` is
``semantics.lr_policy_checks``: master CHECKs gamma and stepsize, 1.0 does not (commit
c23b3563f, `git diff 1.0 HEAD -- src/caffe/solvers/sgd_solver.cpp`).

Intended difference: the float `exp` and `pow(float, float)` of `inv`, `poly` and `sigmoid`
are evaluated in double and rounded to Dtype, which may differ from a float libm by 1 ulp.
"""

import numpy as np

from ..checks import Unsupported, check_ge, check_gt


def _pow(base, exponent) -> float:
    """C's pow in double: a negative base to a fractional power is NaN, 0 to a negative is inf."""
    with np.errstate(all="ignore"):
        return float(np.power(np.float64(base), np.float64(exponent)))


def _check_gamma(param, checks: bool):
    if checks:
        check_ge(param.gamma, 0, "this->param_.gamma()", "0")


def _check_stepsize(param, checks: bool):
    if checks:
        check_gt(param.stepsize, 0, "this->param_.stepsize()", "0")


def fixed(param, it, current_step, dtype, checks):
    """rate = base_lr"""
    return dtype(param.base_lr), current_step


def step(param, it, current_step, dtype, checks):
    """rate = base_lr * gamma ^ floor(iter / stepsize); current_step = floor(iter / stepsize)"""
    _check_stepsize(param, checks)
    if param.stepsize == 0:
        # Only reachable without master's CHECK: 1.0 divides an int by zero and dies of SIGFPE.
        raise Unsupported("lr_policy 'step' with stepsize 0: Caffe 1.0 dies of SIGFPE (int / 0)")
    # C++ int division truncates towards zero; a negative stepsize (1.0 only) gives a step <= 0.
    current_step = int(it / param.stepsize)
    _check_gamma(param, checks)
    return dtype(param.base_lr * _pow(param.gamma, current_step)), current_step


def exp(param, it, current_step, dtype, checks):
    """rate = base_lr * gamma ^ iter"""
    _check_gamma(param, checks)
    return dtype(param.base_lr * _pow(param.gamma, it)), current_step


def inv(param, it, current_step, dtype, checks):
    """rate = base_lr * (1 + gamma * iter) ^ (-power)"""
    _check_gamma(param, checks)
    with np.errstate(all="ignore"):
        base = dtype(1) + dtype(param.gamma) * dtype(it)  # float arithmetic, as in Caffe
        return dtype(param.base_lr) * dtype(_pow(base, -param.power)), current_step


def multistep(param, it, current_step, dtype, checks):
    """rate = base_lr * gamma ^ current_step, advancing current_step by at most one per call
    when iter >= stepvalue[current_step]."""
    if current_step < len(param.stepvalue) and it >= param.stepvalue[current_step]:
        current_step += 1
    _check_gamma(param, checks)
    return dtype(param.base_lr * _pow(param.gamma, current_step)), current_step


def poly(param, it, current_step, dtype, checks):
    """rate = base_lr * (1 - iter / max_iter) ^ power (float division; no CHECK on max_iter)"""
    with np.errstate(all="ignore"):
        fraction = dtype(1) - dtype(it) / dtype(param.max_iter)
        return dtype(param.base_lr) * dtype(_pow(fraction, param.power)), current_step


def sigmoid(param, it, current_step, dtype, checks):
    """rate = base_lr * 1 / (1 + exp(-gamma * (iter - stepsize)))"""
    _check_gamma(param, checks)
    _check_stepsize(param, checks)
    with np.errstate(all="ignore"):
        exponent = -dtype(param.gamma) * (dtype(it) - dtype(param.stepsize))
        e = dtype(np.exp(np.float64(exponent)))
        return dtype(param.base_lr) * (dtype(1) / (dtype(1) + e)), current_step


LR_POLICIES = {
    "fixed": fixed,
    "step": step,
    "exp": exp,
    "inv": inv,
    "multistep": multistep,
    "poly": poly,
    "sigmoid": sigmoid,
}
