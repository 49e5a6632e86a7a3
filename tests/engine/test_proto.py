"""proto/caffe.proto: the committed caffe_pb2 is current, and Caffe's prototxts parse with it.

Nets and solvers below are in the shapes found in BVLC Caffe's examples/ and in old model zoos
(V1 `layers`, deprecated `input:` declarations, the legacy `solver_type` enum)."""

import importlib.util
from pathlib import Path

import pytest
from google.protobuf import text_format

from reference_engine import caffe_pb2

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_generate():
    spec = importlib.util.spec_from_file_location("generate", REPO_ROOT / "proto" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate


def test_committed_caffe_pb2_matches_proto(tmp_path):
    fresh = load_generate()(tmp_path).read_bytes()
    committed = (REPO_ROOT / "reference_engine" / "caffe_pb2.py").read_bytes()
    assert fresh == committed, (
        "reference_engine/caffe_pb2.py is stale for proto/caffe.proto: run python proto/generate.py"
    )


LENET_TRAIN_VAL = """
name: "LeNet"
layer {
  name: "mnist"
  type: "Data"
  top: "data"
  top: "label"
  include { phase: TRAIN }
  transform_param { scale: 0.00390625 }
  data_param { source: "examples/mnist/mnist_train_lmdb" batch_size: 64 backend: LMDB }
}
layer {
  name: "mnist"
  type: "Data"
  top: "data"
  top: "label"
  include { phase: TEST }
  transform_param { scale: 0.00390625 }
  data_param { source: "examples/mnist/mnist_test_lmdb" batch_size: 100 backend: LMDB }
}
layer {
  name: "conv1"
  type: "Convolution"
  bottom: "data"
  top: "conv1"
  param { lr_mult: 1 }
  param { lr_mult: 2 }
  convolution_param {
    num_output: 20
    kernel_size: 5
    stride: 1
    weight_filler { type: "xavier" }
    bias_filler { type: "constant" }
  }
}
layer {
  name: "pool1"
  type: "Pooling"
  bottom: "conv1"
  top: "pool1"
  pooling_param { kernel_size: 2 stride: 2 }
}
layer { name: "relu1" type: "ReLU" bottom: "pool1" top: "pool1" }
layer {
  name: "ip1"
  type: "InnerProduct"
  bottom: "pool1"
  top: "ip1"
  inner_product_param { num_output: 10 weight_filler { type: "xavier" } }
}
layer {
  name: "accuracy"
  type: "Accuracy"
  bottom: "ip1"
  bottom: "label"
  top: "accuracy"
  include { phase: TEST }
}
layer {
  name: "loss"
  type: "SoftmaxWithLoss"
  bottom: "ip1"
  bottom: "label"
  top: "loss"
  loss_param { normalize: false }
}
"""


def test_lenet_train_val_parses_with_defaults():
    net = text_format.Parse(LENET_TRAIN_VAL, caffe_pb2.NetParameter())
    assert [layer.name for layer in net.layer][:3] == ["mnist", "mnist", "conv1"]
    assert net.layer[0].include[0].phase == caffe_pb2.TRAIN
    assert net.layer[1].data_param.backend == caffe_pb2.DataParameter.LMDB
    assert net.layer[0].transform_param.scale == pytest.approx(1 / 256)

    conv = net.layer[2]
    assert list(conv.convolution_param.kernel_size) == [5]
    assert conv.convolution_param.bias_term is True
    assert conv.convolution_param.group == 1
    assert conv.param[1].lr_mult == 2.0
    assert conv.param[0].decay_mult == 1.0
    assert caffe_pb2.ParamSpec().lr_mult == 1.0

    pool = net.layer[3].pooling_param
    assert pool.pool == caffe_pb2.PoolingParameter.MAX
    assert pool.round_mode == caffe_pb2.PoolingParameter.CEIL
    assert pool.pad == 0

    assert net.layer[4].relu_param.negative_slope == 0.0
    assert not net.layer[4].HasField("relu_param")

    loss = net.layer[-1].loss_param
    assert loss.HasField("normalize") and loss.normalize is False
    assert not loss.HasField("normalization")
    assert loss.normalization == caffe_pb2.LossParameter.VALID

    assert net.force_backward is False
    assert net.state.phase == caffe_pb2.TEST
    assert caffe_pb2.NetStateRule().phase == caffe_pb2.TRAIN


V1_NET = """
name: "CaffeNet"
layers {
  name: "data"
  type: DATA
  top: "data"
  top: "label"
  data_param { source: "train_leveldb" batch_size: 256 }
  transform_param { crop_size: 227 mirror: true }
  include: { phase: TRAIN }
}
layers {
  name: "conv1"
  type: CONVOLUTION
  bottom: "data"
  top: "conv1"
  blobs_lr: 1
  blobs_lr: 2
  weight_decay: 1
  weight_decay: 0
  convolution_param { num_output: 96 kernel_size: 11 stride: 4 }
}
layers { name: "relu1" type: RELU bottom: "conv1" top: "conv1" }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "conv1" bottom: "label" }
"""


def test_v1_layers_parse():
    net = text_format.Parse(V1_NET, caffe_pb2.NetParameter())
    assert len(net.layer) == 0
    assert [layer.type for layer in net.layers] == [
        caffe_pb2.V1LayerParameter.DATA,
        caffe_pb2.V1LayerParameter.CONVOLUTION,
        caffe_pb2.V1LayerParameter.RELU,
        caffe_pb2.V1LayerParameter.SOFTMAX_LOSS,
    ]
    conv = net.layers[1]
    assert list(conv.blobs_lr) == [1.0, 2.0]
    assert list(conv.weight_decay) == [1.0, 0.0]
    assert net.layers[0].transform_param.crop_size == 227
    assert caffe_pb2.V1LayerParameter().type == caffe_pb2.V1LayerParameter.NONE


DEPRECATED_INPUT_NET = """
name: "deploy"
input: "data"
input_dim: 10
input_dim: 3
input_dim: 227
input_dim: 227
input: "im_info"
input_shape { dim: 1 dim: 3 }
force_backward: true
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 4 } }
"""


def test_deprecated_input_fields_parse():
    net = text_format.Parse(DEPRECATED_INPUT_NET, caffe_pb2.NetParameter())
    assert list(net.input) == ["data", "im_info"]
    assert list(net.input_dim) == [10, 3, 227, 227]
    assert list(net.input_shape[0].dim) == [1, 3]
    assert net.force_backward is True


LEGACY_ADAM_SOLVER = """
net: "examples/mnist/lenet_train_test.prototxt"
test_iter: 100
test_interval: 500
base_lr: 0.001
momentum: 0.9
momentum2: 0.999
lr_policy: "fixed"
display: 100
max_iter: 10000
snapshot: 5000
snapshot_prefix: "examples/mnist/lenet"
solver_mode: CPU
solver_type: ADAM
"""

STRING_TYPE_SOLVER = """
train_net: "train.prototxt"
test_net: "test.prototxt"
test_iter: 10
test_interval: 100
type: "Adam"
base_lr: 0.01
lr_policy: "multistep"
gamma: 0.1
stepvalue: 1000
stepvalue: 2000
weight_decay: 0.0005
iter_size: 2
random_seed: 1701
test_state { stage: "val" }
"""


def test_legacy_solver_type_enum_parses():
    solver = text_format.Parse(LEGACY_ADAM_SOLVER, caffe_pb2.SolverParameter())
    assert solver.solver_type == caffe_pb2.SolverParameter.ADAM
    assert solver.solver_mode == caffe_pb2.SolverParameter.CPU
    assert not solver.HasField("type")
    assert solver.type == "SGD"


def test_solver_with_type_string_parses_with_defaults():
    solver = text_format.Parse(STRING_TYPE_SOLVER, caffe_pb2.SolverParameter())
    assert solver.type == "Adam"
    assert solver.lr_policy == "multistep"
    assert list(solver.stepvalue) == [1000, 2000]
    assert solver.iter_size == 2
    assert solver.random_seed == 1701
    assert list(solver.test_state[0].stage) == ["val"]
    assert solver.test_state[0].phase == caffe_pb2.TEST

    assert solver.momentum2 == pytest.approx(0.999)
    assert solver.delta == pytest.approx(1e-8)
    assert solver.rms_decay == pytest.approx(0.99)
    assert solver.regularization_type == "L2"
    assert solver.clip_gradients == -1.0
    assert solver.average_loss == 1
    assert solver.solver_type == caffe_pb2.SolverParameter.SGD
    assert solver.solver_mode == caffe_pb2.SolverParameter.GPU
    assert solver.snapshot_format == caffe_pb2.SolverParameter.BINARYPROTO
    assert solver.test_initialization is True
    assert caffe_pb2.SolverParameter().iter_size == 1


@pytest.mark.parametrize(
    "text, position, words",
    [
        ('name: "n"\nlayer { name: "a" typo: "ReLU" }', "2:19", "typo"),
        ("layer {\n  pooling_param {\n    pool: MEDIAN\n  }\n}", "3:11", "MEDIAN"),
        ("force_backward: true\n  solver_type: ADAM", "2:3", "solver_type"),
    ],
)
def test_bad_prototxt_is_rejected_with_its_position(text, position, words):
    with pytest.raises(text_format.ParseError) as excinfo:
        text_format.Parse(text, caffe_pb2.NetParameter())
    message = str(excinfo.value)
    assert position in message
    assert words in message
