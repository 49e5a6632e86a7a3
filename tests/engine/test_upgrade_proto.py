"""Caffe's upgrades of old net formats (src/caffe/util/upgrade_proto.cpp; test_upgrade_proto.cpp).

Expected LayerParameters are written out in full and compared as messages, so a field
UpgradeV1LayerParameter copies and we drop (or one we invent) fails the test.
"""

import pytest
from google.protobuf import text_format

from reference_engine import caffe_pb2
from reference_engine.analysis import analyse_text
from reference_engine.checks import CaffeError, Unsupported
from reference_engine.upgrade import upgrade_net_as_needed
from reference_engine.upgrade_v1 import V1_LAYER_TYPES, upgrade_v1_layer_type


def upgraded(text):
    param = text_format.Parse(text, caffe_pb2.NetParameter())
    notes = upgrade_net_as_needed(param)
    return param, notes


def expect(text):
    return text_format.Parse(text, caffe_pb2.NetParameter())


def test_v1_convolution_with_blobs_lr_weight_decay_and_shared_names():
    param, notes = upgraded("""
      name: "v1"
      layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
        blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
        param: "w" param: "b" blob_share_mode: PERMISSIVE
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } }
        include { phase: TRAIN } }
      layers { name: "loss" type: SOFTMAX_LOSS bottom: "conv1" bottom: "label" top: "loss"
        loss_weight: 2 loss_param { ignore_label: 3 } softmax_param { axis: 1 } }
    """)
    assert param == expect("""
      name: "v1"
      layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        include { phase: TRAIN }
        param { name: "w" share_mode: PERMISSIVE lr_mult: 1 decay_mult: 1 }
        param { name: "b" lr_mult: 2 decay_mult: 0 }
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } } }
      layer { name: "loss" type: "SoftmaxWithLoss" bottom: "conv1" bottom: "label" top: "loss"
        loss_weight: 2 loss_param { ignore_label: 3 } softmax_param { axis: 1 } }
    """)
    assert any("V1LayerParameter" in n for n in notes)


def test_v1_blobs_lr_longer_than_weight_decay_leaves_decay_unset():
    """Each list fills the ParamSpecs it reaches; the rest keep caffe.proto's defaults."""
    param, _ = upgraded(
        'layers { name: "ip" type: INNER_PRODUCT blobs_lr: 0 blobs_lr: 0 weight_decay: 3 '
        'inner_product_param { num_output: 2 } exclude { stage: "deploy" } }'
    )
    layer = param.layer[0]
    assert [(p.lr_mult, p.HasField("decay_mult"), p.decay_mult) for p in layer.param] == [
        (0, True, 3),
        (0, False, 1),
    ]
    assert layer.exclude[0].stage == ["deploy"]


def test_v1_data_layer_transformation_fields_move_to_transform_param():
    """UpgradeNetDataTransformation runs before V1 -> V2, on the V1 data layers' own fields."""
    param, notes = upgraded("""
      layers { name: "data" type: DATA top: "data" top: "label"
        data_param { source: "train_lmdb" backend: LMDB batch_size: 64 scale: 0.00390625 crop_size: 28
                     mirror: true mean_file: "mean.binaryproto" } }
    """)
    assert param == expect("""
      layer { name: "data" type: "Data" top: "data" top: "label"
        data_param { source: "train_lmdb" backend: LMDB batch_size: 64 }
        transform_param { scale: 0.00390625 crop_size: 28 mirror: true mean_file: "mean.binaryproto" } }
    """)
    assert any("transform_param" in n for n in notes)


def test_every_v1_type_has_a_registered_name():
    for name in caffe_pb2.V1LayerParameter.LayerType.keys():  # noqa: SIM118 (an EnumTypeWrapper, not a dict)
        assert name in V1_LAYER_TYPES
    assert upgrade_v1_layer_type(caffe_pb2.V1LayerParameter.DECONVOLUTION) == "Deconvolution"


def test_layer_and_layers_together_are_refused():
    text = 'layer { name: "a" type: "ReLU" } layers { name: "b" type: RELU }'
    with pytest.raises(CaffeError, match="Refusing to upgrade inconsistent NetParameter input"):
        upgraded(text)


def test_v0_net_is_refused_as_unsupported():
    with pytest.raises(Unsupported, match="V0"):
        upgraded('layers { layer { name: "conv" type: "conv" num_output: 2 } bottom: "data" top: "conv" }')


def test_deprecated_input_dim_becomes_input_layer_after_v1_upgrade():
    param, notes = upgraded("""
      input: "data" input_dim: 2 input_dim: 3 input_dim: 4 input_dim: 4
      layers { name: "relu" type: RELU bottom: "data" top: "data" }
    """)
    assert param == expect("""
      layer { name: "input" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }
      layer { name: "relu" type: "ReLU" bottom: "data" top: "data" }
    """)
    assert len(notes) == 2


def test_v1_net_analysis_reads_upgraded_multipliers():
    analysis = analyse_text("""
      input: "data" input_shape { dim: 2 dim: 3 }
      input: "label" input_shape { dim: 2 }
      layers { name: "ip" type: INNER_PRODUCT bottom: "data" top: "ip" blobs_lr: 0 blobs_lr: 0
        inner_product_param { num_output: 3 } }
      layers { name: "loss" type: SOFTMAX_LOSS bottom: "ip" bottom: "label" top: "loss" }
    """)
    ip = analysis.topology.layers[1]
    assert ip.param_lr_mults == [0, 0]
    assert not analysis.flags.layers[1].need_backward
    assert analysis.upgrade_notes
