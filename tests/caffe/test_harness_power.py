"""The harness's power: each planted Caffe-semantics bug (tests/planted_bugs.py) is caught by a
default fuzz run against real Caffe within a bounded number of examples, shrunk to a small net,
and the bundle it writes is the plant's doing (the clean engine agrees with Caffe on it).

Shrinking is bounded by a number of cases (not seconds), so the outcome is the same on every
machine. benchmarks/harness_power.py prints the kill table (examples to catch, layers left).
"""

import pytest
from google.protobuf import text_format

from harness.campaign.fuzz import run_pair
from harness.engines.reference import ReferenceEngine
from reference_engine import caffe_pb2
from tests.planted_bugs import PLANTS, hunt_planted

MAX_EXAMPLES = 1500
SHRINK_ATTEMPTS = 400
MAX_LAYERS = 14  # Input layers included, split layers not (Caffe adds those)


@pytest.mark.parametrize("bug", sorted(PLANTS))
def test_planted_bug_is_caught_and_shrunk(bug, caffe_engine, tmp_path):
    _, bundle = hunt_planted(
        bug, caffe_engine, MAX_EXAMPLES, seed=0, bundle_dir=tmp_path, shrink_attempts=SHRINK_ATTEMPTS
    )
    assert bundle is not None, f"{bug}: not caught in {MAX_EXAMPLES} examples"
    net = text_format.Parse(bundle.case.net, caffe_pb2.NetParameter())
    assert len(net.layer) <= MAX_LAYERS, f"{bug}: shrunk only to {len(net.layer)} layers:\n{bundle.case.net}"
    clean, _ = run_pair(bundle.case, ReferenceEngine(), caffe_engine)
    assert clean.agree, (
        f"{bug}: the clean reference disagrees with Caffe on the bundle too: {clean.summary()}"
    )
