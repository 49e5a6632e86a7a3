"""The rootfs-instrumented runtime: Caffe with ASan, UBSan and gcov (docs/coverage.md).

Undefined behaviour in Caffe is the outcome caffe_undefined, blamed on the frame in Caffe's
source where the sanitizer caught it; a normal case still agrees with the reference engine; and
every worker's gcov counters are collected, those of a child that aborted included. Real
Caffe, built once per machine and cached; if it cannot be built here the tests FAIL, saying why.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.campaign.compare import compare
from harness.campaign.coverage import CoverageReport, counters_dir
from harness.case import Case, Outcome
from harness.engines.caffe import CaffeEngine
from harness.engines.reference import ReferenceEngine
from harness.engines.runtimes.instrumented import InstrumentedRuntime
from harness.errors import HarnessError

# ASan and gcov slow Caffe (and its import) down several times over.
TIMEOUT_S = 300

# pooling_layer.cpp, PoolingLayer::Forward_cpu: an unpadded CEIL grid with a stride above the
# kernel has a last window wholly past the input (5 rows, kernel 1, stride 3: rows 0, 3, 6), so
# no max is found and the mask stays -1; Backward_cpu then adds into bottom_diff[-1].
# docs/semantics.md; harness/generate/kinds.py, _has_empty_window. force_backward: the Input
# blob needs no diff, so Net::Init would skip Pooling's backward.
POOLING_EMPTY_WINDOW = """
force_backward: true
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 5 dim: 5 } } }
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" loss_weight: 1
  pooling_param { pool: MAX kernel_size: 1 stride: 3 } }
"""

# hinge_loss_layer.cpp, HingeLossLayer::Forward_cpu: bottom_diff[i * dim + label[i]] with no
# check of the label: 3 classes, and the last label is 3, one past the end of the diff.
HINGE_LABEL_PAST_CLASSES = """
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
layer { name: "loss" type: "HingeLoss" bottom: "data" bottom: "label" top: "loss" }
"""

INNER_PRODUCT = """
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 3 dim: 5 } shape { dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 4 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""

POOLING = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 4 dim: 4 } } }
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" loss_weight: 1
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
"""

# net.cpp, Net::Init: CHECK propagate_down_size() == bottom_size(): the child serving it aborts.
PROPAGATE_DOWN_COUNT = """
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 3 dim: 5 } shape { dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  propagate_down: true propagate_down: false inner_product_param { num_output: 4 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def _inputs(net: str, **fixed) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    shapes = {
        INNER_PRODUCT: {"data": (3, 5), "label": (3,)},
        POOLING: {"data": (1, 2, 4, 4)},
        POOLING_EMPTY_WINDOW: {"data": (1, 1, 5, 5)},
        HINGE_LABEL_PAST_CLASSES: {"data": (2, 3), "label": (2,)},
        PROPAGATE_DOWN_COUNT: {"data": (3, 5), "label": (3,)},
    }[net]
    arrays = {}
    for name, shape in shapes.items():
        if name == "label":
            arrays[name] = rng.integers(0, 3, shape).astype(np.float32)
        else:
            arrays[name] = rng.standard_normal(shape).astype(np.float32)
    arrays.update(fixed)
    return arrays


@pytest.fixture(scope="session")
def instrumented_runtime() -> InstrumentedRuntime:
    runtime = InstrumentedRuntime()
    try:
        runtime.install()  # built once per machine (tens of minutes), then cached
    except HarnessError as e:
        pytest.fail(f"the rootfs-instrumented Caffe runtime cannot be built or used here: {e}", pytrace=False)
    return runtime


@pytest.fixture(scope="module")
def instrumented_engine(instrumented_runtime):
    engine = CaffeEngine(instrumented_runtime, timeout_s=TIMEOUT_S, start_timeout_s=TIMEOUT_S)
    yield engine
    engine.close()


def test_max_pooling_empty_window_is_undefined_in_pooling_layer(instrumented_engine):
    case = Case(net=POOLING_EMPTY_WINDOW, inputs=_inputs(POOLING_EMPTY_WINDOW))
    result = instrumented_engine.run(case)
    assert result.outcome is Outcome.CAFFE_UNDEFINED, (result.outcome, result.message, result.info)
    assert result.stage == "backward"
    frame = result.info["sanitizer"]["frame"]
    assert frame["file"] == "src/caffe/layers/pooling_layer.cpp", result.info["sanitizer"]
    assert "PoolingLayer" in frame["function"] and "Backward_cpu" in frame["function"]
    assert "src/caffe/layers/pooling_layer.cpp:" in result.message
    skipped = compare(ReferenceEngine().run(case), result).skipped
    assert skipped and skipped.startswith("Caffe's behaviour is undefined here: ")


def test_hinge_loss_label_past_the_classes_is_undefined_in_hinge_loss_layer(instrumented_engine):
    label = np.array([0, 3], np.float32)  # 3 classes: 3 is one past the last
    case = Case(net=HINGE_LABEL_PAST_CLASSES, inputs=_inputs(HINGE_LABEL_PAST_CLASSES, label=label))
    result = instrumented_engine.run(case)
    assert result.outcome is Outcome.CAFFE_UNDEFINED, (result.outcome, result.message, result.info)
    frame = result.info["sanitizer"]["frame"]
    assert frame["file"] == "src/caffe/layers/hinge_loss_layer.cpp", result.info["sanitizer"]
    assert "HingeLossLayer" in frame["function"]


def test_normal_case_is_ok_and_agrees_with_the_reference(instrumented_engine):
    case = Case(net=INNER_PRODUCT, inputs=_inputs(INNER_PRODUCT))
    caffe = instrumented_engine.run(case)
    assert caffe.outcome is Outcome.OK, (caffe.message, caffe.info.get("log_tail"))
    comparison = compare(ReferenceEngine(semantics=instrumented_engine.caffe_version).run(case), caffe)
    assert comparison.skipped is None
    assert not comparison.mismatches, [m.message for m in comparison.mismatches]


def _coverage_of(runtime: InstrumentedRuntime, directory, nets: list[str]) -> dict:
    """Run nets in a fresh worker that keeps its counters under directory, close it (its last
    child ends and dumps), and report: each group's name to its GroupCoverage."""
    covered = InstrumentedRuntime(runtime.directory, coverage_dir=counters_dir(directory))
    engine = CaffeEngine(covered, timeout_s=TIMEOUT_S, start_timeout_s=TIMEOUT_S)
    try:
        outcomes = [engine.run(Case(net=net, inputs=_inputs(net))).outcome for net in nets]
    finally:
        engine.close()
    return outcomes, {g.name: g for g in CoverageReport(directory, covered).write()}


def test_coverage_is_collected_per_layer_file(instrumented_runtime, tmp_path):
    outcomes, groups = _coverage_of(instrumented_runtime, tmp_path, [INNER_PRODUCT, POOLING])
    assert outcomes == [Outcome.OK, Outcome.OK]
    for used in ("layer InnerProduct", "layer Pooling", "layer SoftmaxWithLoss", "net construction"):
        assert groups[used].lines_covered > 0, groups[used]
    for unused in ("layer LRN", "layer Embed"):
        assert groups[unused].lines_total > 0 and groups[unused].lines_covered == 0, groups[unused]
    assert (tmp_path / "html" / "index.html").exists()
    assert (tmp_path / "coverage.json").exists() and (tmp_path / "groups.json").exists()


def test_coverage_of_an_aborted_child_is_kept(instrumented_runtime, tmp_path):
    # The fork server's warm-up counts are dropped before any child forks, so net.cpp's lines
    # counted here are the aborted child's, dumped by its SIGABRT handler.
    outcomes, groups = _coverage_of(instrumented_runtime, tmp_path, [PROPAGATE_DOWN_COUNT])
    assert outcomes == [Outcome.REFUSED]
    assert groups["net construction"].lines_covered > 0
    assert groups["layer Pooling"].lines_covered == 0
