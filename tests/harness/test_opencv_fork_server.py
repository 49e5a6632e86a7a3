"""The OpenCV engine's fork server (harness/engines/opencv.py): a case that crashes or hangs
OpenCV is that case's outcome, and the cases after it still run. The crash and the hang are
planted in an input array (fault_inputs.py); OpenCV itself runs, Caffe is not needed."""

import numpy as np
import pytest

from harness.case import Case, Outcome
from harness.engines.opencv import OpenCVEngine
from tests.harness.fault_inputs import AbortsWhenRead, HangsWhenRead

NET = """
layer { name: "input0" type: "Input" top: "data0" input_param { shape { dim: 1 dim: 2 } } }
layer { name: "relu0" type: "ReLU" bottom: "data0" top: "relu0" }
"""
CASE = Case(net=NET, phase="TEST", inputs={"data0": np.array([[-1.0, 2.0]], np.float32)})


@pytest.fixture
def opencv():
    engine = OpenCVEngine(timeout_s=3)
    yield engine
    engine.close()


def request_reading(value):
    """What the engine sends for CASE, with ``value`` as its input."""
    layers = [("input0", "Input", (), ("data0",)), ("relu0", "ReLU", ("data0",), ("relu0",))]
    return (NET, b"", [("data0", value)], layers)


def assert_runs(engine):
    result = engine.run(CASE)
    assert result.outcome is Outcome.OK, result.message
    assert result.blob_data["relu0"].tolist() == [[0.0, 2.0]]


def test_a_crash_is_the_outcome_of_its_case_and_the_next_case_runs(opencv):
    assert_runs(opencv)
    outcome, stage, message, _ = opencv._ask(request_reading(AbortsWhenRead()))
    assert (outcome, stage) == (Outcome.CRASHED, "forward")
    assert message.startswith("OpenCV died (signal SIGABRT)")
    assert_runs(opencv)


def test_a_hang_is_a_timeout_and_the_next_case_starts_a_new_server(opencv):
    assert_runs(opencv)
    server = opencv.child
    outcome, stage, message, _ = opencv._ask(request_reading(HangsWhenRead()))
    assert (outcome, stage, message) == (Outcome.TIMEOUT, "forward", "no answer within 3 s")
    assert server.poll() is not None  # killed, with the fork that hung
    assert_runs(opencv)
