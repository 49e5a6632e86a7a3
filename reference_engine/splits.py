"""Split insertion: a blob read by several layers gets a Split layer with one top per reader.

Caffe: InsertSplits, ConfigureSplitLayer, SplitLayerName, SplitBlobName
(src/caffe/util/insert_splits.cpp). Names are Caffe's, byte for byte.
"""

from .checks import fatal


def split_layer_name(layer_name: str, blob_name: str, top_index: int) -> str:
    return f"{blob_name}_{layer_name}_{top_index}_split"


def split_blob_name(layer_name: str, blob_name: str, top_index: int, split_index: int) -> str:
    return f"{blob_name}_{layer_name}_{top_index}_split_{split_index}"


def _float32(value: float) -> float:
    """loss_weight is a proto float; the C++ map stores it as float."""
    import struct

    return struct.unpack("f", struct.pack("f", value))[0]


def insert_splits(param):
    """A copy of the filtered NetParameter with Split layers inserted.

    A nonzero explicit loss_weight counts as one more reader of its top; the
    implicit weight 1 of loss layers is added later (LossLayer::LayerSetUp) and is
    invisible here (docs/semantics.md §1.5).
    """
    last_producer: dict[str, tuple[int, int]] = {}
    source_of_bottom: dict[tuple[int, int], tuple[int, int]] = {}
    readers: dict[tuple[int, int], int] = {}
    loss_weight: dict[tuple[int, int], float] = {}
    for i, layer in enumerate(param.layer):
        for j, blob in enumerate(layer.bottom):
            if blob not in last_producer:
                fatal(f"Unknown bottom blob '{blob}' (layer '{layer.name}', bottom index {j})")
            source = last_producer[blob]
            source_of_bottom[(i, j)] = source
            readers[source] = readers.get(source, 0) + 1
        for j, blob in enumerate(layer.top):
            last_producer[blob] = (i, j)
        for j in range(min(len(layer.loss_weight), len(layer.top))):
            source = last_producer[layer.top[j]]
            loss_weight[source] = _float32(layer.loss_weight[j])
            if loss_weight[source]:
                readers[source] = readers.get(source, 0) + 1

    out = type(param)()
    out.CopyFrom(param)
    del out.layer[:]
    next_split_index: dict[tuple[int, int], int] = {}
    for i, original in enumerate(param.layer):
        layer = out.layer.add()
        layer.CopyFrom(original)
        for j, blob in enumerate(layer.bottom):
            source = source_of_bottom[(i, j)]
            if readers.get(source, 0) > 1:
                k = next_split_index.get(source, 0)
                next_split_index[source] = k + 1
                layer.bottom[j] = split_blob_name(param.layer[source[0]].name, blob, source[1], k)
        for j, blob in enumerate(layer.top):
            count = readers.get((i, j), 0)
            if count > 1:
                weight = loss_weight.get((i, j), 0.0)
                split = out.layer.add()
                split.name = split_layer_name(layer.name, blob, j)
                split.type = "Split"
                split.bottom.append(blob)
                for k in range(count):
                    split.top.append(split_blob_name(layer.name, blob, j, k))
                    if weight:
                        split.loss_weight.append(weight if k == 0 else 0.0)
                if weight:
                    # The loss moves onto split top 0, which nobody reads; the producer's
                    # whole loss_weight list is cleared, other tops' weights included.
                    del layer.loss_weight[:]
                    next_split_index[(i, j)] = next_split_index.get((i, j), 0) + 1
    return out
