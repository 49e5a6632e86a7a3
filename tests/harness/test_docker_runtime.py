"""The Docker runtimes: their build context always, a real run where a Docker engine answers.

No Docker engine runs on the CI machines (the rootfs runtime is what CI uses); there the
run test is skipped with the reason printed (pytest -rs)."""

import tarfile

import numpy as np
import pytest

from harness.case import Case
from harness.engines.runtimes import RUNTIMES, get_runtime
from harness.errors import RuntimeUnavailable

NET = """
layer { name: "in" type: "Input" top: "x" top: "y" input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip" inner_product_param { num_output: 2 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "y" }
"""


@pytest.mark.parametrize(
    "name, base", [("docker", "debian:bullseye-slim"), ("docker-bvlc", "bvlc/caffe:cpu")]
)
def test_build_context_holds_the_worker_and_the_probe(name, base):
    runtime = get_runtime(name)
    with tarfile.open(fileobj=runtime._context()) as tar:
        names = set(tar.getnames())
        dockerfile = tar.extractfile("Dockerfile").read().decode()
    assert {"Dockerfile", "worker.py", "flags_probe.cpp", "build_probe.sh"} <= names
    assert f"FROM {base}" in dockerfile
    assert runtime.caffe_version == ("1.0" if name == "docker-bvlc" else "master")


@pytest.mark.parametrize("name", ["docker", "docker-bvlc"])
def test_a_case_runs_through_docker(name):
    from harness.campaign.compare import compare
    from harness.engines.caffe import CaffeEngine
    from harness.engines.reference import ReferenceEngine

    runtime = RUNTIMES[name]()
    try:
        runtime.install()
    except RuntimeUnavailable as e:
        pytest.skip(f"runtime {name!r} unavailable here: {e}")
    rng = np.random.default_rng(0)
    case = Case(
        NET,
        inputs={
            "x": rng.standard_normal((2, 3)).astype(np.float32),
            "y": rng.standard_normal((2, 2)).astype(np.float32),
        },
    )
    engine = CaffeEngine(runtime, timeout_s=120)
    try:
        caffe = engine.run(case)
    finally:
        engine.close()
    reference = ReferenceEngine(semantics=runtime.caffe_version).run(case)
    assert compare(reference, caffe).agree, compare(reference, caffe).summary()
