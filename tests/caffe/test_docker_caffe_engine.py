"""Real Caffe through the docker runtime: the rootfs runtime's guarantees, checked on the
container (no network, a memory cap that is out_of_memory, a timeout that removes it, aborts and
crashes as outcomes, the post-mortem files through a mounted directory, nothing left running).

Where no Docker engine answers these tests are skipped, saying why; CI starts one and sets
CAFFE_CONFORMANCE_REQUIRE_DOCKER=1 (.ci/run), which makes that a failure."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest

from harness.campaign.compare import compare
from harness.case import Case, Outcome
from harness.cli import main
from harness.engines.caffe import CaffeEngine
from harness.engines.reference import ReferenceEngine
from harness.engines.runtimes import get_runtime
from harness.engines.runtimes.base import INSTALL_DIR
from harness.engines.runtimes.docker import WORKER_LABEL, DockerRuntime, _docker, container_name
from harness.engines.worker import BUILT_FILE
from harness.errors import HarnessError, RuntimeUnavailable
from tests.caffe.test_caffe_engine import (
    LABEL_PROPAGATE_DOWN,
    MEMORY_BOMB,
    PROPAGATE_DOWN_COUNT,
    SLOW,
    tiny_case,
)

REQUIRE_DOCKER = "CAFFE_CONFORMANCE_REQUIRE_DOCKER"
# Far under the 8 GB MEMORY_BOMB, far over a small net's needs (the worker holds about 200 MB).
MEMORY_CAP_MB = 1024
CAMPAIGN_EXAMPLES = 100


@pytest.fixture(scope="module")
def docker_runtime() -> DockerRuntime:
    runtime = DockerRuntime()
    try:
        runtime.server_version()
    except RuntimeUnavailable as e:
        if os.environ.get(REQUIRE_DOCKER) == "1":
            pytest.fail(f"{REQUIRE_DOCKER}=1, and {e}", pytrace=False)
        pytest.skip(f"{e} ({REQUIRE_DOCKER}=1 makes this a failure)")
    try:
        runtime.install()
    except HarnessError as e:
        pytest.fail(f"the docker runtime's image cannot be made here: {e}", pytrace=False)
    return runtime


def container_of(engine: CaffeEngine) -> str:
    return container_name(engine.process.args)


def containers_named(name: str) -> list[str]:
    """Every container, running or not, called name."""
    listed = _docker("ps", "--all", "--filter", f"name=^{name}$", "--format", "{{.Names}}")
    assert listed.returncode == 0, listed.stderr
    return listed.stdout.split()


def serving_child(engine: CaffeEngine) -> int:
    """The host pid of the fork server's serving child: the child of the container's first process."""
    inspected = _docker("inspect", "--format", "{{.State.Pid}}", container_of(engine))
    fork_server = int(inspected.stdout)
    children = (Path("/proc") / str(fork_server) / "task" / str(fork_server) / "children").read_text()
    (child,) = map(int, children.split())
    return child


def test_the_image_is_labelled_with_its_sources_and_kept_while_they_hold(docker_runtime):
    image = docker_runtime._image()
    assert image.sources in docker_runtime._fresh_sources()
    said = []
    docker_runtime.install(said.append)
    assert docker_runtime._image() == image
    assert said == [f"docker: image {docker_runtime.image} is up to date ({image.sources})"]


def test_a_case_agrees_with_the_reference(docker_runtime):
    case = tiny_case()
    with CaffeEngine(docker_runtime) as engine:
        caffe = engine.run(case)
    assert caffe.outcome == Outcome.OK, caffe.message
    assert caffe.info["runtime"] == "docker"
    comparison = compare(ReferenceEngine(semantics=docker_runtime.caffe_version).run(case), caffe)
    assert comparison.agree, comparison.summary()


def test_the_container_has_no_network_and_the_memory_cap(docker_runtime):
    with CaffeEngine(docker_runtime, memory_mb=MEMORY_CAP_MB) as engine:
        assert engine.run(tiny_case()).outcome == Outcome.OK
        name = container_of(engine)
        host = _docker(
            "inspect", "--format", "{{json .HostConfig.NetworkMode}} {{.HostConfig.Memory}}", name
        ).stdout.split()
        assert host == ['"none"', str(MEMORY_CAP_MB << 20)]
        interfaces = _docker("exec", name, "ls", "/sys/class/net").stdout.split()
        assert interfaces == ["lo"]


def test_refused_and_aborted_nets_are_outcomes_and_the_next_case_is_served(docker_runtime):
    with CaffeEngine(docker_runtime) as engine:
        before = engine.run(tiny_case())
        refused = engine.run(tiny_case(net=PROPAGATE_DOWN_COUNT))
        assert refused.outcome == Outcome.REFUSED and refused.stage == "init"
        assert refused.message.startswith("Check failed: layer_param.propagate_down_size()")
        aborted = engine.run(tiny_case(net=LABEL_PROPAGATE_DOWN))
        assert aborted.outcome == Outcome.ABORTED and aborted.stage == "backward"
        assert aborted.message == "SoftmaxWithLoss Layer cannot backpropagate to label inputs."
        # The layers come from the post-mortem file the container wrote in the mounted directory.
        assert [layer.name for layer in aborted.layers] == ["data", "ip", "loss"]
        assert json.loads((engine._log_dir / BUILT_FILE).read_text())["request_id"] == 3
        after = engine.run(tiny_case(seed=1))
        assert after.outcome == Outcome.OK, after.message
        assert after.info["worker_starts"] == before.info["worker_starts"]
        assert after.info["child_restarts"] == before.info["child_restarts"] + 2


def test_memory_bomb_is_out_of_memory_at_the_containers_cap(docker_runtime):
    # No harness budget: it would refuse the bomb before the container's cap is reached.
    with CaffeEngine(docker_runtime, memory_mb=MEMORY_CAP_MB, memory_budget=None) as engine:
        before = engine.run(tiny_case())
        bomb = engine.run(Case(net=MEMORY_BOMB))
        assert bomb.outcome == Outcome.OUT_OF_MEMORY, bomb.message
        assert bomb.stage == "init"
        assert f"memory cap (memory_mb={MEMORY_CAP_MB})" in bomb.message
        after = engine.run(tiny_case())
        assert after.outcome == Outcome.OK, after.message
        assert after.info["worker_starts"] == before.info["worker_starts"]  # the fork server lived


@pytest.mark.parametrize("signal_name", ["SIGSEGV", "SIGKILL"])
def test_a_serving_child_killed_mid_case_is_a_crash(docker_runtime, signal_name):
    """A crash (here a signal from outside, during a long forward) is a crashed outcome; a
    SIGKILL that no memory cap sent is not taken for out_of_memory."""
    with CaffeEngine(docker_runtime, timeout_s=60.0) as engine:
        engine.run(tiny_case())
        child = serving_child(engine)
        killer = threading.Timer(1.0, os.kill, (child, signal.Signals[signal_name]))
        killer.start()
        try:
            crashed = engine.run(Case(net=SLOW))
        finally:
            killer.cancel()
        assert crashed.outcome == Outcome.CRASHED, crashed.message
        assert crashed.stage == "forward"
        assert crashed.info["signal"] == signal_name
        assert engine.run(tiny_case()).outcome == Outcome.OK


def test_hang_is_timeout_and_its_container_is_removed(docker_runtime):
    with CaffeEngine(docker_runtime, timeout_s=1.0) as engine:
        engine.run(tiny_case())
        hung = container_of(engine)
        slow = engine.run(Case(net=SLOW))
        assert slow.outcome == Outcome.TIMEOUT, slow.message
        assert slow.stage == "forward"
        assert containers_named(hung) == []
        assert engine.run(tiny_case()).outcome == Outcome.OK
        assert container_of(engine) != hung


def test_nothing_is_left_running_after_close(docker_runtime):
    engine = CaffeEngine(docker_runtime)
    engine.run(tiny_case())
    name = container_of(engine)
    assert containers_named(name) == [name]
    client = engine.process
    engine.close()
    assert client.poll() is not None
    assert containers_named(name) == []
    workers = _docker("ps", "--all", "--filter", f"label={WORKER_LABEL}", "--format", "{{.Names}}")
    assert name not in workers.stdout.split()


def test_an_image_built_from_a_dockerfile_is_labelled_and_serves(docker_runtime, tmp_path):
    """The build path, on a base image that is here already (none can be pulled here): the
    context, the label, a second install that keeps the image, a case served from it."""
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        f"FROM {docker_runtime.image}\nCOPY worker.py flags_probe.cpp build_probe.sh {INSTALL_DIR}/\n"
    )

    class BuiltHere(DockerRuntime):
        image = "caffe-conformance:test-built-here"
        imports_rootfs = False

    BuiltHere.dockerfile = dockerfile
    runtime = BuiltHere()
    try:
        runtime.install()
        image = runtime._image()
        assert image.sources == runtime._dockerfile_sources()
        runtime.install()
        assert runtime._image() == image
        with CaffeEngine(runtime) as engine:
            assert engine.run(tiny_case()).outcome == Outcome.OK
    finally:
        _docker("image", "rm", "--force", runtime.image)


def test_a_bounded_campaign_through_docker_agrees_everywhere(docker_runtime, tmp_path):
    code = main(
        [
            "fuzz",
            "--against",
            "caffe",
            "--runtime",
            "docker",
            "--examples",
            str(CAMPAIGN_EXAMPLES),
            "--seed",
            "5",
            "--report",
            str(tmp_path),
        ]
    )
    summary = json.loads((tmp_path / "report.json").read_text())["summary"]
    assert code == 0, summary["disagreements"]
    assert summary["cases"] == CAMPAIGN_EXAMPLES
    assert summary["verdicts"] == {"agree": CAMPAIGN_EXAMPLES}


def test_a_case_runs_through_docker_bvlc(docker_runtime):
    """Caffe 1.0 from bvlc/caffe:cpu, where that image can be pulled (Docker Hub)."""
    runtime = get_runtime("docker-bvlc")
    try:
        runtime.install()
    except RuntimeUnavailable as e:
        pytest.skip(f"docker-bvlc is unverified here: {e}")
    case = tiny_case()
    with CaffeEngine(runtime) as engine:
        caffe = engine.run(case)
    comparison = compare(ReferenceEngine(semantics=runtime.caffe_version).run(case), caffe)
    assert comparison.agree, comparison.summary()
