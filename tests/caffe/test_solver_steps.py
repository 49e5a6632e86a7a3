"""Solver steps in real Caffe against updates computed by hand from the returned gradients.

Mirrors the reference formulas of src/caffe/test/test_gradient_based_solver.cpp: SGD
(sgd_solver.cpp, SGDSolver::ComputeUpdateValue, Regularize) and Adam (adam_solver.cpp)."""

from __future__ import annotations

import numpy as np

from harness.case import Case, Outcome

# loss = sum(x W^T + b): the weight gradient is the same at every step, so several steps can be
# checked by hand from the one gradient the worker returns.
CONSTANT_GRADIENT = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 } }
layer { name: "sum" type: "Reduction" bottom: "ip" top: "sum" loss_weight: 1 }
"""

FROZEN_BUT_DECAYED = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 }
  param { lr_mult: 0 decay_mult: 1 } param { lr_mult: 1 } }
layer { name: "sum" type: "Reduction" bottom: "ip" top: "sum" loss_weight: 1 }
"""

# The §2.6 example of docs/semantics.md: ip does not propagate to conv1, so conv1 needs no
# backward (its diff stays 0) while its params keep lr_mult 1 and still get weight decay.
PRUNED_CONV = """
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 2 dim: 1 dim: 4 dim: 4 } shape { dim: 2 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 2 kernel_size: 3 } }
layer { name: "ip" type: "InnerProduct" bottom: "conv1" top: "ip" propagate_down: false
  inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def case_for(net, solver, iterations, seed=0, labels=None) -> Case:
    rng = np.random.default_rng(seed)
    inputs = {"data": rng.standard_normal((2, 3)).astype(np.float32)}
    params = {
        "ip": (
            rng.standard_normal((2, 3)).astype(np.float32),
            rng.standard_normal(2).astype(np.float32),
        )
    }
    if labels is not None:
        inputs = {"data": rng.standard_normal((2, 1, 4, 4)).astype(np.float32), "label": labels}
        params = {
            "conv1": (
                rng.standard_normal((2, 1, 3, 3)).astype(np.float32),
                rng.standard_normal(2).astype(np.float32),
            ),
            "ip": (
                rng.standard_normal((3, 8)).astype(np.float32),
                rng.standard_normal(3).astype(np.float32),
            ),
        }
    return Case(net=net, solver=solver, iterations=iterations, inputs=inputs, params=params)


def test_sgd_momentum_weight_decay(caffe_engine, assert_close):
    lr, momentum, decay = 0.1, 0.9, 0.05
    solver = f'type: "SGD" base_lr: {lr} momentum: {momentum} weight_decay: {decay} lr_policy: "fixed"'
    case = case_for(CONSTANT_GRADIENT, solver, iterations=2)
    result = caffe_engine.run(case)
    assert result.outcome == Outcome.OK, result.message
    for i in (0, 1):
        w = case.params["ip"][i].astype(np.float64)
        g = result.param_diff["ip"][i].astype(np.float64)
        history = np.zeros_like(w)
        for k in (1, 2):
            history = momentum * history + lr * (g + decay * w)  # Regularize, then ComputeUpdateValue
            w = w - history
            assert_close(result.param_history[k - 1]["ip"][i], w, f"SGD ip param {i} after step {k}")
    assert len(result.losses) == 3


def test_adam(caffe_engine, assert_close):
    lr, beta1, beta2, eps = 0.01, 0.9, 0.999, 1e-8
    solver = (
        f'type: "Adam" base_lr: {lr} momentum: {beta1} momentum2: {beta2} delta: {eps} lr_policy: "fixed"'
    )
    case = case_for(CONSTANT_GRADIENT, solver, iterations=2)
    result = caffe_engine.run(case)
    assert result.outcome == Outcome.OK, result.message
    for i in (0, 1):
        w = case.params["ip"][i].astype(np.float64)
        g = result.param_diff["ip"][i].astype(np.float64)
        m = v = np.zeros_like(w)
        for t in (1, 2):
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            w = w - lr * np.sqrt(1 - beta2**t) / (1 - beta1**t) * m / (np.sqrt(v) + eps)
            assert_close(result.param_history[t - 1]["ip"][i], w, f"Adam ip param {i} after step {t}")


def test_lr_mult_zero_weights_do_not_move(caffe_engine, assert_close):
    solver = 'type: "SGD" base_lr: 0.1 momentum: 0.9 weight_decay: 0.1 lr_policy: "fixed"'
    case = case_for(FROZEN_BUT_DECAYED, solver, iterations=3)
    result = caffe_engine.run(case)
    assert result.outcome == Outcome.OK, result.message
    ip = {layer.name: layer for layer in result.layers}["ip"]
    assert ip.param_propagate_down == (False, True)
    assert np.all(result.param_diff["ip"][0] == 0)
    for k, snapshot in enumerate(result.param_history, start=1):
        np.testing.assert_array_equal(
            snapshot["ip"][0], case.params["ip"][0], err_msg=f"weight after step {k}"
        )
    assert not np.array_equal(result.param_history[0]["ip"][1], case.params["ip"][1])


def test_pruned_layer_params_still_decay(caffe_engine, assert_close):
    lr, decay = 0.1, 0.2
    solver = f'type: "SGD" base_lr: {lr} weight_decay: {decay} lr_policy: "fixed"'
    case = case_for(PRUNED_CONV, solver, iterations=1, labels=np.array([0, 2], np.float32))
    result = caffe_engine.run(case)
    assert result.outcome == Outcome.OK, result.message
    conv1 = {layer.name: layer for layer in result.layers}["conv1"]
    assert conv1.need_backward is False and conv1.logged_need_backward is False
    assert conv1.param_propagate_down == (True, True)
    for i in (0, 1):
        assert np.all(result.param_diff["conv1"][i] == 0), f"conv1 param {i} diff"
        w = case.params["conv1"][i].astype(np.float64)
        assert_close(
            result.param_history[0]["conv1"][i],
            w - lr * decay * w,
            f"conv1 param {i} after one step",
        )
