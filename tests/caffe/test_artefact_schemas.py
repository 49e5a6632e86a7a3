"""The artefacts of runs against real Caffe follow their schemas (docs/schema/) and record
which Caffe: report.json its runtime, bundle.json and explain --json what the engine reported."""

import json

from harness.cli import main
from tests.harness.campaigns import PERTURBED
from tests.harness.test_schemas import EXAMPLE, validator


def test_a_campaign_against_caffe_records_its_runtime_and_version(caffe_runtime, tmp_path):
    argv = ["-q", "fuzz", "--engine", PERTURBED, "--against", "caffe", "--examples", "5", "--seed", "3"]
    assert main([*argv, "--report", str(tmp_path)]) == 1
    report = json.loads((tmp_path / "report.json").read_text())
    validator("report").validate(report)
    caffe = {"runtime": caffe_runtime.name, "version": caffe_runtime.caffe_version}
    assert report["summary"]["engines"]["caffe"] == caffe
    (bundle,) = (tmp_path / "bundles").glob("*/bundle.json")
    meta = json.loads(bundle.read_text())
    validator("bundle").validate(meta)
    assert meta["caffe"]["engine"] == "caffe" and meta["caffe"]["runtime"] == caffe_runtime.name
    assert meta["caffe"]["version"] == caffe_runtime.caffe_version and meta["caffe"]["module_version"]


def test_explain_against_caffe_records_its_runtime_and_version(caffe_runtime, capsys):
    assert main(["explain", EXAMPLE, "--against", "caffe", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    validator("explain").validate(data)
    assert data["caffe"]["runtime"] == caffe_runtime.name
    assert data["caffe"]["version"] == caffe_runtime.caffe_version
