"""`caffe-conformance check` on a user's net, against real Caffe: exit codes and the verdict."""

import json

from harness.cli import main

EXAMPLE = "harness/explain/examples/propagate_down.prototxt"


def test_check_agrees_on_the_example_net_with_a_solver_step(capsys, tmp_path):
    code = main(["check", EXAMPLE, "--iterations", "2", "--json", "--bundle", str(tmp_path / "b")])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    assert out["verdict"] == "agree"
    assert out["outcomes"]["caffe"]["outcome"] == "ok"
    assert (tmp_path / "b" / "case" / "solver.prototxt").exists()


def test_check_reports_a_net_caffe_refuses_at_init_as_agreement_on_the_refusal(capsys, tmp_path):
    net = tmp_path / "bad.prototxt"
    net.write_text(
        'layer { name: "in" type: "Input" top: "x" top: "y" input_param { shape { dim: 2 dim: 3 } } }\n'
        'layer { name: "e" type: "Eltwise" bottom: "x" bottom: "y" top: "e" propagate_down: false }\n'
    )
    assert main(["check", str(net)]) == 0  # both engines refuse it, with the same message
    out = capsys.readouterr().out
    assert "caffe: refused at init: Check failed: layer_param.propagate_down_size()" in out
    assert "reference: refused at init: Check failed: layer_param.propagate_down_size()" in out


def test_check_unreadable_input_exits_two(capsys, tmp_path):
    assert main(["check", str(tmp_path / "missing.prototxt")]) == 2
    assert "cannot read" in capsys.readouterr().err
