"""The flag nets of tests/flag_nets.py in real Caffe: its layer list, split names and every
flag (logged and actual) equal the reference engine's analysis."""

import pytest

from harness.campaign.compare import compare
from harness.case import Case, Outcome
from harness.engines.reference import ReferenceEngine
from tests.flag_nets import FLAG_NETS


@pytest.fixture(scope="module")
def reference():
    return ReferenceEngine()


@pytest.mark.parametrize("name", sorted(FLAG_NETS))
def test_flags_agree_with_caffe(name, caffe_engine, reference):
    net = FLAG_NETS[name]
    case = Case(net.prototxt, phase=net.phase, level=net.level, stages=net.stages)
    caffe = caffe_engine.run(case)
    ref = reference.run(case)
    assert caffe.layers, f"Caffe built no layer list: {caffe.outcome} {caffe.message}"
    assert [l.name for l in caffe.layers] == [l.name for l in ref.layers]
    for ours, theirs in zip(ref.layers, caffe.layers):
        for field in (
            "logged_need_backward",
            "need_backward",
            "bottom_need_backward",
            "param_propagate_down",
        ):
            assert getattr(theirs, field) is not None, f"Caffe did not report {field}"
            assert getattr(ours, field) == getattr(theirs, field), f"{name}: {ours.name} {field}"
    for layer, (need, bottoms) in net.expected.items():
        theirs = [l for l in caffe.layers if l.name == layer][-1]
        assert (theirs.need_backward, theirs.bottom_need_backward) == (need, bottoms), (
            f"{name}: the expectation for {layer} ({net.why}) does not hold in Caffe"
        )
    if ref.outcome is Outcome.OK and caffe.outcome is Outcome.OK:
        assert compare(ref, caffe).agree, compare(ref, caffe).summary()
