"""junit.xml counts a bug once, under a name that stays the same from run to run."""

import xml.etree.ElementTree as ET

from harness.campaign.fuzz import CaseRecord
from harness.campaign.report import write_report


def _record(name, verdict="agree", signature=None, bundle=None, shrinking=False):
    return CaseRecord(
        name,
        verdict,
        f"{verdict} summary",
        {"reference": 0.01},
        ["ReLU"],
        {"reference": "ok"},
        shrinking=shrinking,
        bundle=bundle,
        signature=signature,
    )


def test_a_bundled_disagreement_is_one_failure_named_by_its_signature(tmp_path):
    records = [
        _record("seed1-case1"),
        _record("seed1-case2", "disagree", "forward:Scale"),  # found
        _record("seed1-case3", "disagree", "forward:Scale", shrinking=True),  # a shrink attempt
        _record("seed1-case9", "disagree", "forward:Scale", bundle="b/forward-Scale", shrinking=True),
        _record("seed1-case4", "disagree", "backward:Pooling"),  # found, never bundled (interrupted)
    ]
    write_report(tmp_path, records, interrupted=True, settings={})
    suite = ET.parse(tmp_path / "junit.xml").getroot()
    failures = [case.get("name") for case in suite.iter("testcase") if case.find("failure") is not None]
    assert sorted(failures) == ["forward:Scale", "seed1-case4"]
    assert suite.get("failures") == "2"
    assert suite.get("tests") == "3"
