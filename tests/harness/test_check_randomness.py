"""`check` against Caffe on a net whose TRAIN forward draws from Caffe's RNG (Dropout's
mask): no engine can replay that mask, so a comparison would report a bug that is not one."""

from harness import cli

NET = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 } }
layer { name: "drop" type: "Dropout" bottom: "ip" top: "ip" include { phase: TRAIN } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "data2" top: "loss" }
layer { name: "data2" type: "Input" top: "data2" input_param { shape { dim: 2 dim: 3 } } }
"""


def test_a_train_dropout_is_refused_with_the_way_out(tmp_path, capsys):
    net = tmp_path / "net.prototxt"
    net.write_text(NET)
    assert cli.main(["check", str(net), "--against", "caffe"]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "drop draw(s) a random mask from Caffe's own RNG in TRAIN" in err and "--phase TEST" in err
