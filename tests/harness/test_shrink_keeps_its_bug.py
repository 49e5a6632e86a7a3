"""A shrink follows the bug it found: a smaller case fails again only with the first mismatch's
quantity and blamed layer role unchanged. TwoUpdateBugs plants two bugs of one layer type's
update; the shrink of the first may not slip to the second. Engines that claim nothing about
Caffe."""

import dataclasses

from google.protobuf import text_format

from harness.campaign.bundle import Bundle
from harness.campaign.fuzz import Budget, Hunter, run_pair
from harness.engines.reference import ReferenceEngine
from reference_engine import caffe_pb2
from tests.harness.fake_engines import TwoUpdateBugs

BIAS_BUG = "update:InnerProduct:param 1 update"


def _without_decay(case):
    solver = text_format.Parse(case.solver, caffe_pb2.SolverParameter())
    solver.ClearField("weight_decay")
    return dataclasses.replace(case, solver=text_format.MessageToString(solver))


def test_a_shrink_keeps_the_quantity_it_found_and_does_not_slip_to_another_bug(tmp_path):
    under_test, oracle, records = TwoUpdateBugs(), ReferenceEngine(), []
    hunter = Hunter(
        under_test,
        oracle,
        {"under_test": "tests.harness.fake_engines:TwoUpdateBugs", "oracle": "reference"},
        Budget(examples=30),
        seed=7,
        bundle_dir=tmp_path,
        database_dir=None,
        on_record=records.append,
        strategy_options={},
        shrink_attempts=40,
        known=frozenset({BIAS_BUG}),  # bundled already: only the weights' bug is shrunk
    )
    hunter.hunt()
    [bundled] = [r for r in records if r.bundle and r.shrunk]
    assert bundled.signature == "update:InnerProduct:param 0 update"
    kept = Bundle.load(bundled.bundle)
    assert kept.comparison.first.quantity == "param 0 update"
    # The slip was there to take: without its decay, the kept case shows the other bug, of the
    # same kind and layer type.
    slipped, _ = run_pair(_without_decay(kept.case), under_test, oracle)
    assert (slipped.first.kind, slipped.first.quantity) == ("update", "param 1 update")
    assert slipped.first.layer == kept.comparison.first.layer
