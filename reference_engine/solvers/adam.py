"""Adam. Caffe: src/caffe/solvers/adam_solver.cpp."""

import numpy as np

from ..math_functions import scal
from . import register_solver
from .sgd import SGDSolver


@register_solver("Adam")
class AdamSolver(SGDSolver):
    """With beta1 = momentum, beta2 = momentum2, eps = delta, m = history[i], v = history[N + i]:

    m = (1 - beta1) * g + beta1 * m; v = (1 - beta2) * g^2 + beta2 * v;
    diff = local_rate * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps), t = iter + 1.

    eps is added to the uncorrected sqrt(v). t uses iter before this update's increment, so it
    is 1 on the first update in both 1.0 and master.
    """

    history_sets = 2

    def compute_update_value(self, param_id: int, rate):
        dtype = self.dtype
        beta1, beta2 = dtype(self.param.momentum), dtype(self.param.momentum2)
        eps_hat = float(dtype(self.param.delta))
        t = self.iter + 1
        # pow(Dtype, int) is evaluated in double, and so is the rest until it is stored in Dtype.
        b1, b2 = np.float64(beta1), np.float64(beta2)
        with np.errstate(all="ignore"):
            correction = dtype(np.sqrt(1.0 - b2**t) / (1.0 - b1**t))
            step_rate = dtype(self.local_rate(param_id, rate)) * correction
        diff = self.net.learnable_params[param_id].diff
        m = self.history[param_id]
        v = self.history[len(self.net.learnable_params) + param_id]
        m.mul_(float(beta1)).add_(diff, alpha=float(dtype(1) - beta1))
        v.mul_(float(beta2)).add_(diff * diff, alpha=float(dtype(1) - beta2))  # caffe_mul, not powx
        update = m / v.pow(0.5).add_(eps_hat)
        diff.copy_(scal(float(step_rate), update))  # caffe_cpu_scale: copy, then scal
