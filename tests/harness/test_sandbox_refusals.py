"""harness/engines/sandbox.py: which cases real Caffe is never given, and why (no Caffe needed:
the refusal reads the case)."""

from __future__ import annotations

import pytest
from hypothesis import given

from harness.case import Case
from harness.engines.sandbox import refusal
from harness.generate.cases import cases

INPUTS = """
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
"""
LOSS = 'layer { name: "loss" type: "EuclideanLoss" bottom: "data" bottom: "data" top: "loss" }\n'
SGD = 'type: "SGD" base_lr: 0.1 lr_policy: "fixed" '


@pytest.mark.parametrize(
    ("net", "why"),
    [
        (
            INPUTS + 'layer { name: "out" type: "HDF5Output" bottom: "data" bottom: "label" '
            'hdf5_output_param { file_name: "out.h5" } }',
            "layer 'out' (HDF5Output) writes the HDF5 file",
        ),
        (
            INPUTS
            + 'layer { name: "py" type: "Python" bottom: "data" top: "py" python_param { module: "m" } }',
            "layer 'py' (Python) imports and runs the Python module",
        ),
        (
            'layer { name: "db" type: "Data" top: "data" data_param { source: "lmdb" batch_size: 1 } }',
            "layer 'db' (Data) reads its data from files",
        ),
        (
            'layer { name: "h5" type: "HDF5Data" top: "data" hdf5_data_param { source: "list.txt" } }',
            "layer 'h5' (HDF5Data) reads its data from files",
        ),
        (
            (
                'layer { name: "images" type: "ImageData" top: "data" top: "label" '
                'image_data_param { source: "list.txt" } }'
            ),
            "layer 'images' (ImageData) reads its data from files",
        ),
        (
            (
                'layer { name: "windows" type: "WindowData" top: "data" top: "label" '
                'window_data_param { source: "windows.txt" } }'
            ),
            "layer 'windows' (WindowData) reads its data from files",
        ),
        (
            INPUTS + 'layer { name: "loss" type: "InfogainLoss" bottom: "data" bottom: "label" '
            'infogain_loss_param { source: "H.binaryproto" } }',
            "layer 'loss' (InfogainLoss) infogain_loss_param.source: 'H.binaryproto' names a file Caffe reads",
        ),
        (
            # A phase rule does not hide a layer: a solver's test nets build the other phase.
            INPUTS
            + 'layer { name: "out" type: "HDF5Output" bottom: "data" bottom: "label" include { phase: TEST } }',
            "layer 'out' (HDF5Output)",
        ),
        (
            # The V1 format, which Caffe upgrades to the same layer.
            (
                'layers { name: "out" type: HDF5_OUTPUT bottom: "data" bottom: "label" '
                'hdf5_output_param { file_name: "out.h5" } }'
            ),
            "layer 'out' (HDF5Output) writes the HDF5 file",
        ),
        (
            'layers { layer { name: "out" type: "hdf5_output" } bottom: "data" }',
            "the net uses the V0 layer format",
        ),
    ],
    ids=[
        "hdf5_output",
        "python",
        "data",
        "hdf5_data",
        "image_data",
        "window_data",
        "infogain_source",
        "test_phase",
        "v1",
        "v0",
    ],
)
def test_a_net_that_touches_files_or_runs_code_is_refused(net, why):
    message = refusal(Case(net=net))
    assert message is not None and message.startswith(why), message
    assert message.endswith("the harness never asks real Caffe to touch files or run code (docs/security.md)")


@pytest.mark.parametrize(
    ("solver", "why"),
    [
        (
            SGD + 'snapshot_prefix: "snaps/net"',
            "solver snapshot_prefix: 'snaps/net' names the files snapshots",
        ),
        (SGD + "snapshot: 2", "solver snapshot: 2 writes a snapshot every 2 iterations"),
        (SGD + 'weights: "pretrained.caffemodel"', "solver weights: ['pretrained.caffemodel'] reads weights"),
        (SGD + 'test_net: "test.prototxt"', "solver test_net: ['test.prototxt'] reads test nets"),
        (SGD + 'train_net: "train.prototxt"', "solver train_net: 'train.prototxt' reads the train net"),
        (
            SGD
            + 'test_net_param { layer { name: "py" type: "Python" top: "x" python_param { module: "m" } } }',
            "solver test_net_param: layer 'py' (Python) imports and runs",
        ),
    ],
    ids=["snapshot_prefix", "snapshot", "weights", "test_net", "train_net", "test_net_param"],
)
def test_a_solver_that_touches_files_is_refused(solver, why):
    message = refusal(Case(net=INPUTS + LOSS, solver=solver, iterations=1))
    assert message is not None and message.startswith(why), message


@pytest.mark.parametrize(
    "net",
    [
        INPUTS + LOSS,
        # Types the reference engine does not register but that touch nothing: Caffe runs them.
        INPUTS + 'layer { name: "spp" type: "SPP" bottom: "data" top: "spp" }',
        # A source that makes its tops itself, from fillers.
        'layer { name: "d" type: "DummyData" top: "d" dummy_data_param { shape { dim: 2 } } }',
        "not a prototxt {",  # Caffe cannot read it either: refused by Caffe, not here
    ],
    ids=["plain", "spp", "dummy_data", "unreadable"],
)
def test_a_net_that_touches_nothing_is_sent(net):
    assert refusal(Case(net=net, solver=SGD + "snapshot: 0", iterations=1)) is None


@given(cases())
def test_no_generated_case_is_refused(case):
    assert refusal(case) is None
