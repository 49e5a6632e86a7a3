"""Real Caffe for the tests in tests/caffe: the rootfs runtime, built once per machine and cached
(~/.cache/caffe-conformance/rootfs-bullseye, or CAFFE_CONFORMANCE_ROOTFS). Never mocked: if the
runtime cannot be built here, every test FAILS with the reason; CI runs these."""

from __future__ import annotations

import numpy as np
import pytest

from harness.campaign.compare import TOLERANCES, array_mismatch
from harness.engines.caffe import CaffeEngine
from harness.engines.runtimes import RootfsRuntime
from harness.errors import HarnessError


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
    def check(actual, expected, what, kind="weights"):
        """Caffe's float32 values against a float64 hand computation, by the comparison's table."""
        message, _ = array_mismatch(
            np.asarray(actual, np.float64),
            np.asarray(expected, np.float64),
            TOLERANCES[kind],
            "caffe",
            "expected",
        )
        assert message is None, f"{what}: {message}"

    return check
