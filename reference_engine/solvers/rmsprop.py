"""RMSProp. Caffe: src/caffe/solvers/rmsprop_solver.cpp."""

from ..checks import check_eq, check_ge, check_lt
from ..math_functions import axpby
from . import register_solver
from .sgd import SGDSolver


@register_solver("RMSProp")
class RMSPropSolver(SGDSolver):
    """h = (1 - rms_decay) * g^2 + rms_decay * h; diff = local_rate * g / (sqrt(h) + delta)."""

    def constructor_sanity_check(self):
        check_eq(
            0,
            self.param.momentum,
            "0",
            "this->param_.momentum()",
            "Momentum cannot be used with RMSProp.",
        )
        check_ge(
            self.param.rms_decay,
            0,
            "this->param_.rms_decay()",
            "0",
            "rms_decay should lie between 0 and 1.",
        )
        check_lt(
            self.param.rms_decay,
            1,
            "this->param_.rms_decay()",
            "1",
            "rms_decay should lie between 0 and 1.",
        )

    def compute_update_value(self, param_id: int, rate):
        dtype = self.dtype
        rms_decay = dtype(self.param.rms_decay)
        delta = float(dtype(self.param.delta))
        diff = self.net.learnable_params[param_id].diff
        h = self.history[param_id]
        h.mul_(float(rms_decay)).add_(diff.pow(2), alpha=float(dtype(1) - rms_decay))
        update = diff / h.pow(0.5).add_(delta)
        diff.copy_(axpby(self.local_rate(param_id, rate), update, 0.0, diff))
