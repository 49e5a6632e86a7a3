"""``explain --against caffe`` on model-style nets, confirmed by real Caffe (never mocked).

Each net is explained by the reference analysis, made runnable (data readers become
Inputs), run in Caffe on synthetic inputs with one solver step, and Caffe's flags,
gradients and updated weights are checked against what explain says.
"""

import json

import numpy as np

from harness import cli
from harness.explain.explain import caffe_section, explain, solver_for_explain
from harness.explain.user_nets import make_runnable, synthetic_case

LENET = """
name: "LeNet"
layer { name: "mnist" type: "Data" top: "data" top: "label" include { phase: TRAIN }
  transform_param { scale: 0.00390625 crop_size: 28 mean_value: 0 }
  data_param { source: "examples/mnist/mnist_train_lmdb" batch_size: 4 backend: LMDB } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 4 kernel_size: 5 stride: 1 weight_filler { type: "xavier" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2" param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 6 kernel_size: 5 stride: 1 } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1" param { lr_mult: 1 } param { lr_mult: 2 }
  inner_product_param { num_output: 20 } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" param { lr_mult: 1 } param { lr_mult: 2 }
  inner_product_param { num_output: 10 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""

ALEXNET_TRAIN_VAL = """
name: "AlexNet-style"
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN }
  transform_param { mirror: true crop_size: 19 mean_value: 104 mean_value: 117 mean_value: 123 }
  data_param { source: "ilsvrc12_train_lmdb" batch_size: 3 backend: LMDB } }
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TEST }
  transform_param { mirror: false crop_size: 19 mean_value: 104 mean_value: 117 mean_value: 123 }
  data_param { source: "ilsvrc12_val_lmdb" batch_size: 2 backend: LMDB } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
  convolution_param { num_output: 8 kernel_size: 5 stride: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "norm1" type: "LRN" bottom: "conv1" top: "norm1" lrn_param { local_size: 3 alpha: 0.0001 beta: 0.75 } }
layer { name: "pool1" type: "Pooling" bottom: "norm1" top: "pool1" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
  convolution_param { num_output: 8 pad: 1 kernel_size: 3 group: 2 } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "fc6" type: "InnerProduct" bottom: "conv2" top: "fc6"
  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 } inner_product_param { num_output: 16 } }
layer { name: "relu6" type: "ReLU" bottom: "fc6" top: "fc6" }
layer { name: "drop6" type: "Dropout" bottom: "fc6" top: "fc6" dropout_param { dropout_ratio: 0.5 } }
layer { name: "fc8" type: "InnerProduct" bottom: "fc6" top: "fc8"
  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 } inner_product_param { num_output: 10 } }
layer { name: "accuracy" type: "Accuracy" bottom: "fc8" bottom: "label" top: "accuracy" include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc8" bottom: "label" top: "loss" }
"""

INCEPTION = """
name: "inception-block"
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } shape { dim: 2 } } }
layer { name: "stem" type: "Convolution" bottom: "data" top: "stem" convolution_param { num_output: 6 kernel_size: 3 pad: 1 } }
layer { name: "stem_relu" type: "ReLU" bottom: "stem" top: "stem" }
layer { name: "inc/1x1" type: "Convolution" bottom: "stem" top: "inc/1x1" convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "inc/3x3_reduce" type: "Convolution" bottom: "stem" top: "inc/3x3_reduce"
  convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "inc/3x3" type: "Convolution" bottom: "inc/3x3_reduce" top: "inc/3x3" propagate_down: false
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "inc/pool" type: "Pooling" bottom: "stem" top: "inc/pool" pooling_param { pool: MAX kernel_size: 3 stride: 1 pad: 1 } }
layer { name: "inc/pool_proj" type: "Convolution" bottom: "inc/pool" top: "inc/pool_proj" convolution_param { num_output: 2 kernel_size: 1 } }
layer { name: "inc/output" type: "Concat" bottom: "inc/1x1" bottom: "inc/3x3" bottom: "inc/pool_proj" top: "inc/output" }
layer { name: "classifier" type: "InnerProduct" bottom: "inc/output" top: "classifier" inner_product_param { num_output: 5 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "classifier" bottom: "label" top: "loss" }
"""

V1_NET = """
name: "v1"
input: "data" input_dim: 2 input_dim: 3 input_dim: 6 input_dim: 6
input: "label" input_dim: 2 input_dim: 1 input_dim: 1 input_dim: 1
layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1" blobs_lr: 0 blobs_lr: 0 weight_decay: 1 weight_decay: 0
  convolution_param { num_output: 4 kernel_size: 3 } }
layers { name: "relu1" type: RELU bottom: "conv1" top: "conv1" }
layers { name: "ip1" type: INNER_PRODUCT bottom: "conv1" top: "ip1" blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  param: "shared_w" inner_product_param { num_output: 5 } }
layers { name: "ip2" type: INNER_PRODUCT bottom: "conv1" top: "ip2" param: "shared_w" inner_product_param { num_output: 5 } }
layers { name: "sum" type: ELTWISE bottom: "ip1" bottom: "ip2" top: "sum" }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "sum" bottom: "label" top: "loss" }
"""

IN_PLACE_POOL = """
layer { name: "data" type: "Input" top: "data" top: "label" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } shape { dim: 2 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 2 kernel_size: 1 } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "conv" pooling_param { pool: MAX kernel_size: 1 stride: 1 } }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip" inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def confirm(engine, text, phase="TRAIN", solver=None):
    data = explain(text, phase)
    runnable = make_runnable(text, phase)
    solver_text, solver_param = solver_for_explain(solver)
    case, _ = synthetic_case(runnable, phase, solver=solver_text if phase == "TRAIN" else None)
    result = engine.run(case)
    assert result.outcome.value == "ok", f"{result.outcome}: {result.message}"
    section = caffe_section(data, case, result, solver_param)
    assert section["agree"], [
        (l["name"], l["differences"]) for l in section["layers"] if not l["agree"]
    ] + section["notes"]
    # The exact flags come from the flags probe; without it only the log would be compared.
    assert all(l["caffe"]["need_backward"] is not None for l in section["layers"]), section["notes"]
    return data, {l["name"]: l for l in section["layers"]}, case, result


def test_lenet_every_param_gets_gradient_and_moves(caffe_engine):
    data, caffe, _, _ = confirm(caffe_engine, LENET)
    for name in ("conv1", "conv2", "ip1", "ip2"):
        for p in caffe[name]["params"]:
            assert p["grad_norm"] > 0 and p["changed"] and not p["decay_only"], (name, p)
    assert caffe["conv1"]["bottoms"][0]["grad_norm"] == 0  # data: nothing above it learns
    assert data["hazards"] == []


def test_alexnet_train_val_both_phases(caffe_engine):
    data, caffe, case, _ = confirm(caffe_engine, ALEXNET_TRAIN_VAL, "TRAIN")
    assert case.inputs["data"].shape == (3, 3, 19, 19)
    assert "accuracy" not in caffe and caffe["conv1"]["params"][0]["grad_norm"] > 0
    data, caffe, case, _ = confirm(caffe_engine, ALEXNET_TRAIN_VAL, "TEST")
    assert case.inputs["data"].shape == (2, 3, 19, 19)
    assert caffe["accuracy"]["caffe"]["need_backward"] is False
    assert any(l["name"] == "fc8_fc8_0_split" for l in data["layers"])


def test_inception_cut_branch_decays_only(caffe_engine):
    data, caffe, case, result = confirm(caffe_engine, INCEPTION)
    reduce = caffe["inc/3x3_reduce"]
    assert reduce["caffe"]["need_backward"] is False
    for p in reduce["params"]:
        assert p["grad_norm"] == 0, p
        assert p["decay_only"], p  # w1 == w0 - lr*weight_decay*w0, in float32
    w0 = case.params["inc/3x3_reduce"][0]
    w1 = result.param_history[0]["inc/3x3_reduce"][0]
    np.testing.assert_array_equal(w1, w0 - np.float32(0.01) * (np.float32(0.0005) * w0))
    assert caffe["inc/3x3"]["params"][0]["grad_norm"] > 0  # the cut layer's own weights learn
    assert caffe["inc/1x1"]["params"][0]["grad_norm"] > 0
    kinds = {(h["kind"], h["layer"]) for h in data["hazards"]}
    assert ("pruned_but_decays", "inc/3x3_reduce") in kinds
    assert ("propagate_down_does_not_freeze", "inc/3x3") in kinds


def test_v1_net_upgraded_like_caffe(caffe_engine):
    data, caffe, _, result = confirm(caffe_engine, V1_NET)
    records = {r.name: r for r in result.layers}
    ours = {l["name"]: l for l in data["layers"]}
    for name in ("conv1", "ip1", "ip2"):
        assert list(records[name].param_lr) == [p["lr_mult"] for p in ours[name]["params"]], name
        assert list(records[name].param_decay) == [p["decay_mult"] for p in ours[name]["params"]], name
    assert caffe["conv1"]["caffe"]["need_backward"] is False
    assert not any(p["changed"] for p in caffe["conv1"]["params"])  # lr_mult 0: decay has no effect
    assert any("V1LayerParameter" in n for n in data["notes"])


def test_in_place_pooling_zeroes_every_gradient_below(caffe_engine):
    data, caffe, _, _ = confirm(caffe_engine, IN_PLACE_POOL)
    assert caffe["ip"]["params"][0]["grad_norm"] > 0
    assert caffe["conv"]["params"][0]["grad_norm"] == 0 and caffe["conv"]["params"][1]["grad_norm"] == 0
    assert ("in_place_broken", "pool") in {(h["kind"], h["layer"]) for h in data["hazards"]}


def test_cli_explain_against_caffe_example(caffe_runtime, capsys, tmp_path):
    example = cli.Path(cli.__file__).parent / "explain" / "examples" / "propagate_down.prototxt"
    status = cli.main(
        ["explain", str(example), "--against", "caffe", "--json", "--svg", str(tmp_path / "n.svg")]
    )
    out = json.loads(capsys.readouterr().out)
    assert status == cli.EXIT_OK
    assert out["caffe"]["agree"] is True
    conv1 = next(l for l in out["caffe"]["layers"] if l["name"] == "conv1")
    assert all(p["decay_only"] for p in conv1["params"])
    assert (tmp_path / "n.svg").read_text().startswith("<?xml")


def test_cli_net_caffe_refuses_exits_2_without_traceback(caffe_runtime, capsys, tmp_path):
    net = tmp_path / "bad.prototxt"
    net.write_text(
        'layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }\n'
        'layer { name: "conv" type: "Convolution" bottom: "x" top: "y" convolution_param { num_output: 2 } }\n'
    )
    status = cli.main(["explain", str(net), "--against", "caffe"])
    err = capsys.readouterr().err
    assert status == cli.EXIT_ERROR
    assert "Traceback" not in err
    assert "Caffe refuses this net" in err and "kernel_size must be specified once" in err
