"""What `explain --against caffe` prints for a person: a gradient that is not a number, or a
step that is not shown, says why on its own line, and every line fits the terminal."""

import json
import math
import re

from harness import cli
from tests.harness.test_schemas import validator

# Log of a gaussian InnerProduct output: the synthetic inputs make NaN in Caffe's forward.
LOG_OF_NEGATIVES = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 } }
layer { name: "log" type: "Log" bottom: "ip" top: "log" }
layer { name: "loss" type: "EuclideanLoss" bottom: "log" bottom: "data" top: "loss" }
"""


def test_a_nan_gradient_and_a_step_not_run_say_why_on_their_own_line(
    caffe_runtime, capsys, monkeypatch, tmp_path
):
    net = tmp_path / "log.prototxt"
    net.write_text(LOG_OF_NEGATIVES)
    monkeypatch.setenv("COLUMNS", "80")
    cli.main(["explain", str(net), "--against", "caffe", "--phase", "TEST"])
    out = capsys.readouterr().out
    caffe = out[out.index("real Caffe") :]
    # One param's line, wrapped: up to the next param, or the next layer's row.
    params = [
        " ".join(p.split()) for p in re.findall(r"param \d+: .*?(?=\n +param |\n\S|\Z)", caffe, re.DOTALL)
    ]
    nan_gradients = [p for p in params if "gradient nan" in p]
    not_run = [p for p in params if "step: not run" in p]
    assert len(nan_gradients) == len(not_run) == 2, params
    assert all("blob 'log' is not finite" in p for p in nan_gradients), nan_gradients
    assert all("phase TEST" in p for p in not_run), not_run
    assert max(len(line) for line in out.splitlines()) <= 80


def _refuse(constant):
    raise ValueError(f"not strict JSON: {constant}")


def test_nan_gradients_are_strict_json_that_follows_the_schema(caffe_runtime, capsys, tmp_path):
    """Python writes a NaN as bare NaN, which strict parsers (jq, browsers) refuse."""
    net = tmp_path / "log.prototxt"
    net.write_text(LOG_OF_NEGATIVES)
    cli.main(["explain", str(net), "--against", "caffe", "--phase", "TEST", "--json"])
    data = json.loads(capsys.readouterr().out, parse_constant=_refuse)
    norms = [p["grad_norm"] for layer in data["caffe"]["layers"] for p in layer["params"]]
    assert "NaN" in norms and all(isinstance(n, str) or math.isfinite(n) for n in norms if n is not None)
    validator("explain").validate(data)
