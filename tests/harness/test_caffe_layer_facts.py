"""The layer facts CaffeEngine sends its worker (harness/engines/caffe.py, worker_layer_facts):
read from the reference engine's layer classes, which must be registered by then."""

from __future__ import annotations

from harness.engines.caffe import WORKER_LAYER_FACTS, worker_layer_facts


def test_the_facts_name_the_layer_types_whose_class_sets_them():
    facts = worker_layer_facts()
    assert tuple(facts) == WORKER_LAYER_FACTS
    assert "HingeLoss" in facts["backward_reads_bottom_diff"]
    assert "Flatten" in facts["backward_repoints_bottom_diff"]
    assert "InnerProduct" not in facts["backward_reads_bottom_diff"] + facts["backward_repoints_bottom_diff"]
