"""OpenCV's Caffe importer (harness/engines/opencv.py) against real Caffe: it agrees on a net of
each layer type it declares, each in a configuration OpenCV computes as Caffe does
(docs/opencv.md lists those it does not), and a planted wrong OpenCV result is caught."""

import dataclasses

import numpy as np
import pytest

from harness.campaign.fuzz import run_pair
from harness.engines.opencv import OPENCV_LAYER_TYPES, OpenCVEngine
from harness.explain.user_nets import make_runnable, synthetic_case

INPUTS = """
layer { name: "input0" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }
layer { name: "input1" type: "Input" top: "other" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }
layer { name: "input2" type: "Input" top: "small" input_param { shape { dim: 2 dim: 3 dim: 2 dim: 2 } } }
"""
# Each type's fields, on the bottom "data" (and a second bottom where the type takes two).
FIELDS = {
    "ReLU": "relu_param { negative_slope: 0.1 }",
    "Sigmoid": "",
    "TanH": "",
    "AbsVal": "",
    "BNLL": "",
    "ELU": "elu_param { alpha: 0.5 }",
    "Swish": "",
    "Power": "power_param { power: 2 scale: 0.5 shift: 1 }",
    "Exp": "",
    "Dropout": "",
    "Scale": "scale_param { bias_term: true }",
    "PReLU": "",
    "BatchNorm": "",
    "LRN": "lrn_param { local_size: 3 alpha: 0.5 }",  # alpha left unset, OpenCV differs
    "MVN": "",
    "Softmax": "",
    "InnerProduct": "inner_product_param { num_output: 3 }",
    "Convolution": "convolution_param { num_output: 2 kernel_size: 3 pad: 1 stride: 2 }",
    "Deconvolution": "convolution_param { num_output: 2 kernel_size: 2 stride: 2 }",
    "Pooling": "pooling_param { pool: MAX kernel_size: 2 stride: 2 }",
    "Flatten": "",
    "Reshape": "reshape_param { shape { dim: 0 dim: -1 } }",
    "Crop": "crop_param { axis: 2 offset: 1 }",
    "Concat": "",
    "Eltwise": "eltwise_param { operation: PROD }",
    "Slice": "slice_param { slice_point: 1 }",
    "Split": "",
    "Silence": "",
}
SECOND_BOTTOM = {"Crop": "small", "Concat": "other", "Eltwise": "other", "Silence": "other"}
TWO_TOPS = ("Slice", "Split")


def net_of(type_name: str) -> str:
    """A net with one layer of the type (Log reads an Exp, so that its input is positive), its
    tops read by ReLUs, and every Input read (OpenCV refuses a net with an unread one)."""
    if type_name == "Log":
        return INPUTS + (
            'layer { name: "exp" type: "Exp" bottom: "data" top: "exp" }\n'
            'layer { name: "log" type: "Log" bottom: "exp" top: "out" }\n'
            'layer { name: "read" type: "Silence" bottom: "other" bottom: "small" }\n'
        )
    bottoms = ["data"] + ([SECOND_BOTTOM[type_name]] if type_name in SECOND_BOTTOM else [])
    tops = ["out0", "out1"] if type_name in TWO_TOPS else [] if type_name == "Silence" else ["out"]
    wiring = " ".join([f'bottom: "{b}"' for b in bottoms] + [f'top: "{t}"' for t in tops])
    layers = [f'layer {{ name: "{type_name.lower()}" type: "{type_name}" {wiring} {FIELDS[type_name]} }}']
    layers += [f'layer {{ name: "relu_{t}" type: "ReLU" bottom: "{t}" top: "relu_{t}" }}' for t in tops]
    unread = [b for b in ("other", "small") if b not in bottoms]
    layers.append(f'layer {{ name: "read" type: "Silence" {" ".join(f"bottom: {b!r}" for b in unread)} }}')
    return INPUTS + "\n".join(layers).replace("'", '"') + "\n"


def case_of(type_name: str):
    case, _ = synthetic_case(make_runnable(net_of(type_name), "TEST"), "TEST")
    return case


@pytest.fixture(scope="module")
def opencv():
    engine = OpenCVEngine()
    yield engine
    engine.close()


def test_every_declared_type_has_a_net_here():
    assert set(FIELDS) | {"Log"} == OPENCV_LAYER_TYPES


@pytest.mark.parametrize("type_name", sorted(OPENCV_LAYER_TYPES))
def test_opencv_agrees_with_caffe(type_name, opencv, caffe_engine):
    case = case_of(type_name)
    comparison, results = run_pair(case, opencv, caffe_engine)
    assert comparison.verdict == "agree", comparison.summary()
    if type_name != "Silence":  # which has no top
        assert set(results["opencv"].blob_data) - set(case.inputs), "no forward data of OpenCV's"


class ScaledReLU(OpenCVEngine):
    """OpenCV with its ReLU's output 1% too large: a planted wrong result."""

    def run(self, case):
        result = super().run(case)
        blob_data = {**result.blob_data, "out": result.blob_data["out"] * 1.01}
        return dataclasses.replace(result, blob_data=blob_data)


def test_a_wrong_opencv_result_is_caught(caffe_engine):
    engine = ScaledReLU()
    try:
        comparison, results = run_pair(case_of("ReLU"), engine, caffe_engine)
    finally:
        engine.close()
    first = comparison.first
    assert (comparison.verdict, first.kind, first.layer) == ("disagree", "forward", "relu")
    assert np.abs(results["opencv"].blob_data["out"]).max() > 0
