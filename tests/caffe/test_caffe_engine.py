"""The Caffe engine against real Caffe: what the worker returns, and Caffe's aborts as outcomes."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given

from harness.case import Case, Outcome
from harness.engines.caffe import CaffeEngine, worker_layer_facts
from harness.engines.runtimes.base import INSTALL_DIR
from harness.errors import HarnessError
from harness.generate.cases import cases
from tests.flag_nets import FLAG_NETS
from tests.processes import processes_in_session

TINY = """
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 3 dim: 5 } shape { dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 4 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""

# net.cpp, Net::Init: CHECK propagate_down_size() == bottom_size() unless it is 0.
PROPAGATE_DOWN_COUNT = """
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 3 dim: 5 } shape { dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  propagate_down: true propagate_down: false inner_product_param { num_output: 4 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""

# softmax_loss_layer.cpp, SoftmaxWithLossLayer::Backward_cpu: LOG(FATAL) if propagate_down[1].
LABEL_PROPAGATE_DOWN = """
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 3 dim: 5 } shape { dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 4 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss"
  propagate_down: true propagate_down: true }
"""

# Ten 7x7 convolutions, 64 -> 64 channels, on 8x64x128x128: about 0.5 TFLOP, under 1 GB.
SLOW = """
layer { name: "data" type: "Input" top: "c0" input_param { shape { dim: 8 dim: 64 dim: 128 dim: 128 } } }
""" + "".join(
    f'layer {{ name: "c{i}" type: "Convolution" bottom: "c{i - 1}" top: "c{i}"\n'
    f"  convolution_param {{ num_output: 64 kernel_size: 7 pad: 3 }} }}\n"
    for i in range(1, 11)
)

# An 8 GB weight blob (count 2e9 stays under Blob's INT_MAX check), far over the memory cap.
MEMORY_BOMB = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1000 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2000000 } }
"""

# With force_backward, Net::Init logs the flags of the reverse sweep, then forces them all on
# (net.cpp, Net::Init): the log says "does not need" for a net that runs backward everywhere.
FORCED = """
force_backward: true
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 3 dim: 5 } shape { dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  param { lr_mult: 0 } param { lr_mult: 0 } inner_product_param { num_output: 4 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


# HingeLoss's Backward finishes the margins its Forward left in its bottom's diff.
HINGE_LOSS = TINY.replace('type: "SoftmaxWithLoss"', 'type: "HingeLoss"')

# Big enough for OpenBLAS's threaded sgemm (im2col: 32 x 144 by 144 x 484 per image).
CONV = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 16 dim: 24 dim: 24 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 32 kernel_size: 3 } }
"""


def tiny_case(seed=0, net=TINY) -> Case:
    rng = np.random.default_rng(seed)
    return Case(
        net=net,
        inputs={
            "data": rng.standard_normal((3, 5)).astype(np.float32),
            "label": np.array([0, 3, 1], np.float32),
        },
        params={
            "ip": (
                rng.standard_normal((4, 5)).astype(np.float32),
                rng.standard_normal(4).astype(np.float32),
            )
        },
    )


def layers_by_name(result):
    return {layer.name: layer for layer in result.layers}


def test_tiny_net_returns_layers_flags_data_and_diffs(caffe_engine, assert_close):
    case = tiny_case()
    result = caffe_engine.run(case)
    assert result.outcome == Outcome.OK, result.message
    assert [(layer.name, layer.type) for layer in result.layers] == [
        ("data", "Input"),
        ("ip", "InnerProduct"),
        ("loss", "SoftmaxWithLoss"),
    ]
    assert result.outputs == ("loss",)
    layers = layers_by_name(result)
    assert layers["ip"].bottoms == ("data",) and layers["loss"].bottoms == ("ip", "label")
    # Flags as Caffe's TestBottomNeedBackward (src/caffe/test/test_net.cpp) expects them.
    assert layers["ip"].need_backward is True and layers["ip"].logged_need_backward is True
    assert layers["ip"].bottom_need_backward == (False,)
    assert layers["ip"].param_propagate_down == (True, True)
    assert layers["ip"].param_lr == (1.0, 1.0) and layers["ip"].param_decay == (1.0, 1.0)
    assert layers["loss"].bottom_need_backward == (True, False)
    assert layers["data"].need_backward is False and layers["data"].logged_need_backward is False
    assert layers["loss"].bottom_written == (True, False)
    assert layers["ip"].bottom_written == (False,)

    x, label = case.inputs["data"].astype(np.float64), case.inputs["label"].astype(int)
    w, b = (p.astype(np.float64) for p in case.params["ip"])
    ip = x @ w.T + b
    assert_close(result.blob_data["ip"], ip, "ip data")
    p = np.exp(ip - ip.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert_close(result.blob_data["loss"], -np.log(p[np.arange(3), label]).mean(), "loss")
    assert_close(result.losses[0], result.blob_data["loss"], "forward loss")
    dip = p.copy()
    dip[np.arange(3), label] -= 1
    dip /= 3
    assert_close(result.blob_diff["ip"], dip, "ip diff")
    assert_close(result.param_diff["ip"][0], dip.T @ x, "ip weight diff")
    assert_close(result.param_diff["ip"][1], dip.sum(0), "ip bias diff")
    assert result.info["caffe_s"] > 0 and result.info["round_trip_s"] >= result.info["caffe_s"]


def test_refused_at_init_then_next_case_served(caffe_engine, assert_close):
    before = caffe_engine.run(tiny_case())
    refused = caffe_engine.run(tiny_case(net=PROPAGATE_DOWN_COUNT))
    assert refused.outcome == Outcome.REFUSED
    assert refused.stage == "init"
    assert refused.message == (
        "Check failed: layer_param.propagate_down_size() == layer_param.bottom_size() (2 vs. 1) "
        "propagate_down param must be specified either 0 or bottom_size times "
    )
    case = tiny_case(seed=1)
    after = caffe_engine.run(case)
    assert after.outcome == Outcome.OK, after.message
    w, b = case.params["ip"]
    assert_close(after.blob_data["ip"], case.inputs["data"] @ w.T + b, "ip data after a refusal")
    # The worker's fork server replaced its serving child; the worker itself lived on.
    assert after.info["worker"]["fork_server"] is True
    assert after.info["worker_starts"] == before.info["worker_starts"]
    assert after.info["child_restarts"] == before.info["child_restarts"] + 1
    assert refused.info["signal"] == "SIGABRT"


def conv_case(seed) -> Case:
    rng = np.random.default_rng(seed)
    return Case(
        net=CONV,
        inputs={"data": rng.standard_normal((2, 16, 24, 24)).astype(np.float32)},
        params={
            "conv": (
                rng.standard_normal((32, 16, 3, 3)).astype(np.float32),
                rng.standard_normal(32).astype(np.float32),
            )
        },
    )


def test_forked_children_compute_a_convolution(caffe_engine, assert_close):
    """OpenBLAS starts its threads in the fork server; every forked child must still compute
    right (OpenBLAS shuts its pool down before a fork, pthread_atfork)."""
    for seed in range(2):
        case = conv_case(seed)
        result = caffe_engine.run(case)
        assert result.outcome == Outcome.OK, result.message
        x = np.lib.stride_tricks.sliding_window_view(case.inputs["data"].astype(np.float64), (3, 3), (2, 3))
        w, b = (p.astype(np.float64) for p in case.params["conv"])
        expected = np.einsum("ncyxij,ocij->noyx", x, w) + b[:, None, None]
        assert_close(result.blob_data["conv"], expected, f"conv data, case {seed}", kind="forward")
        assert caffe_engine.run(tiny_case(net=PROPAGATE_DOWN_COUNT)).outcome == Outcome.REFUSED


def test_label_propagate_down_aborts_at_backward(caffe_engine):
    result = caffe_engine.run(tiny_case(net=LABEL_PROPAGATE_DOWN))
    assert result.outcome == Outcome.ABORTED
    assert result.stage == "backward"
    assert result.message == "SoftmaxWithLoss Layer cannot backpropagate to label inputs."
    # The net Caffe built before the abort, with its flags (the worker's built.json).
    layers = layers_by_name(result)
    assert list(layers) == ["data", "ip", "loss"]
    assert layers["loss"].bottom_need_backward == (True, True)
    assert caffe_engine.run(tiny_case()).outcome == Outcome.OK


def test_a_request_without_the_layer_facts_is_an_error(caffe_runtime):
    """Without them the worker would fill a bottom diff that HingeLoss's Backward reads, and
    change its gradient: it answers "error" instead of guessing."""

    class WithoutLayerFacts(CaffeEngine):
        def _request_fields(self):
            return {}

    with (
        WithoutLayerFacts(caffe_runtime) as engine,
        pytest.raises(HarnessError, match="backward_reads_bottom_diff: missing from the request"),
    ):
        engine.run(tiny_case(net=HINGE_LOSS))


def test_hang_is_timeout_and_memory_bomb_is_out_of_memory(caffe_runtime):
    # No harness budget: it would refuse the bomb before the worker's own cap is reached.
    with CaffeEngine(caffe_runtime, timeout_s=1.0, memory_mb=4096, memory_budget=None) as engine:
        engine.run(tiny_case())
        worker = engine.process.pid
        # bwrap, its reaper (the sandbox's pid 1), the fork server and its serving child.
        assert len(processes_in_session(worker)) == 4
        slow = engine.run(Case(net=SLOW))
        assert slow.outcome == Outcome.TIMEOUT, slow.message
        assert slow.stage == "forward"
        assert processes_in_session(worker, settle_s=5.0) == []  # the whole tree was killed
        assert engine.run(tiny_case()).outcome == Outcome.OK
        bomb = engine.run(Case(net=MEMORY_BOMB))
        assert bomb.outcome == Outcome.OUT_OF_MEMORY, bomb.message
        assert bomb.stage == "init"
        assert "host allocation of size 8000000000 failed" in bomb.message
        assert engine.run(tiny_case()).outcome == Outcome.OK


def test_force_backward_logged_does_not_need_but_runs_backward(caffe_engine):
    result = caffe_engine.run(tiny_case(net=FORCED))
    assert result.outcome == Outcome.OK, result.message
    layers = layers_by_name(result)
    for name in ("ip", "loss"):
        assert layers[name].logged_need_backward is False, name
        assert layers[name].need_backward is True, name
    # force_backward sets every param_propagate_down, lr_mult 0 included (net.cpp, Net::Init) ...
    assert layers["ip"].param_propagate_down == (True, True)
    assert layers["ip"].param_lr == (0.0, 0.0)
    # ... and LossLayer::AllowForceBackward(1) keeps the label out (loss_layer.hpp).
    assert layers["loss"].bottom_need_backward == (True, False)
    assert layers["ip"].bottom_need_backward == (True,)
    assert layers["ip"].bottom_written == (True,)
    assert np.any(result.blob_diff["data"] != 0)


# ReLU in place on ip's blob: its Backward overwrites the diff it reads (relu_layer.cpp), so
# "written" can only be observed as "changed": top diff times (ip > 0).
IN_PLACE_RELU = """
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 3 dim: 5 } shape { dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 4 } }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def test_in_place_bottom_counts_as_written_only_where_backward_changed_its_diff(caffe_engine):
    def bottom_written(bias):
        case = dataclasses.replace(
            tiny_case(net=IN_PLACE_RELU),
            params={"ip": (np.zeros((4, 5), np.float32), np.array(bias, np.float32))},
        )
        result = caffe_engine.run(case)
        assert result.outcome == Outcome.OK, result.message
        return layers_by_name(result)["relu"].bottom_written

    assert bottom_written([1.0, 2.0, 3.0, 4.0]) == (False,)  # every ip > 0: the diff passes as is
    assert bottom_written([1.0, -2.0, 3.0, 4.0]) == (True,)  # the second column's diff is zeroed


def run_script(caffe_runtime, host, inside, script: str, args: list[str], glog_level: str):
    """Run ``script`` with python3 inside the runtime, from the log directory (host, inside),
    which is then removed; returns (one JSON value per stdout line, stderr)."""
    (host / "check.py").write_text(script)
    done = subprocess.run(
        ["chroot", str(caffe_runtime.directory), "python3", f"{inside}/check.py", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, GLOG_minloglevel=glog_level),
        check=False,
    )
    shutil.rmtree(host)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines()], done.stderr


# Runs inside the runtime: the probe's flags of pycaffe's own Net against those of a Net it
# builds from the file, for each net given as (path, phase, level, stages).
LIVE_AGAINST_FILE = f"""
import json, sys
sys.path.insert(0, "{INSTALL_DIR}")
import caffe, worker
probe = worker.FlagsProbe("{INSTALL_DIR}/flags_probe.so")
assert probe.live, "the probe was built without ccf_flags_net"
for path, phase, level, stages in json.load(open(sys.argv[1])):
    net = caffe.Net(path, caffe.TRAIN if phase == "TRAIN" else caffe.TEST, level=level, stages=stages)
    live = probe.flags(net, path, phase, level, stages)
    probe.live = False
    from_file = probe.flags(net, path, phase, level, stages)
    probe.live = True
    print(json.dumps([path, live == from_file, live, from_file]))
"""


def test_probe_reads_the_flags_of_pycaffes_own_net(caffe_runtime):
    """ccf_flags_net (boost::python::extract of pycaffe's Net) against ccf_flags (a second Net
    built from the file): the same flags for every net of tests/flag_nets.py."""
    host, inside = caffe_runtime.new_log_dir()
    nets = []
    for name, net in sorted(FLAG_NETS.items()):
        (host / f"{name}.prototxt").write_text(net.prototxt)
        nets.append([f"{inside}/{name}.prototxt", net.phase, net.level, list(net.stages)])
    (host / "nets.json").write_text(json.dumps(nets))
    rows, _ = run_script(caffe_runtime, host, inside, LIVE_AGAINST_FILE, [f"{inside}/nets.json"], "2")
    assert len(rows) == len(nets)
    for path, same, live, from_file in rows:
        assert same, f"{path}: live {live} != from the file {from_file}"


# Runs inside the runtime: for each saved case, in a forked child (Caffe may refuse the net),
# two nets with the same params and inputs; one runs a plain Net::BackwardFromTo, the other the
# worker's backward_observing, with the layer facts CaffeEngine sends (the JSON argument).
# Prints, per case, the blobs whose diffs differ in any bit.
OBSERVING_AGAINST_PLAIN = f"""
import json, os, sys
import numpy as np
sys.path.insert(0, "{INSTALL_DIR}")
import caffe, worker
probe = worker.FlagsProbe("{INSTALL_DIR}/flags_probe.so")

def build(directory, meta, arrays):
    phase = caffe.TRAIN if meta["phase"] == "TRAIN" else caffe.TEST
    net = caffe.Net(directory + "/net.prototxt", phase, level=meta["level"], stages=meta["stages"])
    names = list(net._layer_names)
    params = {{}}
    for key, value in arrays.items():
        if key.startswith("param/"):
            layer, index = key[len("param/"):].rsplit("/", 1)
            params.setdefault(layer, {{}})[int(index)] = value
    index = worker.NetIndex(net)
    worker.set_params(index, params)
    worker.set_inputs(index, dict((k[6:], v) for k, v in arrays.items() if k.startswith("input/")))
    caffe.set_random_seed(meta["seed"])
    net._forward(0, len(names) - 1)
    net.clear_param_diffs()
    return net

def diffs(net):
    out = dict((name, blob.diff.tobytes()) for name, blob in net.blobs.items())
    for i, layer in enumerate(net.layers):
        for j, blob in enumerate(layer.blobs):
            out["param %d/%d" % (i, j)] = blob.diff.tobytes()
    return out

facts = json.loads(sys.argv[1])
for directory in sys.argv[2:]:
    meta = json.load(open(directory + "/meta.json"))
    arrays = dict(np.load(directory + "/arrays.npz"))
    pid = os.fork()
    if pid == 0:
        plain = build(directory, meta, arrays)
        plain._backward(len(plain.layers) - 1, 0)
        observed = build(directory, meta, arrays)
        need = [layer["need_backward"] for layer in probe.flags(observed, None, None, None, None)]
        worker.backward_observing(observed, worker.NetIndex(observed), need,
                                  set(facts["backward_reads_bottom_diff"]),
                                  set(facts["backward_repoints_bottom_diff"]))
        a, b = diffs(plain), diffs(observed)
        print(json.dumps([directory, sorted(k for k in a if a[k] != b[k])]))
        sys.stdout.flush()
        os._exit(0)
    os.waitpid(pid, 0)
"""


# Diffs shared between blobs: a Parameter layer's top and its param, a Reshape's bottom and top;
# Flatten's Backward points its bottom's diff at its top's. Each: (net, input shapes, param shapes).
SHARED_DIFFS = (
    (
        """
layer { name: "target" type: "Input" top: "target" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "p" type: "Parameter" top: "p" parameter_param { shape { dim: 2 dim: 3 } } }
layer { name: "flat" type: "Flatten" bottom: "p" top: "flat" }
layer { name: "loss" type: "EuclideanLoss" bottom: "flat" bottom: "target" top: "loss" }
""",
        {"target": (2, 3)},
        {"p": [(2, 3)]},
    ),
    (
        """
force_backward: true
layer { name: "in" type: "Input" top: "data" top: "target"
  input_param { shape { dim: 2 dim: 3 dim: 2 } shape { dim: 2 dim: 6 } } }
layer { name: "reshape" type: "Reshape" bottom: "data" top: "r" reshape_param { shape { dim: 2 dim: 6 } } }
layer { name: "flat" type: "Flatten" bottom: "r" top: "flat" }
layer { name: "loss" type: "EuclideanLoss" bottom: "flat" bottom: "target" top: "loss" }
""",
        {"data": (2, 3, 2), "target": (2, 6)},
        {},
    ),
    (
        """
layer { name: "target" type: "Input" top: "target" input_param { shape { dim: 3 dim: 2 } } }
layer { name: "p" type: "Parameter" top: "p" parameter_param { shape { dim: 2 dim: 3 } } }
layer { name: "reshape" type: "Reshape" bottom: "p" top: "r" reshape_param { shape { dim: 3 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "r" top: "ip" inner_product_param { num_output: 2 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "target" top: "loss" }
""",
        {"target": (3, 2)},
        {"p": [(2, 3)], "ip": [(2, 2), (2,)]},
    ),
)


def shared_diff_cases() -> list[Case]:
    rng = np.random.default_rng(0)

    def values(shape):
        return rng.standard_normal(shape).astype(np.float32)

    return [
        Case(
            net=net,
            inputs={name: values(shape) for name, shape in inputs.items()},
            params={name: tuple(values(shape) for shape in shapes) for name, shapes in params.items()},
        )
        for net, inputs, params in SHARED_DIFFS
    ]


def test_observing_backward_leaves_the_diffs_of_a_plain_backward(caffe_runtime):
    """backward_observing (the worker's one backward pass, which also sees which bottom diffs
    each layer writes) leaves every blob diff and param diff bit for bit as a plain
    Net::BackwardFromTo does, on nets whose blobs share diffs, on a Backward that reads a
    bottom diff, and on generated nets."""
    drawn = [*shared_diff_cases(), tiny_case(net=HINGE_LOSS)]

    @given(cases(solvers=False))
    def collect(case):
        drawn.append(case)

    collect()
    host, inside = caffe_runtime.new_log_dir()
    for i, case in enumerate(drawn):
        case.save(host / str(i))
    rows, stderr = run_script(
        caffe_runtime,
        host,
        inside,
        OBSERVING_AGAINST_PLAIN,
        [json.dumps(worker_layer_facts()), *(f"{inside}/{i}" for i in range(len(drawn)))],
        "3",
    )
    assert len(rows) > len(drawn) // 2, f"only {len(rows)} of {len(drawn)} nets ran: {stderr[-2000:]}"
    for directory, differing in rows:
        case = drawn[int(directory.rsplit("/", 1)[1])]
        assert not differing, f"diffs of {differing} differ from a plain backward in:\n{case.net}"


# Runs inside the runtime: the worker's overwrite_fd over one file, with contents longer,
# shorter and as long as the one before. Prints what the file holds after each.
OVERWRITES = f"""
import json, os, sys
sys.path.insert(0, "{INSTALL_DIR}")
import worker
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 420)
for text in json.loads(sys.argv[2]):
    worker.overwrite_fd(fd, text.encode("utf-8"))
    print(json.dumps(open(sys.argv[1]).read()))
"""


def test_overwrite_leaves_exactly_the_new_content(caffe_runtime):
    """The net file and built.json are overwritten in place, cut only when they shrink: a file
    left longer than its new content would hand Caffe, or a post-mortem, a stale tail."""
    host, inside = caffe_runtime.new_log_dir()
    contents = ["a" * 10, "b" * 30, "c" * 5, "d" * 5, "", "e" * 7]
    rows, _ = run_script(
        caffe_runtime, host, inside, OVERWRITES, [f"{inside}/file", json.dumps(contents)], "2"
    )
    assert rows == contents
