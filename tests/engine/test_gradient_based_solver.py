"""Every solver type's update rule over a few iterations, against numpy by hand.

Named for src/caffe/test/test_gradient_based_solver.cpp, whose tests check each solver's
update against a hand computation on a least-squares net; here the net is a fake quadratic
(solver_testing.QuadraticNet) and the hand computation is solver_testing.reference_train.
"""

import numpy as np
import pytest
import torch
from solver_testing import QuadraticNet, reference_train, solver_param

from reference_engine.checks import CaffeError
from reference_engine.semantics import CAFFE_1_0, MASTER
from reference_engine.solvers import make_solver

VALUES = [[[1.0, -2.0, 0.5], [0.0, 3.0, -0.25]], [0.75, -1.5, 0.0]]

# One hyper-parameter set per type: momentum (or its analogue) on, weight decay on, so history
# and regularization both move.
SOLVERS = {
    "SGD": 'type: "SGD" base_lr: 0.1 momentum: 0.9 weight_decay: 0.01 lr_policy: "fixed"',
    "Nesterov": 'type: "Nesterov" base_lr: 0.1 momentum: 0.9 weight_decay: 0.01 lr_policy: "fixed"',
    "AdaGrad": 'type: "AdaGrad" base_lr: 0.1 weight_decay: 0.01 delta: 1e-6 lr_policy: "fixed"',
    "RMSProp": 'type: "RMSProp" base_lr: 0.1 rms_decay: 0.95 weight_decay: 0.01 delta: 1e-6 '
    'lr_policy: "fixed"',
    "AdaDelta": 'type: "AdaDelta" base_lr: 1.0 momentum: 0.95 weight_decay: 0.01 delta: 1e-6 '
    'lr_policy: "fixed"',
    "Adam": 'type: "Adam" base_lr: 0.1 momentum: 0.9 momentum2: 0.999 weight_decay: 0.01 lr_policy: "fixed"',
}


def assert_matches_reference(prototxt, iterations=3, semantics=MASTER, **net_args):
    param = solver_param(prototxt)
    net = QuadraticNet(VALUES, **net_args)
    expected_values, expected_history, expected_losses = reference_train(
        param, QuadraticNet(VALUES, **net_args), iterations
    )
    solver = make_solver(param, net, semantics)
    solver.step(iterations)
    for k, expected in enumerate(expected_values):
        np.testing.assert_allclose(net.values()[k], expected, rtol=1e-12, atol=1e-14)
    assert len(solver.history) == len(expected_history)
    for h, expected in zip(solver.history, expected_history):
        np.testing.assert_allclose(h.numpy(), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(solver.losses, expected_losses, rtol=1e-12)
    return solver, net


@pytest.mark.parametrize("solver_type", SOLVERS)
def test_solver_update_matches_hand_computation(solver_type):
    solver, _ = assert_matches_reference(
        SOLVERS[solver_type], drift=0.1, lr_mults=[1.0, 2.0], decay_mults=[1.0, 0.5]
    )
    assert solver.iter == 3
    assert type(solver).__name__ == f"{solver_type}Solver"


@pytest.mark.parametrize("solver_type", SOLVERS)
def test_solver_update_with_iter_size_and_step_policy(solver_type):
    prototxt = SOLVERS[solver_type].replace('"fixed"', '"step" gamma: 0.5 stepsize: 2')
    assert_matches_reference(prototxt + " iter_size: 3", iterations=4, drift=0.2)


@pytest.mark.parametrize("solver_type", SOLVERS)
def test_solver_update_identical_in_1_0_and_master(solver_type):
    """iter_ moves at a different place in 1.0, but rate and Adam's t see the same value."""
    _, master = assert_matches_reference(SOLVERS[solver_type], semantics=MASTER)
    _, v1_0 = assert_matches_reference(SOLVERS[solver_type], semantics=CAFFE_1_0)
    for a, b in zip(master.values(), v1_0.values()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("solver_type", SOLVERS)
def test_lr_mult_zero_params_still_decay_and_move_history(solver_type):
    """docs/semantics.md §4.7: the decayed diff feeds the history; the step is 0 * ... = 0."""
    solver, net = assert_matches_reference(SOLVERS[solver_type], lr_mults=[0.0, 1.0])
    np.testing.assert_array_equal(net.values()[0], np.asarray(VALUES[0]))
    # SGD and Nesterov scale the decayed diff by local_rate 0 into h, so h stays 0; the
    # adaptive solvers accumulate it unscaled.
    moved = solver_type not in ("SGD", "Nesterov")
    assert bool(solver.history[0].abs().max() > 0) == moved
    np.testing.assert_array_equal(net.learnable_params[0].diff.numpy(), 0.0)


def test_sgd_lr_mult_zero_weight_and_bias_values():
    """The scenario of docs/semantics.md §7.6: bias 1 -> 0.79 -> 0.3931 -> -0.16804(1) with g = 2 + 0.1 b."""
    param = solver_param('type: "SGD" base_lr: 0.1 momentum: 0.9 weight_decay: 0.1 lr_policy: "fixed"')
    net = QuadraticNet([[1.0], [1.0]], lr_mults=[0.0, 1.0], curvature=0.0, linear=2.0)
    solver = make_solver(param, net)
    biases = []
    for _ in range(3):
        solver.step(1)
        biases.append(net.values()[1][0])
    np.testing.assert_allclose(biases, [0.79, 0.3931, -0.168041], rtol=1e-6)
    assert net.values()[0][0] == 1.0


def test_adam_bias_correction_uses_iter_plus_one():
    """The s2 scenario: with a constant gradient every Adam step is base_lr (t = 1 at first)."""
    param = solver_param('type: "Adam" base_lr: 0.1 momentum: 0.9 momentum2: 0.999 lr_policy: "fixed"')
    net = QuadraticNet([[1.0]], curvature=0.0, linear=2.0)
    solver = make_solver(param, net)
    solver.step(1)
    assert net.values()[0][0] == pytest.approx(0.9, abs=1e-6)
    solver.step(1)
    assert net.values()[0][0] == pytest.approx(0.8, abs=1e-6)


def test_adam_continues_t_across_step_calls():
    param = solver_param(SOLVERS["Adam"])
    one_call = QuadraticNet(VALUES, drift=0.1)
    make_solver(param, one_call).step(3)
    split = QuadraticNet(VALUES, drift=0.1)
    solver = make_solver(param, split)
    solver.step(1)
    solver.step(2)
    for a, b in zip(one_call.values(), split.values()):
        np.testing.assert_array_equal(a, b)


def test_adadelta_updates_its_history_before_the_learning_rate():
    """h2 accumulates the unscaled d; base_lr scales only the applied step."""
    runs = {}
    for base_lr in ("1.0", "0.25"):
        param = solver_param(SOLVERS["AdaDelta"].replace("base_lr: 1.0", f"base_lr: {base_lr}"))
        net = QuadraticNet(VALUES)
        solver = make_solver(param, net)
        solver.step(1)
        runs[base_lr] = (solver.history, np.asarray(VALUES[0]) - net.values()[0])
    for h1, h2 in zip(runs["1.0"][0], runs["0.25"][0]):
        np.testing.assert_array_equal(h1.numpy(), h2.numpy())
    np.testing.assert_allclose(runs["0.25"][1], 0.25 * runs["1.0"][1], rtol=1e-12)


def test_nesterov_first_step_is_one_plus_momentum_times_sgd():
    sgd = QuadraticNet(VALUES)
    make_solver(solver_param(SOLVERS["SGD"]), sgd).step(1)
    nesterov = QuadraticNet(VALUES)
    solver = make_solver(solver_param(SOLVERS["Nesterov"]), nesterov)
    solver.step(1)
    momentum = solver.param.momentum
    for v0, s, n in zip(VALUES, sgd.values(), nesterov.values()):
        np.testing.assert_allclose(np.asarray(v0) - n, (1 + momentum) * (np.asarray(v0) - s), rtol=1e-12)


@pytest.mark.parametrize("solver_type", SOLVERS)
def test_history_is_zero_initialised_like_each_param(solver_type):
    net = QuadraticNet(VALUES, dtype=torch.float32)
    solver = make_solver(solver_param(SOLVERS[solver_type]), net)
    sets = 2 if solver_type in ("AdaDelta", "Adam") else 1
    assert len(solver.history) == sets * len(VALUES)
    for i, h in enumerate(solver.history):
        p = net.learnable_params[i % len(VALUES)]
        assert h.shape == p.data.shape and h.dtype == p.data.dtype and h.device == p.data.device
        assert not h.any()
        assert h.data_ptr() != p.data.data_ptr()


@pytest.mark.parametrize("solver_type", SOLVERS)
def test_float32_params_stay_float32_and_follow_float64(solver_type):
    """Caffe's float build computes in float; the engine computes in the blob's dtype."""
    param = solver_param(SOLVERS[solver_type])
    net = QuadraticNet(VALUES, dtype=torch.float32, drift=0.1)
    solver = make_solver(param, net)
    solver.step(3)
    expected, _, _ = reference_train(param, QuadraticNet(VALUES, drift=0.1), 3)
    for blob, e in zip(net.learnable_params, expected):
        assert blob.data.dtype == torch.float32
        np.testing.assert_allclose(blob.data.numpy(), e, rtol=1e-5, atol=1e-6)
    assert all(h.dtype == torch.float32 for h in solver.history)


def test_adagrad_refuses_momentum():
    param = solver_param('type: "AdaGrad" base_lr: 0.1 momentum: 0.9 lr_policy: "fixed"')
    with pytest.raises(CaffeError) as error:
        make_solver(param, QuadraticNet(VALUES))
    assert error.value.message == (
        "Check failed: 0 == this->param_.momentum() (0 vs. 0.9) Momentum cannot be used with AdaGrad."
    )


@pytest.mark.parametrize(
    "fields, message",
    [
        (
            "momentum: 0.5",
            ("Check failed: 0 == this->param_.momentum() (0 vs. 0.5) Momentum cannot be used with RMSProp."),
        ),
        (
            "rms_decay: -0.5",
            (
                "Check failed: this->param_.rms_decay() >= 0 (-0.5 vs. 0) "
                "rms_decay should lie between 0 and 1."
            ),
        ),
        (
            "rms_decay: 1",
            ("Check failed: this->param_.rms_decay() < 1 (1 vs. 1) rms_decay should lie between 0 and 1."),
        ),
    ],
)
def test_rmsprop_constructor_checks(fields, message):
    param = solver_param(f'type: "RMSProp" base_lr: 0.1 lr_policy: "fixed" {fields}')
    with pytest.raises(CaffeError) as error:
        make_solver(param, QuadraticNet(VALUES))
    assert error.value.message == message


def test_rmsprop_accepts_zero_rms_decay():
    assert_matches_reference('type: "RMSProp" base_lr: 0.1 rms_decay: 0 lr_policy: "fixed"')
