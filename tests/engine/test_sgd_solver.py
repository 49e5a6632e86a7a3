"""SGDSolver's own steps: the Step loop, lr policies, clipping, iter_size, regularization.

Caffe: src/caffe/solver.cpp (Solver::Step), src/caffe/solvers/sgd_solver.cpp. Checked by hand
on the fake quadratic net of solver_testing; nothing here claims anything about real Caffe.
"""

import math

import numpy as np
import pytest
import torch
from solver_testing import QuadraticNet, reference_rate, reference_train, solver_param

from reference_engine.checks import CaffeError, Unsupported
from reference_engine.semantics import CAFFE_1_0, MASTER
from reference_engine.solvers import make_solver
from reference_engine.solvers.lr_policies import LR_POLICIES

PLAIN_SGD = 'type: "SGD" base_lr: 1 lr_policy: "fixed"'


def rates(prototxt, iterations, semantics=MASTER):
    """The rate of each of the first ``iterations`` updates of a float32 net (Dtype float)."""
    solver = make_solver(solver_param(prototxt), QuadraticNet([[0.0]], dtype=torch.float32), semantics)
    solver.step(iterations)
    return solver.rates


def f32(x):
    return float(np.float32(x))


# ---- lr policies ----------------------------------------------------------------------------


def test_lr_policies_are_caffes_seven():
    assert sorted(LR_POLICIES) == ["exp", "fixed", "inv", "multistep", "poly", "sigmoid", "step"]
    for policy in LR_POLICIES.values():
        assert "rate = base_lr" in policy.__doc__


def test_fixed_policy():
    assert rates('base_lr: 0.25 lr_policy: "fixed"', 3) == [0.25, 0.25, 0.25]


def test_step_policy():
    got = rates('base_lr: 0.5 lr_policy: "step" gamma: 0.1 stepsize: 3', 8)
    g = f32(0.1)
    expected = [f32(0.5 * g**k) for k in (0, 0, 0, 1, 1, 1, 2, 2)]
    assert got == expected


def test_step_policy_sets_current_step():
    solver = make_solver(
        solver_param('base_lr: 1 lr_policy: "step" gamma: 0.5 stepsize: 2'), QuadraticNet([[0.0]])
    )
    solver.step(5)
    assert solver.current_step == 2  # floor(4 / 2), from the last update at iter 4


def test_exp_policy():
    g = f32(0.9)
    assert rates('base_lr: 2 lr_policy: "exp" gamma: 0.9', 4) == [f32(2 * g**i) for i in range(4)]


def test_inv_policy():
    got = rates('base_lr: 0.01 lr_policy: "inv" gamma: 0.0001 power: 0.75', 4)
    expected = [0.01 * (1 + 0.0001 * i) ** -0.75 for i in range(4)]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got[0] == f32(0.01)


def test_multistep_policy():
    got = rates('base_lr: 1 lr_policy: "multistep" gamma: 0.5 stepvalue: 2 stepvalue: 3 stepvalue: 6', 8)
    assert got == [1, 1, 0.5, 0.25, 0.25, 0.25, 0.125, 0.125]


def test_multistep_advances_at_most_one_step_per_update():
    """GetLearningRate's `if` (not `while`): stepvalues already passed are caught up one at a time."""
    solver = make_solver(
        solver_param('base_lr: 1 lr_policy: "multistep" gamma: 0.5 stepvalue: 1 stepvalue: 2'),
        QuadraticNet([[0.0]]),
    )
    solver.iter = 10
    assert [float(solver.get_learning_rate()) for _ in range(3)] == [0.5, 0.25, 0.25]
    assert solver.current_step == 2


def test_poly_policy():
    got = rates('base_lr: 0.1 lr_policy: "poly" power: 2 max_iter: 4', 5)
    np.testing.assert_allclose(got, [0.1 * (1 - i / 4) ** 2 for i in range(5)], rtol=1e-6)
    assert got[-1] == 0.0


def test_sigmoid_policy():
    got = rates('base_lr: 0.1 lr_policy: "sigmoid" gamma: 0.5 stepsize: 2', 5)
    expected = [0.1 / (1 + math.exp(-0.5 * (i - 2))) for i in range(5)]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got[2] == f32(0.05)


@pytest.mark.parametrize("policy", ["step", "exp", "inv", "multistep", "poly", "sigmoid"])
def test_policy_matches_formula_in_float64(policy):
    prototxt = (
        f'type: "SGD" base_lr: 0.3 lr_policy: "{policy}" gamma: 0.25 power: 1.5 '
        "stepsize: 2 stepvalue: 1 stepvalue: 3 max_iter: 10"
    )
    param = solver_param(prototxt)
    solver = make_solver(param, QuadraticNet([[0.0]]))
    solver.step(6)
    np.testing.assert_allclose(solver.rates, [reference_rate(param, i) for i in range(6)], rtol=1e-12)


def test_unknown_lr_policy_is_fatal_at_the_first_update():
    solver = make_solver(solver_param('base_lr: 1 lr_policy: "cosine"'), QuadraticNet([[0.0]]))
    with pytest.raises(CaffeError) as error:
        solver.step(1)
    assert error.value.message == "Unknown learning rate policy: cosine"


def test_missing_lr_policy_is_fatal():
    """lr_policy has no default in caffe.proto."""
    solver = make_solver(solver_param("base_lr: 1"), QuadraticNet([[0.0]]))
    with pytest.raises(CaffeError) as error:
        solver.step(1)
    assert error.value.message == "Unknown learning rate policy: "


@pytest.mark.parametrize(
    "fields, message",
    [
        ('lr_policy: "step" gamma: 0.1', "Check failed: this->param_.stepsize() > 0 (0 vs. 0) "),
        (
            'lr_policy: "step" stepsize: 2 gamma: -0.5',
            "Check failed: this->param_.gamma() >= 0 (-0.5 vs. 0) ",
        ),
        ('lr_policy: "exp" gamma: -0.5', "Check failed: this->param_.gamma() >= 0 (-0.5 vs. 0) "),
        ('lr_policy: "inv" gamma: -0.5', "Check failed: this->param_.gamma() >= 0 (-0.5 vs. 0) "),
        ('lr_policy: "multistep" gamma: -2', "Check failed: this->param_.gamma() >= 0 (-2 vs. 0) "),
        (
            'lr_policy: "sigmoid" gamma: -1 stepsize: 1',
            "Check failed: this->param_.gamma() >= 0 (-1 vs. 0) ",
        ),
        (
            'lr_policy: "sigmoid" gamma: 1 stepsize: -3',
            "Check failed: this->param_.stepsize() > 0 (-3 vs. 0) ",
        ),
    ],
)
def test_master_checks_lr_policy_parameters(fields, message):
    solver = make_solver(solver_param(f"base_lr: 1 {fields}"), QuadraticNet([[0.0]]), MASTER)
    with pytest.raises(CaffeError) as error:
        solver.step(1)
    assert error.value.message == message


def test_caffe_1_0_does_not_check_lr_policy_parameters():
    assert rates('base_lr: 1 lr_policy: "exp" gamma: -0.5', 3, CAFFE_1_0) == [1, -0.5, 0.25]
    # C++ integer division truncates: iter 3 / stepsize -2 is step -1, so gamma^-1.
    assert rates('base_lr: 1 lr_policy: "step" gamma: 0.5 stepsize: -2', 4, CAFFE_1_0) == [
        1,
        1,
        2,
        2,
    ]
    assert rates('base_lr: 1 lr_policy: "sigmoid" gamma: 0 stepsize: 0', 1, CAFFE_1_0) == [0.5]


def test_caffe_1_0_step_policy_with_zero_stepsize_is_unsupported():
    solver = make_solver(
        solver_param('base_lr: 1 lr_policy: "step" gamma: 0.5'), QuadraticNet([[0.0]]), CAFFE_1_0
    )
    with pytest.raises(Unsupported):
        solver.step(1)


# ---- the Step loop --------------------------------------------------------------------------


def test_step_clears_diffs_then_runs_iter_size_passes_then_updates():
    net = QuadraticNet([[1.0]])
    make_solver(solver_param(PLAIN_SGD + " iter_size: 3"), net).step(2)
    one = ["clear_param_diffs"] + ["forward_backward"] * 3 + ["update"]
    assert net.calls == one + one


def test_loss_is_the_mean_over_iter_size_passes():
    net = QuadraticNet([[1.0]], curvature=2.0, target=0.0, drift=1.0)
    solver = make_solver(solver_param('type: "SGD" base_lr: 0 lr_policy: "fixed" iter_size: 2'), net)
    solver.step(2)
    # loss of a pass = (1 - pass)^2 with the weight fixed at 1 (base_lr 0).
    assert solver.losses == [(1 + 0) / 2, (1 + 4) / 2]


def test_iter_size_accumulates_then_divides_the_gradient():
    net = QuadraticNet([[1.0, 2.0]], target=0.0, drift=1.0)
    make_solver(solver_param(PLAIN_SGD + " iter_size: 2"), net).step(1)
    # Gradients of the two passes: p - 0 and p - 1; their mean is p - 0.5.
    np.testing.assert_allclose(net.values()[0], [1.0 - 0.5, 2.0 - 1.5])


def test_smoothed_loss_averages_over_average_loss_iterations():
    net = QuadraticNet([[0.0]], curvature=2.0, target=0.0, drift=1.0)
    solver = make_solver(solver_param('type: "SGD" base_lr: 0 lr_policy: "fixed" average_loss: 2'), net)
    solver.step(4)
    assert solver.losses == [0, 1, 4, 9]
    assert solver.smoothed_losses == [0, 0.5, 2.5, 6.5]
    solver.step(2)  # Step starts a new window
    assert solver.smoothed_losses[4:] == [16, 20.5]


def test_history_persists_across_step_calls():
    param = solver_param('type: "SGD" base_lr: 0.1 momentum: 0.9 lr_policy: "fixed"')
    once, twice = QuadraticNet([[3.0]]), QuadraticNet([[3.0]])
    make_solver(param, once).step(3)
    solver = make_solver(param, twice)
    solver.step(1)
    solver.step(2)
    assert once.values()[0] == twice.values()[0]
    assert solver.iter == 3


@pytest.mark.parametrize("semantics", [MASTER, CAFFE_1_0], ids=lambda s: s.name)
def test_step_counts_iterations_in_both_versions(semantics):
    solver = make_solver(solver_param(PLAIN_SGD), QuadraticNet([[1.0]]), semantics)
    solver.step(3)
    assert solver.iter == 3


def test_bare_apply_update_increments_iter_only_in_master():
    """Master's pycaffe solver.apply_update() moves iter (sgd_solver.cpp, commit c74913d)."""
    master = make_solver(solver_param(PLAIN_SGD), QuadraticNet([[1.0]]), MASTER)
    master.apply_update()
    v1_0 = make_solver(solver_param(PLAIN_SGD), QuadraticNet([[1.0]]), CAFFE_1_0)
    v1_0.apply_update()
    assert (master.iter, v1_0.iter) == (1, 0)


def test_average_loss_below_one_is_refused_before_the_net_is_built():
    built = []

    def build_net():
        built.append(True)
        return QuadraticNet([[1.0]])

    with pytest.raises(CaffeError) as error:
        make_solver(solver_param(PLAIN_SGD + " average_loss: 0"), build_net)
    assert error.value.message == (
        "Check failed: param_.average_loss() >= 1 (0 vs. 1) average_loss should be non-negative."
    )
    assert built == []
    assert make_solver(solver_param(PLAIN_SGD), build_net).net.params_lr == [1.0]


def test_test_nets_are_checked_then_refused_as_unsupported():
    with pytest.raises(CaffeError) as error:
        make_solver(solver_param(PLAIN_SGD + " test_iter: 10"), QuadraticNet([[1.0]]))
    assert error.value.message == (
        "Check failed: param_.test_iter_size() == num_test_nets (1 vs. 0) "
        "test_iter must be specified for each test network."
    )
    with pytest.raises(Unsupported):
        make_solver(
            solver_param(PLAIN_SGD + " test_iter: 10 test_interval: 5 net_param {}"),
            QuadraticNet([[1.0]]),
        )


# ---- clip_gradients -------------------------------------------------------------------------


def test_clip_gradients_scales_by_the_global_norm():
    # Gradients p - 0: (3, 0) and (4,), global norm 5, clipped to 1: every diff times 1/5.
    net = QuadraticNet([[3.0, 0.0], [4.0]], target=0.0)
    make_solver(solver_param(PLAIN_SGD + " clip_gradients: 1"), net).step(1)
    np.testing.assert_allclose(net.values()[0], [3.0 - 0.6, 0.0])
    np.testing.assert_allclose(net.values()[1], [4.0 - 0.8])


def test_clip_gradients_below_the_threshold_leaves_diffs_alone():
    net = QuadraticNet([[3.0, 0.0], [4.0]], target=0.0)
    make_solver(solver_param(PLAIN_SGD + " clip_gradients: 5"), net).step(1)
    np.testing.assert_allclose(net.values()[0], [0.0, 0.0])


def test_clip_gradients_zero_zeroes_every_gradient():
    net = QuadraticNet([[3.0, 0.0], [4.0]], target=0.0)
    make_solver(solver_param(PLAIN_SGD + " clip_gradients: 0"), net).step(1)
    np.testing.assert_allclose(net.values()[0], [3.0, 0.0])


def test_clip_gradients_sees_the_summed_gradient_before_normalize_and_decay():
    # Two passes of gradient p = (3, 4): summed (6, 8), norm 10 > 5, scaled to (3, 4), then
    # divided by iter_size: (1.5, 2). Decay 0.5 * p is added after clipping.
    net = QuadraticNet([[3.0, 4.0]], target=0.0)
    param = solver_param(PLAIN_SGD + " clip_gradients: 5 iter_size: 2 weight_decay: 0.5")
    make_solver(param, net).step(1)
    np.testing.assert_allclose(net.values()[0], [3.0 - 1.5 - 1.5, 4.0 - 2.0 - 2.0])


def test_clip_gradients_includes_lr_mult_zero_params():
    net = QuadraticNet([[3.0], [4.0]], target=0.0, lr_mults=[1.0, 0.0], decay_mults=[0.0, 0.0])
    solver = make_solver(solver_param(PLAIN_SGD + " clip_gradients: 1"), net)
    net.clear_param_diffs()
    net.forward_backward()
    net.learnable_params[1].diff.fill_(4.0)  # as if force_backward filled it
    solver.apply_update()
    np.testing.assert_allclose(net.values()[0], [3.0 - 0.6])


def test_clip_matches_reference_over_iterations():
    param = solver_param(
        'type: "Nesterov" base_lr: 0.1 momentum: 0.5 lr_policy: "fixed" '
        "clip_gradients: 0.5 iter_size: 2 weight_decay: 0.1"
    )
    net = QuadraticNet([[1.0, -2.0], [3.0]], drift=0.3)
    make_solver(param, net).step(3)
    expected, _, _ = reference_train(param, QuadraticNet([[1.0, -2.0], [3.0]], drift=0.3), 3)
    for got, e in zip(net.values(), expected):
        np.testing.assert_allclose(got, e, rtol=1e-12)


# ---- regularization -------------------------------------------------------------------------


def test_l2_decay_uses_decay_mult():
    net = QuadraticNet([[2.0], [-2.0]], curvature=0.0, decay_mults=[1.0, 3.0])
    make_solver(solver_param(PLAIN_SGD + " weight_decay: 0.25"), net).step(1)
    assert net.values() == [[2.0 - 0.5], [-2.0 + 1.5]]


def test_l1_decay_adds_the_sign_with_sign_zero_zero():
    net = QuadraticNet([[2.0, -3.0, 0.0]], curvature=0.0, decay_mults=[2.0])
    param = solver_param(PLAIN_SGD + ' weight_decay: 0.25 regularization_type: "L1"')
    make_solver(param, net).step(1)
    np.testing.assert_array_equal(net.values()[0], [2.0 - 0.5, -3.0 + 0.5, 0.0])


def test_l1_matches_reference_with_momentum():
    param = solver_param(
        'type: "SGD" base_lr: 0.1 momentum: 0.9 lr_policy: "fixed" '
        'weight_decay: 0.05 regularization_type: "L1"'
    )
    values = [[1.0, -2.0, 0.0], [0.3]]
    net = QuadraticNet(values, decay_mults=[1.0, 4.0])
    make_solver(param, net).step(3)
    expected, _, _ = reference_train(param, QuadraticNet(values, decay_mults=[1.0, 4.0]), 3)
    for got, e in zip(net.values(), expected):
        np.testing.assert_allclose(got, e, rtol=1e-12)


def test_unknown_regularization_type_is_fatal_only_with_decay():
    param = solver_param(PLAIN_SGD + ' regularization_type: "L3"')
    make_solver(param, QuadraticNet([[1.0]])).step(1)  # weight_decay 0: never read
    param.weight_decay = 0.1
    solver = make_solver(param, QuadraticNet([[1.0]]))
    with pytest.raises(CaffeError) as error:
        solver.step(1)
    assert error.value.message == "Unknown regularization type: L3"


def test_decay_mult_zero_skips_regularization():
    param = solver_param(PLAIN_SGD + ' weight_decay: 0.1 regularization_type: "L3"')
    net = QuadraticNet([[1.0]], curvature=0.0, decay_mults=[0.0])
    make_solver(param, net).step(1)
    assert net.values() == [[1.0]]
