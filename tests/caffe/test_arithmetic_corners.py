"""Caffe's BLAS corners (reference_engine/math_functions.py), each against real Caffe.

A zero coefficient in caffe_scal, caffe_axpy or caffe_cpu_axpby skips its operand in the
OpenBLAS behind Caffe, its single-precision scal treats a NaN coefficient as 0 too, and
caffe_cpu_sign is 0 for NaN: where a layer scales NaN or inf by an
exact 0 (a loss weight of 0, a zero incoming diff, an Eltwise coefficient of 0) Caffe writes
0 where IEEE arithmetic on the formula writes NaN. Each case here puts NaN or inf into an
input and asks for the layer's output or gradient; without the corner the reference differs.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.case import Case, Outcome
from harness.engines.reference import ReferenceEngine

NAN, INF = float("nan"), float("inf")


def _input(name, *dims):
    shape = " ".join(f"dim: {d}" for d in dims)
    return f'layer {{ name: "{name}" type: "Input" top: "{name}" input_param {{ shape {{ {shape} }} }} }}\n'


def _data(*shape, poison=NAN):
    values = np.linspace(-0.8, 0.9, int(np.prod(shape)), dtype=np.float32).reshape(shape)
    values.reshape(-1)[1] = poison
    return values


LABELS = np.array([1, 0], np.float32)

CORNERS = {
    # name: (net, inputs, which array must match)
    "euclidean_loss_weight_0": (
        "force_backward: true\n"
        + _input("a", 2, 3)
        + _input("b", 2, 3)
        + 'layer { name: "loss" type: "EuclideanLoss" bottom: "a" bottom: "b" top: "loss" loss_weight: 0 }',
        {"a": _data(2, 3), "b": _data(2, 3, poison=0.5)},
        "diff/a",
    ),
    "softmax_loss_weight_0": (
        "force_backward: true\n"
        + _input("x", 2, 3)
        + _input("label", 2)
        + 'layer { name: "ip" type: "Scale" bottom: "x" top: "y" param { lr_mult: 1 } scale_param { bias_term: false } }\n'
        + 'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "y" bottom: "label" top: "loss" loss_weight: 0 }',
        {"x": _data(2, 3), "label": LABELS},
        "diff/y",
    ),
    "sigmoid_cross_entropy_loss_weight_0": (
        "force_backward: true\n"
        + _input("x", 2, 3)
        + _input("t", 2, 3)
        + 'layer { name: "s" type: "Scale" bottom: "x" top: "y" param { lr_mult: 1 } scale_param { bias_term: false } }\n'
        + 'layer { name: "loss" type: "SigmoidCrossEntropyLoss" bottom: "y" bottom: "t" top: "loss" loss_weight: 0 }',
        {"x": _data(2, 3), "t": np.ones((2, 3), np.float32)},
        "diff/y",
    ),
    "hinge_loss_l2_weight_0": (
        "force_backward: true\n"
        + _input("x", 2, 3)
        + _input("label", 2)
        + 'layer { name: "s" type: "Scale" bottom: "x" top: "y" param { lr_mult: 1 } scale_param { bias_term: false } }\n'
        + 'layer { name: "loss" type: "HingeLoss" bottom: "y" bottom: "label" top: "loss" loss_weight: 0 '
        + "hinge_loss_param { norm: L2 } }",
        {"x": _data(2, 3, poison=INF), "label": np.zeros(2, np.float32)},
        "diff/y",
    ),
    "contrastive_loss_weight_0": (
        "force_backward: true\n"
        + _input("a", 2, 3)
        + _input("b", 2, 3)
        + _input("sim", 2, 1, 1, 1)
        + 'layer { name: "loss" type: "ContrastiveLoss" bottom: "a" bottom: "b" bottom: "sim" top: "loss" '
        + "loss_weight: 0 }",
        {
            "a": _data(2, 3),
            "b": _data(2, 3, poison=0.5),
            "sim": np.array([1, 0], np.float32).reshape(2, 1, 1, 1),
        },
        "diff/a",
    ),
    "reduction_sumsq_under_a_zero_diff": (
        "force_backward: true\n"
        + _input("x", 2, 3)
        + _input("zero", 2)
        + 'layer { name: "r" type: "Reduction" bottom: "x" top: "r" reduction_param { operation: SUMSQ axis: 1 } }\n'
        + 'layer { name: "loss" type: "EuclideanLoss" bottom: "r" bottom: "zero" top: "loss" loss_weight: 0 }',
        {"x": _data(2, 3, poison=INF), "zero": np.zeros(2, np.float32)},
        "diff/x",
    ),
    "scale_by_a_nan_factor": (
        _input("x", 2, 3)
        + _input("s", 2, 3)
        + 'layer { name: "scale" type: "Scale" bottom: "x" bottom: "s" top: "y" scale_param { axis: 0 } }\n'
        + 'layer { name: "loss" type: "Reduction" bottom: "y" top: "loss" loss_weight: 1 }',
        {"x": _data(2, 3, poison=0.5), "s": _data(2, 3)},
        "data/y",
    ),
    "eltwise_sum_coefficient_0": (
        _input("a", 2, 3)
        + _input("b", 2, 3)
        + 'layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "sum" '
        + "eltwise_param { operation: SUM coeff: 0 coeff: 1 } }\n"
        + 'layer { name: "loss" type: "Reduction" bottom: "sum" top: "loss" loss_weight: 1 }',
        {"a": _data(2, 3), "b": _data(2, 3, poison=0.5)},
        "data/sum",
    ),
}


@pytest.fixture(scope="module")
def reference():
    return ReferenceEngine()


@pytest.mark.parametrize("corner", sorted(CORNERS))
def test_a_zero_coefficient_skips_nan_as_caffe_does(corner, caffe_engine, reference):
    net, inputs, key = CORNERS[corner]
    case = Case(net=net, inputs=inputs)
    caffe, ours = caffe_engine.run(case), reference.run(case)
    assert caffe.outcome == Outcome.OK, caffe.message
    assert ours.outcome == Outcome.OK, ours.message
    kind, blob = key.split("/")
    expected = (caffe.blob_data if kind == "data" else caffe.blob_diff)[blob]
    actual = (ours.blob_data if kind == "data" else ours.blob_diff)[blob]
    # Caffe's answer is finite where the formula's is not: that is the corner.
    assert np.isfinite(expected).all(), f"{corner}: Caffe wrote {expected}"
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6, err_msg=corner)


# A param whose gradient is NaN but whose lr_mult is 0: every solver's last step scales the
# update by the local rate through caffe_cpu_axpby or caffe_cpu_scale, which never read the
# gradient at a zero rate, so the param does not move in Caffe; 0 * NaN would make it NaN.
FROZEN_NAN_NET = (
    "force_backward: true\n"  # which computes the diff of a param with lr_mult 0 too
    + _input("x", 2, 3)
    + 'layer { name: "scale" type: "Scale" bottom: "x" top: "y" param { lr_mult: 0 } '
    + "scale_param { axis: 0 num_axes: 1 } }\n"
    + 'layer { name: "loss" type: "Reduction" bottom: "y" top: "loss" loss_weight: 1 }'
)
SOLVERS = {
    "SGD": "momentum: 0.9",
    "SGD without momentum": "",
    "Nesterov": "momentum: 0.9",
    "AdaGrad": "",
    "RMSProp": "rms_decay: 0.9",
    "AdaDelta": "momentum: 0.9",
    "Adam": "momentum: 0.9 momentum2: 0.999",
}


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_a_frozen_param_with_a_nan_gradient_stays_as_caffe_keeps_it(solver, caffe_engine, reference):
    solver_type = solver.split()[0]
    text = f'base_lr: 0.1 lr_policy: "fixed" type: "{solver_type}" {SOLVERS[solver]}'
    initial = np.array([0.5, -0.25], np.float32)
    case = Case(
        net=FROZEN_NAN_NET,
        solver=text,
        iterations=1,
        inputs={"x": _data(2, 3)},
        params={"scale": (initial,)},
    )
    caffe, ours = caffe_engine.run(case), reference.run(case)
    assert caffe.outcome == Outcome.OK, caffe.message
    assert ours.outcome == Outcome.OK, ours.message
    assert np.isnan(caffe.param_diff["scale"][0]).any(), "the corner needs a NaN gradient"
    np.testing.assert_array_equal(caffe.param_history[0]["scale"][0], initial)
    np.testing.assert_array_equal(ours.param_history[0]["scale"][0], initial)
