"""AdaDelta. Caffe: src/caffe/solvers/adadelta_solver.cpp."""

from ..math_functions import scal
from . import register_solver
from .sgd import SGDSolver


@register_solver("AdaDelta")
class AdaDeltaSolver(SGDSolver):
    """With rho = momentum and eps = delta, h1 = history[i] (of g^2), h2 = history[N + i] (of d^2):

    h1 = (1 - rho) * g^2 + rho * h1; d = g * sqrt((h2 + eps) / (h1 + eps));
    h2 = (1 - rho) * d^2 + rho * h2; diff = local_rate * d.

    h2 is updated with d before the learning rate scales it.
    """

    history_sets = 2

    def compute_update_value(self, param_id: int, rate):
        dtype = self.dtype
        momentum = dtype(self.param.momentum)
        delta = float(dtype(self.param.delta))
        one_minus_momentum = float(dtype(1) - momentum)
        diff = self.net.learnable_params[param_id].diff
        h1 = self.history[param_id]
        h2 = self.history[len(self.net.learnable_params) + param_id]
        h1.mul_(float(momentum)).add_(diff.pow(2), alpha=one_minus_momentum)
        update = (h2 + delta) / (h1 + delta)
        diff.mul_(update.pow_(0.5))
        h2.mul_(float(momentum)).add_(diff.pow(2), alpha=one_minus_momentum)
        diff.copy_(scal(self.local_rate(param_id, rate), diff))  # caffe_cpu_scale
