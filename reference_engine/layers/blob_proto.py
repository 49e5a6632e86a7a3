"""Param blobs stored in a LayerParameter (`blobs { ... }`), as Caffe's Layer constructor copies them.

Caffe: include/caffe/layer.hpp (Layer::Layer) and src/caffe/blob.cpp (Blob::FromProto). A layer
with stored blobs skips its fillers ("Skipping parameter initialization").
"""

import torch

from ..checks import check_eq


def blobs_from_proto(layer) -> bool:
    """Give ``layer.blobs`` the blobs stored in its LayerParameter; False if it stores none."""
    if not layer.param.blobs:
        return False
    layer.blobs = [_blob_from_proto(layer, proto) for proto in layer.param.blobs]
    return True


def _blob_from_proto(layer, proto):
    # Blob::FromProto(proto, reshape=true): the shape field, else the legacy 4-D dims.
    if proto.HasField("shape"):
        shape = list(proto.shape.dim)
    else:
        shape = [proto.num, proto.channels, proto.height, proto.width]
    blob = layer.new_blob(shape)
    for target, doubles, floats, name in (
        (blob.data, proto.double_data, proto.data, "data"),
        (blob.diff, proto.double_diff, proto.diff, "diff"),
    ):
        values, field = (doubles, f"double_{name}") if len(doubles) > 0 else (floats, name)
        if len(values) > 0:
            check_eq(blob.count(), len(values), "count_", f"proto.{field}_size()")
            target.copy_(torch.tensor(list(values), dtype=torch.float64).view(shape))
    return blob
