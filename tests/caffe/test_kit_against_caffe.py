"""The adapter kit's example engine (tests/harness/kit_engines.py) against real Caffe: a torch
engine that supplies only its layers' forward and an SGD update agrees with Caffe on generated
cases within its capabilities, split, in-place and solver cases included."""

from hypothesis import HealthCheck, given, settings

from harness.campaign.fuzz import run_pair
from harness.generate import cases
from tests.harness.kit_engines import ExampleEngine

EXAMPLE = ExampleEngine()


@settings(
    max_examples=30,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(case=cases(capabilities=ExampleEngine.capabilities, refusals=True))
def test_example_kit_engine_agrees_with_caffe(caffe_engine, case):
    comparison, _ = run_pair(case, EXAMPLE, caffe_engine)
    assert comparison.verdict == "agree", comparison.summary()
