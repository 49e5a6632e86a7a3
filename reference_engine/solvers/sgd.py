"""SGD with momentum, and the update order every other solver inherits.

Caffe: src/caffe/solvers/sgd_solver.cpp, include/caffe/sgd_solvers.hpp (SGDSolver).
"""

import numpy as np
import torch

from ..checks import fatal
from ..math_functions import axpby
from ..semantics import MASTER, CaffeSemantics
from . import register_solver
from .lr_policies import LR_POLICIES
from .solver import Solver


@register_solver("SGD")
class SGDSolver(Solver):
    """h = momentum * h + local_rate * g; diff = h. Caffe: SGDSolver::ComputeUpdateValue.

    ``history`` holds one zero-initialised tensor per learnable param (SGDSolver::PreSolve);
    AdaDelta and Adam append a second set after the first, as Caffe's history_ does.
    """

    history_sets = 1

    def __init__(self, param, net, semantics: CaffeSemantics = MASTER):
        super().__init__(param, net, semantics)
        params = self.net.learnable_params
        self.history = [torch.zeros_like(p.data) for _ in range(self.history_sets) for p in params]
        self.constructor_sanity_check()

    def constructor_sanity_check(self):
        """The CHECKs a subclass's constructor makes once the solver is built (sgd_solvers.hpp)."""

    def get_learning_rate(self):
        """SGDSolver::GetLearningRate: the policy's rate at the current iter (in Dtype)."""
        policy = LR_POLICIES.get(self.param.lr_policy)
        if policy is None:
            fatal(f"Unknown learning rate policy: {self.param.lr_policy}")
        rate, self.current_step = policy(
            self.param,
            self.iter,
            self.current_step,
            self.dtype,
            self.semantics.lr_policy_checks,
        )
        return self.dtype(rate)

    def apply_update(self):
        """SGDSolver::ApplyUpdate: rate, clip, then per param normalize, regularize, update value."""
        rate = self.get_learning_rate()
        self.rates.append(float(rate))
        self.clip_gradients()
        for param_id in range(len(self.net.learnable_params)):
            self.normalize(param_id)
            self.regularize(param_id)
            self.compute_update_value(param_id, rate)
        self.net.update()
        # Master counts iter_ here (sgd_solver.cpp, SGDSolver::ApplyUpdate, commit c74913d);
        # 1.0 in Solver::Step after ApplyUpdate. The rate and Adam's t above saw the old value.
        if self.semantics.iter_incremented_in_apply_update:
            self.iter += 1

    def clip_gradients(self):
        """Scale every diff by clip/L when the global L2 norm L of all diffs exceeds clip >= 0.

        Runs before normalize, so with iter_size > 1 it sees the summed gradient, and before
        regularize, so weight decay is not in the norm. lr_mult 0 params count too.
        """
        dtype = self.dtype
        clip_gradients = dtype(self.param.clip_gradients)
        if clip_gradients < 0:
            return
        sumsq_diff = dtype(0)
        for p in self.net.learnable_params:
            sumsq_diff += dtype(torch.dot(p.diff.flatten(), p.diff.flatten()).item())
        l2norm_diff = dtype(np.sqrt(sumsq_diff))
        if l2norm_diff > clip_gradients:
            scale_factor = clip_gradients / l2norm_diff
            for p in self.net.learnable_params:
                p.diff.mul_(float(scale_factor))

    def normalize(self, param_id: int):
        """diff *= 1 / iter_size, undoing the accumulation over iter_size passes."""
        if self.param.iter_size == 1:
            return
        with np.errstate(all="ignore"):
            accum_normalization = self.dtype(1) / self.dtype(self.param.iter_size)
        self.net.learnable_params[param_id].diff.mul_(float(accum_normalization))

    def regularize(self, param_id: int):
        """diff += weight_decay * decay_mult * (data for L2, sign(data) for L1).

        Applied whatever the param's lr_mult (docs/semantics.md §4.7). The type is only read when
        the local decay is non-zero, so an unknown type with no decay is never refused.
        """
        dtype = self.dtype
        p = self.net.learnable_params[param_id]
        local_decay = dtype(self.param.weight_decay) * dtype(self.net.params_weight_decay[param_id])
        if not local_decay:
            return
        regularization_type = self.param.regularization_type
        if regularization_type == "L2":
            p.diff.add_(p.data, alpha=float(local_decay))
        elif regularization_type == "L1":
            # caffe_cpu_sign is (0 < x) - (x < 0): sign(0) = 0 and sign(NaN) = 0.
            sign = (p.data > 0).to(p.data.dtype) - (p.data < 0).to(p.data.dtype)
            p.diff.add_(sign, alpha=float(local_decay))
        else:
            fatal(f"Unknown regularization type: {regularization_type}")

    def local_rate(self, param_id: int, rate) -> float:
        """rate * lr_mult of the param, in Dtype (net.params_lr is after sharing merges)."""
        return float(rate * self.dtype(self.net.params_lr[param_id]))

    def compute_update_value(self, param_id: int, rate):
        momentum = float(self.dtype(self.param.momentum))
        diff = self.net.learnable_params[param_id].diff
        h = self.history[param_id]
        # caffe_cpu_axpby: with lr_mult 0 the gradient is never read, a NaN in it moves nothing.
        h.copy_(axpby(self.local_rate(param_id, rate), diff, momentum, h))
        diff.copy_(h)
