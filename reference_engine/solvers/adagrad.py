"""AdaGrad. Caffe: src/caffe/solvers/adagrad_solver.cpp."""

from ..checks import check_eq
from ..math_functions import axpby
from . import register_solver
from .sgd import SGDSolver


@register_solver("AdaGrad")
class AdaGradSolver(SGDSolver):
    """h += g^2; diff = local_rate * g / (sqrt(h) + delta)."""

    def constructor_sanity_check(self):
        check_eq(
            0,
            self.param.momentum,
            "0",
            "this->param_.momentum()",
            "Momentum cannot be used with AdaGrad.",
        )

    def compute_update_value(self, param_id: int, rate):
        delta = float(self.dtype(self.param.delta))
        diff = self.net.learnable_params[param_id].diff
        h = self.history[param_id]
        h.add_(diff.pow(2))
        update = h.pow(0.5).add_(delta)  # caffe_powx(h, 0.5), not sqrt
        update = diff / update
        diff.copy_(axpby(self.local_rate(param_id, rate), update, 0.0, diff))
