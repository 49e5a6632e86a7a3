"""Real Caffe for the tests in tests/caffe: the rootfs runtime, built once per machine and cached
(~/.cache/caffe-conformance/rootfs-bullseye, or CAFFE_CONFORMANCE_ROOTFS). Never mocked: if the
runtime cannot be built here, every test FAILS with the reason; CI runs these."""

from __future__ import annotations

import numpy as np
import pytest

from harness.caffe_engine import CaffeEngine
from harness.errors import HarnessError
from harness.runtimes import RootfsRuntime

# float32 arithmetic in Caffe vs float64 in numpy. TODO(issue "comparison tolerances"): take
# these from the comparison module's table once it exists.
ARRAY_TOLERANCE = {"rtol": 2e-6, "atol": 1e-6}


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/caffe/" in str(item.fspath):
            item.add_marker(pytest.mark.caffe)


@pytest.fixture(scope="session")
def caffe_runtime() -> RootfsRuntime:
    runtime = RootfsRuntime()
    try:
        runtime.install()
    except HarnessError as e:
        pytest.fail(f"the rootfs Caffe runtime cannot be built or used here: {e}", pytrace=False)
    return runtime


@pytest.fixture(scope="session")
def caffe_engine(caffe_runtime):
    engine = CaffeEngine(caffe_runtime, timeout_s=120)
    yield engine
    engine.close()


@pytest.fixture
def assert_close():
    def check(actual, expected, what):
        np.testing.assert_allclose(actual, expected, err_msg=what, **ARRAY_TOLERANCE)

    return check
