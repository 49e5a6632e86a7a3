"""The docker runtimes without a Docker engine: what their images are made of, how install
chooses between building and importing, and the errors where no engine answers.

A fake docker client (a shell script first on PATH) answers where a test needs one; the
real engine is tests/caffe/test_docker_caffe_engine.py's."""

import json
import os
import tarfile
import tomllib
from pathlib import Path

import pytest

import harness
from harness.cli import main
from harness.engines.runtimes import RUNTIMES, get_runtime
from harness.engines.runtimes.docker import BvlcDockerRuntime, DockerRuntime
from harness.engines.runtimes.rootfs import ROOTFS_FORMAT, STAMP_NAME
from harness.errors import HarnessError, RuntimeUnavailable

DOCKER_RUNTIMES = [name for name, cls in RUNTIMES.items() if issubclass(cls, DockerRuntime)]

# A docker client whose engine answers, has no image, and pulls only where PULL_OK is set.
FAKE_DOCKER = """#!/bin/sh
case "$1" in
  version) echo 20.10.24 ;;
  pull) [ -n "$PULL_OK" ] && exit 0; echo "Error response from daemon: no registry answers" >&2; exit 1 ;;
  *) echo "Error: No such image" >&2; exit 1 ;;
esac
"""


@pytest.fixture
def fake_docker(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def ready_rootfs(directory: Path, built: str) -> Path:
    """A directory the rootfs runtime takes for a finished tree: only its stamp."""
    directory.mkdir(exist_ok=True)
    (directory / STAMP_NAME).write_text(json.dumps({"format": ROOTFS_FORMAT, "built": built}))
    return directory


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


@pytest.mark.parametrize("name", DOCKER_RUNTIMES)
def test_the_dockerfiles_are_package_data(name):
    """An installed package builds its images: each Dockerfile lies inside the harness package
    and matches one of the package-data globs the wheel is built with."""
    package = Path(harness.__file__).parent
    dockerfile = RUNTIMES[name].dockerfile.relative_to(package)
    pyproject = tomllib.loads((package.parent / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["harness"]
    assert any(dockerfile.match(pattern) for pattern in globs), (dockerfile, globs)


def test_the_image_labels_follow_their_sources(tmp_path):
    runtime = DockerRuntime(tmp_path / "rootfs")
    assert runtime._rootfs_sources() is None  # no tree: nothing to import
    ready_rootfs(tmp_path / "rootfs", built="2026-12-01T00:00:00")
    first = runtime._rootfs_sources()
    ready_rootfs(tmp_path / "rootfs", built="2026-12-02T00:00:00")
    assert runtime._rootfs_sources() not in (None, first)  # a rebuilt tree makes the image stale
    assert runtime._fresh_sources() == {runtime._dockerfile_sources(), runtime._rootfs_sources()}
    bvlc = BvlcDockerRuntime(tmp_path / "rootfs")
    assert bvlc._dockerfile_sources() != runtime._dockerfile_sources()
    assert bvlc._fresh_sources() == {bvlc._dockerfile_sources()}  # Caffe 1.0 is never imported


def test_from_rootfs_is_for_the_docker_runtime_only(tmp_path):
    runtime = get_runtime("docker", tmp_path, from_rootfs=True)
    assert runtime.from_rootfs and runtime.rootfs.directory == tmp_path
    for name in ("docker-bvlc", "rootfs", "local"):
        with pytest.raises(HarnessError, match="from_rootfs"):
            get_runtime(name, from_rootfs=True)


@pytest.mark.parametrize("pull_ok, made_by", [(True, "_build"), (False, "_import")])
def test_install_builds_where_the_base_pulls_and_imports_the_rootfs_otherwise(
    fake_docker, monkeypatch, tmp_path, pull_ok, made_by
):
    if pull_ok:
        monkeypatch.setenv("PULL_OK", "1")
    made = []
    for method in ("_build", "_import"):
        monkeypatch.setattr(DockerRuntime, method, lambda self, progress, method=method: made.append(method))
    said = []
    DockerRuntime(ready_rootfs(tmp_path / "rootfs", built="now")).install(said.append)
    assert made == [made_by]
    assert any("cannot be pulled" in line for line in said) == (not pull_ok)


def test_install_from_rootfs_does_not_try_the_dockerfile(fake_docker, monkeypatch, tmp_path):
    monkeypatch.setenv("PULL_OK", "1")
    made = []
    for method in ("_build", "_import"):
        monkeypatch.setattr(DockerRuntime, method, lambda self, progress, method=method: made.append(method))
    DockerRuntime(tmp_path / "rootfs", from_rootfs=True).install(lambda message: None)
    assert made == ["_import"]


def test_bvlc_install_without_a_registry_says_which_base_image(fake_docker):
    with pytest.raises(
        RuntimeUnavailable, match=r"base image bvlc/caffe:cpu cannot be pulled: .*no registry"
    ):
        BvlcDockerRuntime().install(lambda message: None)


def test_without_the_docker_client_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeUnavailable, match=r"apt-get install docker\.io"):
        DockerRuntime().ensure_ready()


def test_fuzz_without_a_docker_engine_exits_two_saying_why(monkeypatch, capsys):
    """One line naming the runtime and what is missing, no traceback: where the docker client is
    installed it finds no engine on this socket; where it is not, it says so."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert main(["fuzz", "--against", "caffe", "--runtime", "docker", "--examples", "1"]) == 2
    err = capsys.readouterr().err
    assert "runtime 'docker': " in err and "Traceback" not in err, err
    assert "no Docker engine answers" in err or "docker command-line client is not installed" in err
