"""Solver: the Step loop over a train net; subclasses supply apply_update.

Caffe: src/caffe/solver.cpp (Solver::Init, Solver::Step, Solver::UpdateSmoothedLoss).

Intended differences: test nets, snapshots, display and callbacks are not modelled. Test nets
only run forward on copies that share the train weights (TestAll), so the train numerics do
not depend on them; a solver that asks for them is refused as Unsupported rather than guessed.
"""

import numpy as np
import torch

from ..checks import Unsupported, check_eq, check_ge, check_gt, check_le
from ..semantics import MASTER, CaffeSemantics

# The numpy scalar type that plays Caffe's Dtype for a blob dtype: scalars such as the rate,
# momentum and local_rate are rounded to it wherever Caffe stores them in a Dtype.
_SCALAR_TYPES = {torch.float32: np.float32, torch.float64: np.float64}


def check_test_nets(param):
    """The CHECKs of Solver::InitTestNets that read only the SolverParameter, in Caffe's order."""
    has_net_param, has_net_file = param.HasField("net_param"), param.HasField("net")
    check_le(
        has_net_param + has_net_file,
        1,
        "num_generic_nets",
        "1",
        "Both net_param and net_file may not be specified.",
    )
    num_test_nets = len(param.test_net_param) + len(param.test_net)
    if has_net_param or has_net_file:
        check_ge(
            len(param.test_iter),
            num_test_nets,
            "param_.test_iter_size()",
            "num_test_nets",
            "test_iter must be specified for each test network.",
        )
    else:
        check_eq(
            len(param.test_iter),
            num_test_nets,
            "param_.test_iter_size()",
            "num_test_nets",
            "test_iter must be specified for each test network.",
        )
    # Generic nets add one test net per test_iter left over after the explicit ones.
    num_test_net_instances = len(param.test_iter)
    if param.test_state:
        check_eq(
            len(param.test_state),
            num_test_net_instances,
            "param_.test_state_size()",
            "num_test_net_instances",
            "test_state must be unspecified or specified once per test net.",
        )
    if num_test_net_instances:
        check_gt(param.test_interval, 0, "param_.test_interval()", "0")
    return num_test_net_instances


class Solver:
    """Owns the loop: clear param diffs, iter_size forward/backward passes, apply_update.

    Caffe: src/caffe/solver.cpp, Solver::Step. ``net`` is the train net, or a function of no
    arguments that builds it, so that the CHECKs Solver::Init makes before InitTrainNet fail
    before any net error, as in Caffe.

    After ``step``, ``losses`` holds the loss of every iteration so far (the sum over iter_size
    passes divided by iter_size, in Dtype) and ``smoothed_losses`` the value Caffe displays
    (averaged over ``average_loss`` iterations, restarting at each ``step`` call).
    """

    def __init__(self, param, net, semantics: CaffeSemantics = MASTER):
        self.param = param
        self.semantics = semantics
        check_ge(
            param.average_loss,
            1,
            "param_.average_loss()",
            "1",
            "average_loss should be non-negative.",
        )
        self.net = net() if callable(net) else net
        if check_test_nets(param):
            raise Unsupported(
                f"test_iter={list(param.test_iter)}: test nets (TestAll) are not modelled; "
                "they do not change the train net, so leave them out of the solver"
            )
        params = self.net.learnable_params
        self.dtype = _SCALAR_TYPES[params[0].data.dtype] if params else np.float32
        self.iter = 0
        self.current_step = 0
        self.losses: list[float] = []
        self.smoothed_losses: list[float] = []
        self.rates: list[float] = []
        self._loss_window = []  # Caffe's losses_: the ring buffer behind the smoothed loss
        self.smoothed_loss = self.dtype(0)

    def step(self, iters: int):
        """Solver::Step: run ``iters`` iterations from the current ``iter``."""
        dtype = self.dtype
        start_iter = self.iter
        stop_iter = self.iter + iters
        self._loss_window = []
        self.smoothed_loss = dtype(0)
        while self.iter < stop_iter:
            self.net.clear_param_diffs()
            # Param diffs accumulate over the iter_size passes; Normalize divides them later.
            loss = dtype(0)
            for _ in range(self.param.iter_size):
                loss += dtype(self.net.forward_backward())
            with np.errstate(all="ignore"):  # iter_size <= 0 gives 0/0 = NaN, as in Caffe
                loss /= dtype(self.param.iter_size)
            self.update_smoothed_loss(loss, start_iter, self.param.average_loss)
            self.losses.append(float(loss))
            self.smoothed_losses.append(float(self.smoothed_loss))
            self.apply_update()
            # 1.0 increments iter_ here, after ApplyUpdate (solver.cpp@1.0, Solver::Step); master
            # inside SGDSolver::ApplyUpdate (commit c74913d).
            if not self.semantics.iter_incremented_in_apply_update:
                self.iter += 1

    def update_smoothed_loss(self, loss, start_iter: int, average_loss: int):
        """Solver::UpdateSmoothedLoss: running mean, then a ring buffer of average_loss."""
        dtype = self.dtype
        if len(self._loss_window) < average_loss:
            self._loss_window.append(loss)
            size = len(self._loss_window)
            self.smoothed_loss = (self.smoothed_loss * dtype(size - 1) + loss) / dtype(size)
        else:
            idx = (self.iter - start_iter) % average_loss
            self.smoothed_loss += (loss - self._loss_window[idx]) / dtype(average_loss)
            self._loss_window[idx] = loss

    def apply_update(self):
        raise NotImplementedError
