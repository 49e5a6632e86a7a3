"""report.json, bundle.json and explain --json follow their versioned schemas
(docs/schema/*-v1.schema.json), checked on what a real campaign and a real explain wrote."""

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, ValidationError

from harness.cli import main
from harness.versions import SCHEMA_VERSIONS, tool_version
from tests.harness.campaigns import disagreeing_campaign

SCHEMAS = Path(__file__).parents[2] / "docs" / "schema"
EXAMPLE = "harness/explain/examples/propagate_down.prototxt"


def validator(artefact: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{artefact}-v{SCHEMA_VERSIONS[artefact]}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Path:
    return disagreeing_campaign(tmp_path_factory.mktemp("campaign") / "report")


def test_report_json_follows_its_schema_and_records_the_run(campaign):
    report = json.loads((campaign / "report.json").read_text())
    validator("report").validate(report)
    assert report["schema"] == {"name": "caffe-conformance/report", "version": 1}
    assert report["tool"] == {"name": "caffe-conformance", "version": tool_version()}
    summary = report["summary"]
    assert summary["started"] and summary["duration_s"] > 0
    assert summary["engines"] == {
        "under_test": "tests.harness.fake_engines:PerturbedEngine",
        "oracle": "reference",
        "caffe": None,
    }


def test_bundle_json_follows_its_schema(campaign):
    bundles = list((campaign / "bundles").glob("*/bundle.json"))
    assert bundles
    for path in bundles:
        meta = json.loads(path.read_text())
        validator("bundle").validate(meta)
        assert meta["schema"]["version"] == 1 and meta["tool"]["version"] == tool_version()


def test_explain_json_follows_its_schema_for_a_net_and_for_a_refusal(tmp_path, capsys):
    assert main(["explain", EXAMPLE, "--json"]) == 0
    validator("explain").validate(json.loads(capsys.readouterr().out))
    refused = tmp_path / "refused.prototxt"
    refused.write_text('layer { name: "r" type: "ReLU" bottom: "nowhere" top: "y" }\n')
    assert main(["explain", str(refused), "--json"]) == 2
    data = json.loads(capsys.readouterr().out)
    validator("explain").validate(data)
    assert data["errors"] and data["layers"] == []


def test_an_artefact_missing_a_field_or_of_another_version_fails_validation(campaign):
    report = json.loads((campaign / "report.json").read_text())
    del report["summary"]["started"]
    with pytest.raises(ValidationError, match="'started' is a required property"):
        validator("report").validate(report)
    meta = json.loads(next((campaign / "bundles").glob("*/bundle.json")).read_text())
    meta["schema"]["version"] = 2
    with pytest.raises(ValidationError):
        validator("bundle").validate(meta)
    del meta["comparison"]
    with pytest.raises(ValidationError, match="'comparison' is a required property"):
        validator("bundle").validate(meta)
