"""Caffe's upgrades of old net formats, applied where Caffe applies them.

Caffe: UpgradeNetAsNeeded (src/caffe/util/upgrade_proto.cpp). It runs only when a
net is read from a file (Net(file, phase), a solver's ``net:`` path), never for a
NetParameter given directly or embedded in a solver as ``net_param``
(docs/semantics.md §1.1).
"""

from . import caffe_pb2
from .checks import fatal


def upgrade_net_as_needed(param) -> list[str]:
    """Upgrade ``param`` in place; return one note per upgrade applied."""
    notes = []
    if param.layers:
        from .upgrade_v1 import upgrade_v1_net

        notes.extend(upgrade_v1_net(param))
    if param.input:
        upgrade_net_input(param)
        notes.append("upgraded deprecated input fields to an Input layer named 'input'")
    if any(layer.type == "BatchNorm" and len(layer.param) == 3 for layer in param.layer):
        upgrade_net_batch_norm(param)
        notes.append("BatchNorm layers with three param specs: lr_mult and decay_mult set to 0")
    return notes


def upgrade_net_input(param):
    """UpgradeNetInput: input + input_shape (or four input_dim per input) become layer 0, type Input."""
    has_shape, has_dim = len(param.input_shape) > 0, len(param.input_dim) > 0
    if has_shape or has_dim:
        layer = caffe_pb2.LayerParameter()
        layer.name = "input"
        layer.type = "Input"
        for i, name in enumerate(param.input):
            layer.top.append(name)
            shape = layer.input_param.shape.add()
            if has_shape:
                if i >= len(param.input_shape):
                    fatal(f"input '{name}' has no input_shape (input {i} of {len(param.input)})")
                shape.CopyFrom(param.input_shape[i])
            else:
                if 4 * i + 4 > len(param.input_dim):
                    fatal(f"input '{name}' needs four input_dim values ({len(param.input_dim)} given)")
                shape.dim.extend(param.input_dim[4 * i : 4 * i + 4])
        layers = [layer] + list(param.layer)
        del param.layer[:]
        for l in layers:
            param.layer.add().CopyFrom(l)
    del param.input[:]
    del param.input_shape[:]
    del param.input_dim[:]


def upgrade_net_batch_norm(param):
    """UpgradeNetBatchNorm: a BatchNorm declaring three params gets lr_mult 0, decay_mult 0 on each."""
    for layer in param.layer:
        if layer.type == "BatchNorm" and len(layer.param) == 3:
            for spec in layer.param:
                spec.lr_mult = 0.0
                spec.decay_mult = 0.0
