"""A bounded fuzz campaign against real Caffe: the reference engine agrees on every case, and
every layer type of the generator's catalogue was exercised."""

from harness.campaign.fuzz import DEFAULT_STRATEGY_OPTIONS, Budget, Hunter
from harness.engines.reference import ReferenceEngine
from harness.generate import LAYER_KINDS, LOSS_KINDS

EXAMPLES = 400


def test_bounded_campaign_agrees_everywhere(caffe_engine, tmp_path):
    records = []
    hunter = Hunter(
        ReferenceEngine(),
        caffe_engine,
        {"under_test": "reference", "oracle": "caffe"},
        Budget(examples=EXAMPLES),
        seed=20261128,
        bundle_dir=tmp_path,
        database_dir=None,
        on_record=records.append,
        strategy_options=DEFAULT_STRATEGY_OPTIONS,
    )
    hunter.hunt()
    generated = [r for r in records if not r.shrinking]
    assert len(generated) == EXAMPLES
    bundles = [r for r in records if r.bundle]
    assert not bundles, "\n".join(
        f"{r.summary}\n  replay: caffe-conformance replay {r.bundle}" for r in bundles
    )
    seen = {t for r in generated for t in r.layer_types}
    missing = (set(LAYER_KINDS) | set(LOSS_KINDS)) - seen
    assert not missing, f"layer types never generated in {EXAMPLES} examples: {sorted(missing)}"
    outcomes = {r.outcomes["caffe"] for r in generated}
    assert {"ok", "refused"} <= outcomes, f"outcomes seen: {outcomes}"
