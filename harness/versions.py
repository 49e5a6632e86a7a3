"""What each JSON artefact says of its own making: the schema it follows
(docs/schema/<name>-v<version>.schema.json, described in docs/reports.md), the version of the
tool that wrote it and, where a case ran in real Caffe, which Caffe. A reader checks the schema
before the rest: a field may change meaning from one version to the next. Each is written as
strict JSON (``json_text``)."""

from __future__ import annotations

import functools
import json
import math

TOOL = "caffe-conformance"
# One entry per artefact; a change a reader of the old version would misread bumps its version.
SCHEMA_VERSIONS = {"report": 1, "bundle": 1, "explain": 1}


def json_text(data) -> str:
    """Strict JSON: RFC 8259 has no NaN or infinity, and jq, browsers and schema validators
    refuse Python's bare ``NaN``, so a non-finite number (a NaN gradient, an infinite error) is
    written as the string "NaN", "Infinity" or "-Infinity", which ``float()`` reads back."""
    return json.dumps(_named_non_finite(data), indent=2, allow_nan=False, default=str)


def _named_non_finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _named_non_finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_named_non_finite(v) for v in value]
    return value


@functools.cache
def tool_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(TOOL)
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def stamp(artefact: str) -> dict:
    """The fields every artefact opens with: its schema, and the tool that wrote it."""
    return {
        "schema": {"name": f"{TOOL}/{artefact}", "version": SCHEMA_VERSIONS[artefact]},
        "tool": {"name": TOOL, "version": tool_version()},
    }


def caffe_of_results(results: dict) -> dict | None:
    """The Caffe that ran a case, as its engine reported it (harness/engines/caffe.py): the
    runtime, the version its semantics follow, and the version Caffe's module gives itself;
    None where no engine was real Caffe."""
    for name, result in sorted(results.items()):
        if "caffe_version" in result.info:
            return {
                "engine": name,
                "runtime": result.info.get("runtime"),
                "version": result.info["caffe_version"],
                "module_version": result.info.get("worker", {}).get("caffe_version"),
            }
    return None
