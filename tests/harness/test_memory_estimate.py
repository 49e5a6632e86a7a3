"""harness/engines/memory.py: a case's memory, estimated from the reference engine's own net
construction before anything is allocated, and the budget that refuses a case too large."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given

from harness.case import Case, Outcome
from harness.engines.caffe import CaffeEngine
from harness.engines.memory import DEFAULT_MEMORY_BUDGET, case_footprint, parse_size, require_within_budget
from harness.engines.reference import ReferenceEngine
from harness.errors import HarnessError
from harness.generate.cases import cases
from reference_engine.checks import CaffeError, Unsupported
from reference_engine.net import Net, read_net_param

CHAIN = """
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 4 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""
# 1e8 floats: 0.8 GB a copy in float64, several copies per engine.
HUGE_INPUT = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 100000000 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "data" bottom: "data" top: "loss" }
"""


@given(cases())
def test_footprint_counts_what_the_reference_net_allocates(case):
    """The meta-device construction gives the blobs and params a real one allocates."""
    footprint = case_footprint(case)
    try:
        net = Net(read_net_param(case.net, case.phase, case.level, case.stages)[0], torch.float32)
    except (CaffeError, Unsupported):
        assert (footprint.blobs, footprint.params) == (0, 0)
        return
    assert footprint.blobs == sum(blob.count() for blob in net.blobs)
    assert footprint.params == sum(blob.count() for layer in net.layers for blob in layer.blobs)
    assert footprint.arrays == sum(value.size for value in case.arrays().values())


@given(cases())
def test_every_generated_case_fits_the_default_budget(case):
    assert case_footprint(case).harness_bytes() <= DEFAULT_MEMORY_BUDGET


def test_inputs_count_at_their_own_shape():
    """An input larger than its Input layer declares reshapes the net (the forward's Reshape):
    the estimate counts the blobs downstream at that shape too."""
    declared = case_footprint(Case(net=CHAIN))
    inputs = {"data": np.zeros((200, 3), np.float32), "label": np.zeros(200, np.float32)}
    larger = case_footprint(Case(net=CHAIN, inputs=inputs))
    # data 200x3, label 200, ip 200x4, loss 1 (SoftmaxWithLoss's prob is the layer's own).
    assert larger.blobs == 200 * 3 + 200 + 200 * 4 + 1
    assert declared.blobs == 2 * 3 + 2 + 2 * 4 + 1
    assert larger.params == declared.params == 4 * 3 + 4


def test_a_case_without_arrays_counts_its_declared_shapes():
    """check and explain estimate a user's net before drawing its arrays."""
    inputs = {"data": np.zeros((2, 3), np.float32), "label": np.zeros(2, np.float32)}
    with_arrays = case_footprint(Case(net=CHAIN, inputs=inputs))
    assert dataclasses.replace(with_arrays, arrays=0) == case_footprint(Case(net=CHAIN))


def test_a_solver_counts_each_iteration_and_its_history():
    plain = case_footprint(Case(net=CHAIN))
    solver = 'type: "Adam" base_lr: 0.1 lr_policy: "fixed"'
    stepped = case_footprint(Case(net=CHAIN, solver=solver, iterations=5))
    assert stepped.reference_bytes() > plain.reference_bytes() + 5 * 8 * plain.params
    assert stepped.caffe_bytes() == plain.caffe_bytes() + 5 * 4 * plain.params


def test_the_reference_engine_refuses_a_case_over_its_budget():
    result = ReferenceEngine().run(Case(net=HUGE_INPUT))
    assert result.outcome == Outcome.UNSUPPORTED
    assert result.stage == "init"
    assert result.message.startswith("the reference engine (torch.float64) needs about ")
    assert "(300000001 blob and 0 param elements), over the memory budget of 2.0 GiB" in result.message


def test_the_caffe_engine_refuses_a_case_over_its_budget_before_starting_caffe():
    engine = CaffeEngine("rootfs", memory_budget=64 << 20)
    result = engine.run(Case(net=HUGE_INPUT))
    assert result.outcome == Outcome.UNSUPPORTED
    assert result.message.startswith("the Caffe engine needs about 2.2 GiB for this case")
    assert result.message.endswith("over the memory budget of 64.0 MiB (--memory-budget)")
    assert engine.process is None


def test_a_command_refuses_a_net_over_the_budget_before_drawing_its_arrays():
    with pytest.raises(
        HarnessError, match=r"^huge.prototxt: the harness needs about [0-9.]+ GiB for this case"
    ):
        require_within_budget(Case(net=HUGE_INPUT), DEFAULT_MEMORY_BUDGET, "huge.prototxt")
    require_within_budget(Case(net=CHAIN), DEFAULT_MEMORY_BUDGET, "chain.prototxt")


@pytest.mark.parametrize(
    ("text", "size"),
    [("2G", 2 << 30), ("512MiB", 512 << 20), ("1.5g", 3 << 29), ("100", 100), ("4 kb", 4096)],
)
def test_parse_size(text, size):
    assert parse_size(text) == size


def test_parse_size_names_what_it_expected():
    with pytest.raises(
        HarnessError, match=r"memory size 'lots': expected a number with an optional K, M, G or T"
    ):
        parse_size("lots")
