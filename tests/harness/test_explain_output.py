"""What `explain` prints for a person: the answer first, lines that fit the terminal, and
reasons that are true of Caffe's final flags."""

from pathlib import Path

from harness.explain.explain import explain, render_table

EXAMPLE = Path(__file__).resolve().parents[2] / "harness" / "explain" / "examples" / "propagate_down.prototxt"

FROZEN_MIDDLE = """
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" inner_product_param { num_output: 4 } }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" param { lr_mult: 0 } param { lr_mult: 0 }
  inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""


def test_the_hazards_come_first_and_every_line_fits_80_columns():
    lines = render_table(explain(EXAMPLE.read_text()), width=80).splitlines()
    assert lines[0].startswith("hazards")
    assert lines.index(next(line for line in lines if line.startswith("layer "))) > 1
    assert max(len(line) for line in lines) <= 80


def test_a_bottom_without_gradient_never_reads_as_carrying_one():
    for layer in explain(EXAMPLE.read_text())["layers"]:
        for bottom in layer["bottoms"]:
            if not bottom["need_backward"]:
                assert not any(
                    " carries gradient" in r.split("without that")[0] for r in bottom["reasons"]
                ), (
                    layer["name"],
                    bottom,
                )


def test_a_frozen_layer_that_still_passes_gradient_says_it_is_harmless():
    layers = {layer["name"]: layer for layer in explain(FROZEN_MIDDLE)["layers"]}
    assert layers["ip2"]["need_backward"]
    assert "harmlessly" in layers["ip2"]["note"]
    assert layers["ip1"]["note"] is None  # it learns: nothing to excuse
