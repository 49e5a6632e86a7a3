"""Nesterov's accelerated gradient. Caffe: src/caffe/solvers/nesterov_solver.cpp."""

from ..math_functions import axpby
from . import register_solver
from .sgd import SGDSolver


@register_solver("Nesterov")
class NesterovSolver(SGDSolver):
    """u = h; h = momentum * h + local_rate * g; diff = (1 + momentum) * h - momentum * u."""

    def compute_update_value(self, param_id: int, rate):
        dtype = self.dtype
        momentum = dtype(self.param.momentum)
        diff = self.net.learnable_params[param_id].diff
        h = self.history[param_id]
        update = h.clone()  # the old history, to step back from
        h.copy_(axpby(self.local_rate(param_id, rate), diff, float(momentum), h))
        diff.copy_(axpby(float(dtype(1) + momentum), h, float(-momentum), update))
