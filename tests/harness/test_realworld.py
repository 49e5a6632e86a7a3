"""harness/realworld.py: data readers become Input layers of the shape they would produce."""

import pytest

from harness.errors import HarnessError
from harness.explain.user_nets import make_runnable, parse_input_shapes, synthetic_case

TRAIN_VAL = """
name: "train_val"
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN }
  transform_param { crop_size: 11 mean_value: 104 mean_value: 117 mean_value: 123 mirror: true }
  data_param { source: "train_lmdb" batch_size: 6 backend: LMDB } }
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TEST }
  transform_param { crop_size: 11 }
  data_param { source: "val_lmdb" batch_size: 2 backend: LMDB } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 7 } }
layer { name: "accuracy" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy" include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def input_layer(runnable, name):
    return next(l for l in runnable.param.layer if l.name == name)


def test_phase_duplicates_are_filtered_before_replacing():
    train = make_runnable(TRAIN_VAL, "TRAIN")
    test = make_runnable(TRAIN_VAL, "TEST")
    assert train.input_shapes == {"data": (6, 3, 11, 11), "label": (6,)}
    assert test.input_shapes == {"data": (2, 3, 11, 11), "label": (2,)}
    assert [l.name for l in train.param.layer] == ["data", "ip", "loss"]
    assert [l.name for l in test.param.layer] == ["data", "ip", "accuracy", "loss"]
    assert input_layer(train, "data").type == "Input"
    assert "3 mean_value entries" in train.notes[0] and "crop_size 11" in train.notes[0]
    assert "channels assumed 3" in test.notes[0]


def test_input_shape_overrides_a_replaced_top():
    runnable = make_runnable(TRAIN_VAL, "TRAIN", input_shapes=parse_input_shapes(["data=1,1,5,5", "label=1"]))
    assert runnable.input_shapes == {"data": (1, 1, 5, 5), "label": (1,)}
    assert "--input-shape" in runnable.notes[0]


def test_data_without_crop_size_asks_for_input_shape():
    text = TRAIN_VAL.replace("crop_size: 11 mean_value", "mean_value")
    with pytest.raises(HarnessError, match=r"--input-shape data=d0,d1"):
        make_runnable(text, "TRAIN")


def test_hdf5_data_asks_for_every_top():
    text = """layer { name: "h5" type: "HDF5Data" top: "x" top: "y" hdf5_data_param { source: "list.txt" batch_size: 4 } }
    layer { name: "loss" type: "EuclideanLoss" bottom: "x" bottom: "y" }"""
    with pytest.raises(HarnessError, match="the file 'list.txt' decides"):
        make_runnable(text)
    runnable = make_runnable(text, input_shapes={"x": (4, 3), "y": (4, 3)})
    assert runnable.input_shapes == {"x": (4, 3), "y": (4, 3)}


def test_image_data_memory_data_and_window_data_shapes():
    text = """
    layer { name: "img" type: "ImageData" top: "a" top: "la" image_data_param { source: "l.txt" batch_size: 3
      new_height: 9 new_width: 7 is_color: false } }
    layer { name: "mem" type: "MemoryData" top: "b" top: "lb" memory_data_param { batch_size: 2 channels: 4 height: 5 width: 6 } }
    layer { name: "win" type: "WindowData" top: "c" top: "lc" window_data_param { source: "w.txt" batch_size: 5 }
      transform_param { crop_size: 8 } }
    layer { name: "s" type: "Silence" bottom: "a" bottom: "la" bottom: "b" bottom: "lb" bottom: "c" bottom: "lc" }
    """
    shapes = make_runnable(text).input_shapes
    assert shapes == {
        "a": (3, 1, 9, 7),
        "la": (3,),
        "b": (2, 4, 5, 6),
        "lb": (2,),
        "c": (5, 3, 8, 8),
        "lc": (5,),
    }


def test_dummy_data_random_filler_is_replaced_constant_is_kept():
    text = """
    layer { name: "rand" type: "DummyData" top: "r" dummy_data_param { shape { dim: 2 dim: 3 } data_filler { type: "gaussian" } } }
    layer { name: "const" type: "DummyData" top: "c" dummy_data_param { shape { dim: 2 dim: 3 } data_filler { type: "constant" value: 1 } } }
    layer { name: "loss" type: "EuclideanLoss" bottom: "r" bottom: "c" }
    """
    runnable = make_runnable(text)
    assert runnable.replaced == ["rand"]
    assert input_layer(runnable, "const").type == "DummyData"


def test_unknown_override_and_bad_spec_are_refused():
    with pytest.raises(HarnessError, match="--input-shape nope"):
        make_runnable(TRAIN_VAL, input_shapes={"nope": (1,)})
    with pytest.raises(HarnessError, match="expected BLOB=d0,d1"):
        parse_input_shapes(["data=1,x"])


def test_unchanged_file_is_given_to_caffe_as_written():
    """A V1 file without data readers goes to Caffe unchanged, so Caffe's own upgrade is what runs."""
    text = 'input: "x" input_dim: 1 input_dim: 2 input_dim: 1 input_dim: 1\nlayers { name: "r" type: RELU bottom: "x" top: "x" }'
    assert make_runnable(text).text == text


def test_synthetic_case_draws_valid_labels_and_param_shapes():
    case, notes = synthetic_case(make_runnable(TRAIN_VAL, "TEST"), "TEST")
    label = case.inputs["label"]
    assert label.shape == (2,) and set(label.tolist()) <= set(range(7))
    assert [p.shape for p in case.params["ip"]] == [(7, 363), (7,)]
    assert any("label values drawn in [0, 7)" in n for n in notes)
