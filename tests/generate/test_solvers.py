"""The solver strategy: valid per type, and shrinking to plain SGD."""

import numpy
from google.protobuf import text_format
from hypothesis import HealthCheck, find, given, settings

from harness.generate import solver_params
from reference_engine import caffe_pb2

FIXED = settings(derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings(FIXED, max_examples=200)
@given(solver_params())
def test_solver_params_are_valid_for_their_type(solver):
    parsed = text_format.Parse(text_format.MessageToString(solver), caffe_pb2.SolverParameter())
    assert parsed == solver
    assert not solver.HasField("net") and not solver.HasField("net_param")
    assert 0 < solver.base_lr <= numpy.float32(0.1)  # the field is a float32
    if solver.type in ("AdaGrad", "RMSProp"):
        assert solver.momentum == 0  # Caffe: "Momentum cannot be used with AdaGrad/RMSProp."
    assert 0 <= solver.rms_decay < 1
    if solver.lr_policy == "poly":
        assert solver.max_iter > 0
    if solver.lr_policy == "multistep":
        assert list(solver.stepvalue) == sorted(set(solver.stepvalue))


def test_solver_params_shrink_to_plain_sgd():
    solver = find(solver_params(), lambda s: True, settings=FIXED)
    assert text_format.MessageToString(solver) == 'base_lr: 0.01\nlr_policy: "fixed"\n'
