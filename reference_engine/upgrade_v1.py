"""The V1 net format (``layers { type: CONVOLUTION blobs_lr: 1 ... }``) upgraded to ``layer {}``.

Caffe: upgrade_proto.cpp, UpgradeNetDataTransformation, UpgradeV1Net,
UpgradeV1LayerParameter and UpgradeV1LayerType, field for field and in the same
order, so that the upgraded LayerParameter is the one Caffe builds. Intended
difference: V0 nets (``layers { layer { ... } }``, UpgradeV0Net with its padding
layers) are refused as unsupported rather than upgraded.
"""

from . import caffe_pb2
from .checks import Unsupported, fatal

V1 = caffe_pb2.V1LayerParameter

# UpgradeV1LayerType: the enum's value name -> the type string of the registry.
V1_LAYER_TYPES = {
    "NONE": "",
    "ABSVAL": "AbsVal",
    "ACCURACY": "Accuracy",
    "ARGMAX": "ArgMax",
    "BNLL": "BNLL",
    "CONCAT": "Concat",
    "CONTRASTIVE_LOSS": "ContrastiveLoss",
    "CONVOLUTION": "Convolution",
    "DECONVOLUTION": "Deconvolution",
    "DATA": "Data",
    "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss",
    "ELTWISE": "Eltwise",
    "EXP": "Exp",
    "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data",
    "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss",
    "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss",
    "INNER_PRODUCT": "InnerProduct",
    "LRN": "LRN",
    "MEMORY_DATA": "MemoryData",
    "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN",
    "POOLING": "Pooling",
    "POWER": "Power",
    "RELU": "ReLU",
    "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss",
    "SILENCE": "Silence",
    "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss",
    "SPLIT": "Split",
    "SLICE": "Slice",
    "TANH": "TanH",
    "WINDOW_DATA": "WindowData",
    "THRESHOLD": "Threshold",
}

# The *_param messages UpgradeV1LayerParameter copies, in its order; V1 and LayerParameter
# use the same field names for them.
V1_LAYER_PARAMS = (
    "accuracy_param",
    "argmax_param",
    "concat_param",
    "contrastive_loss_param",
    "convolution_param",
    "data_param",
    "dropout_param",
    "dummy_data_param",
    "eltwise_param",
    "exp_param",
    "hdf5_data_param",
    "hdf5_output_param",
    "hinge_loss_param",
    "image_data_param",
    "infogain_loss_param",
    "inner_product_param",
    "lrn_param",
    "memory_data_param",
    "mvn_param",
    "pooling_param",
    "power_param",
    "relu_param",
    "sigmoid_param",
    "softmax_param",
    "slice_param",
    "tanh_param",
    "threshold_param",
    "window_data_param",
    "transform_param",
    "loss_param",
)

# UpgradeNetDataTransformation: the V1 data layers whose own scale/mean_file/crop_size/mirror
# move into transform_param.
_TRANSFORM_OWNERS = {
    V1.DATA: "data_param",
    V1.IMAGE_DATA: "image_data_param",
    V1.WINDOW_DATA: "window_data_param",
}
_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")


def upgrade_v1_layer_type(layer_type: int) -> str:
    name = V1.LayerType.Name(layer_type) if layer_type in V1.LayerType.values() else None
    if name is None:
        fatal(f"Unknown V1LayerParameter layer type: {layer_type}")
    return V1_LAYER_TYPES[name]


def net_needs_data_upgrade(param) -> bool:
    """NetNeedsDataUpgrade: a V1 data layer sets a transformation field in its own param."""
    for layer in param.layers:
        owner = _TRANSFORM_OWNERS.get(layer.type)
        if owner and any(getattr(layer, owner).HasField(f) for f in _TRANSFORM_FIELDS):
            return True
    return False


def upgrade_net_data_transformation(param):
    """UpgradeNetDataTransformation: move each set field into transform_param and clear it."""
    for layer in param.layers:
        owner = _TRANSFORM_OWNERS.get(layer.type)
        if owner is None:
            continue
        source = getattr(layer, owner)
        for name in _TRANSFORM_FIELDS:
            if source.HasField(name):
                setattr(layer.transform_param, name, getattr(source, name))
                source.ClearField(name)


def upgrade_v1_layer_parameter(v1, layer) -> bool:
    """UpgradeV1LayerParameter: fill ``layer`` from ``v1``; False where Caffe reports a problem."""
    layer.Clear()
    fully_compatible = True
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    if v1.HasField("name"):
        layer.name = v1.name
    for rule in v1.include:
        layer.include.add().CopyFrom(rule)
    for rule in v1.exclude:
        layer.exclude.add().CopyFrom(rule)
    if v1.HasField("type"):
        layer.type = upgrade_v1_layer_type(v1.type)
    for blob in v1.blobs:
        layer.blobs.add().CopyFrom(blob)

    def param_spec(i):
        while len(layer.param) <= i:
            layer.param.add()
        return layer.param[i]

    for i, name in enumerate(v1.param):
        param_spec(i).name = name
    for i, mode in enumerate(v1.blob_share_mode):
        # The two enums share names and numbers (STRICT 0, PERMISSIVE 1).
        param_spec(i).share_mode = caffe_pb2.ParamSpec.DimCheckMode.Value(V1.DimCheckMode.Name(mode))
    for i, lr in enumerate(v1.blobs_lr):
        param_spec(i).lr_mult = lr
    for i, decay in enumerate(v1.weight_decay):
        param_spec(i).decay_mult = decay
    layer.loss_weight.extend(v1.loss_weight)
    for name in V1_LAYER_PARAMS:
        if v1.HasField(name):
            getattr(layer, name).CopyFrom(getattr(v1, name))
    if v1.HasField("layer"):
        fully_compatible = False  # Caffe: LOG(ERROR) "Input NetParameter has V0 layer -- ignoring."
    return fully_compatible


def upgrade_v1_net(param) -> list[str]:
    """The V1 part of UpgradeNetAsNeeded, in place: V0 check, data transformation, then V1 -> V2.

    Returns one note per upgrade applied.
    """
    if any(layer.HasField("layer") for layer in param.layers):
        raise Unsupported(
            "this net uses the V0 layer format (layers { layer { ... } }); the reference "
            "engine does not upgrade it: run Caffe's tools/upgrade_net_proto_text first"
        )
    notes = []
    if net_needs_data_upgrade(param):
        upgrade_net_data_transformation(param)
        notes.append(
            "upgraded deprecated data transformation fields (scale, mean_file, crop_size, "
            "mirror) into transform_param"
        )
    if param.layer:
        fatal(
            "Refusing to upgrade inconsistent NetParameter input; the definition includes both 'layer' "
            "and 'layers' fields. The current format defines 'layer' fields with string type like "
            "layer { type: 'Layer' ... } and not layers { type: LAYER ... }. Manually switch the "
            "definition to 'layer' format to continue."
        )
    v1_layers = list(param.layers)
    del param.layers[:]
    for i, v1 in enumerate(v1_layers):
        if not upgrade_v1_layer_parameter(v1, param.layer.add()):
            notes.append(f"V1 layer {i} ('{v1.name}') could not be fully upgraded")
    notes.append(
        "upgraded from the deprecated V1LayerParameter format (layers { type: ENUM ... }): "
        "blobs_lr -> param.lr_mult, weight_decay -> param.decay_mult"
    )
    return notes
