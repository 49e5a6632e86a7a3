"""A user's train_val.prototxt made runnable without its data files.

Data-reading layers (Data, ImageData, HDF5Data, WindowData, MemoryData, and DummyData
with a non-constant filler) become Input layers of the shape they would produce, so
both engines can be fed synthetic arrays. The net is first upgraded and filtered by
the NetState exactly as Net(file, phase, level, stages) does (reference_engine/net.py,
state.py), so the TRAIN and TEST copies of a layer named "data" never collide.

Shapes follow each layer's Reshape in Caffe (data_layer.cpp, image_data_layer.cpp,
window_data_layer.cpp, memory_data_layer.cpp, dummy_data_layer.cpp, and
DataTransformer::InferBlobShape): batch_size first; then channels, height and width
from what the prototxt states; labels are (batch_size,). Whatever the prototxt does
not state is either assumed (and said so in a note) or asked for with --input-shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from google.protobuf import text_format

from harness.errors import HarnessError
from reference_engine import caffe_pb2
from reference_engine.net import read_net_param
from reference_engine.state import filter_net

DEFAULT_CHANNELS = 3  # a colour image: what an LMDB of JPEGs decodes to unless told otherwise
DATA_LAYER_TYPES = ("Data", "ImageData", "HDF5Data", "WindowData", "MemoryData", "DummyData")


@dataclass
class RunnableNet:
    """The filtered net with Input layers in place of data readers, and what was assumed."""

    param: caffe_pb2.NetParameter  # filtered by the state; state itself cleared
    notes: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)  # names of the layers that became Inputs
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # every Input top
    original: str | None = None  # the user's own text, where nothing had to change

    @property
    def text(self) -> str:
        """What Caffe is given: the user's file itself when it needed no change, so that Caffe's
        own upgrade of old formats (V1, input fields) is what gets confirmed."""
        return self.original if self.original is not None else text_format.MessageToString(self.param)


def parse_input_shapes(specs) -> dict[str, tuple[int, ...]]:
    """``["data=1,3,32,32", "label=1"]`` -> ``{"data": (1, 3, 32, 32), "label": (1,)}``."""
    shapes = {}
    for spec in specs or ():
        name, sep, dims = spec.partition("=")
        try:
            shape = tuple(int(d) for d in dims.split(",")) if sep and dims else None
        except ValueError:
            shape = None
        if not name or shape is None or any(d < 1 for d in shape):
            raise HarnessError(
                f"--input-shape={spec!r}: expected BLOB=d0,d1,... with positive integers, e.g. data=1,3,32,32"
            )
        shapes[name] = shape
    return shapes


def make_runnable(
    text: str,
    phase: str = "TRAIN",
    level: int = 0,
    stages=(),
    input_shapes: dict[str, tuple[int, ...]] | None = None,
) -> RunnableNet:
    """Parse, upgrade and filter ``text`` as Caffe would, then replace its data readers."""
    overrides = dict(input_shapes or {})
    param, upgrade_notes = read_net_param(text, phase, level, stages)
    filtered = filter_net(param)
    filtered.ClearField("state")
    runnable = RunnableNet(filtered, notes=list(upgrade_notes))
    used = set()
    for i, layer in enumerate(filtered.layer):
        if layer.type in DATA_LAYER_TYPES:
            if layer.type == "DummyData" and _dummy_is_constant(layer):
                continue  # filled once at setup, identically in every engine (dummy_data_layer.cpp)
            shapes, why = _layer_shapes(layer, overrides)
            used.update(t for t in layer.top if t in overrides)
            kind = layer.type
            filtered.layer[i].CopyFrom(_input_layer(layer, shapes))
            runnable.replaced.append(layer.name)
            runnable.notes.append(f"layer '{layer.name}' ({kind}) replaced by an Input layer: {why}")
        elif layer.type == "Input":
            for j, top in enumerate(layer.top):
                if top in overrides:
                    _set_input_shape(layer, j, overrides[top])
                    used.add(top)
                    runnable.notes.append(
                        f"Input top '{top}' reshaped to {_dims(overrides[top])} (--input-shape)"
                    )
        if layer.type == "Input":
            for j, top in enumerate(layer.top):
                runnable.input_shapes[top] = tuple(_input_shape(layer, j))
    if not runnable.replaced and not used:
        runnable.original = text
    unused = sorted(set(overrides) - used)
    if unused:
        known = ", ".join(sorted(runnable.input_shapes)) or "none"
        raise HarnessError(
            f"--input-shape {', '.join(unused)}: not a top of a data or Input layer of this net "
            f"in phase {phase} (those tops: {known})"
        )
    return runnable


# ---- shapes of data readers ---------------------------------------------------------------


def _layer_shapes(layer, overrides) -> tuple[list[tuple[int, ...]], str]:
    """One shape per top, and a sentence saying where each came from."""
    derive = _SHAPE_RULES[layer.type]
    shapes, said = [], []
    for j, top in enumerate(layer.top):
        if top in overrides:
            shapes.append(overrides[top])
            said.append(f"'{top}' {_dims(overrides[top])} (--input-shape)")
            continue
        shape, why = derive(layer, j)
        if shape is None:
            raise HarnessError(
                f"layer '{layer.name}' ({layer.type}), top '{top}': the shape cannot be derived from the "
                f"prototxt ({why}); give it with --input-shape {top}=d0,d1,..."
            )
        shapes.append(shape)
        said.append(f"'{top}' {_dims(shape)} ({why})")
    return shapes, "; ".join(said)


def _transform_image(layer, batch, height, width, what_hw):
    """DataTransformer::InferBlobShape: crop_size replaces height and width; channels as stated."""
    t = layer.transform_param
    if t.force_gray:
        channels, cwhy = 1, "force_gray"
    elif len(t.mean_value) > 1:
        channels, cwhy = len(t.mean_value), f"{len(t.mean_value)} mean_value entries"
    else:
        channels, cwhy = DEFAULT_CHANNELS, f"channels assumed {DEFAULT_CHANNELS} (colour images)"
    if t.crop_size:
        height = width = t.crop_size
        what_hw = f"crop_size {t.crop_size}"
    if height is None:
        return None, f"{what_hw}: the images decide height and width; no crop_size"
    return (batch, channels, height, width), f"batch_size {batch}, {cwhy}, {what_hw}"


def _batched(param_field: str, data_shape):
    """The shape rule of a reader whose tops are its data, then its label (batch_size,), and
    whose batch_size has no default in caffe.proto (unset reads 0): ``data_shape(layer, batch)``
    gives the data's."""

    def rule(layer, j):
        batch = getattr(layer, param_field).batch_size
        if not batch:
            return None, "no batch_size"
        if j == 1:
            return (batch,), f"label: batch_size {batch}"
        return data_shape(layer, batch)

    return rule


def _data_shape(layer, batch):
    return _transform_image(layer, batch, None, None, "the database decides height and width")


def _image_data_shape(layer, j):
    p = layer.image_data_param
    batch = p.batch_size  # default 1 in caffe.proto
    if j == 1:
        return (batch,), f"label: batch_size {batch}"
    height = p.new_height or None
    width = p.new_width or None
    if height is None or width is None:
        height = None
    shape, why = _transform_image(
        layer, batch, height, width, f"new_height {p.new_height}, new_width {p.new_width}"
    )
    if shape is not None and not layer.transform_param.force_gray:
        # ImageDataLayer decodes with is_color (image_data_layer.cpp): 3 channels, or 1.
        channels = 3 if p.is_color else 1
        shape = (shape[0], channels) + shape[2:]
        why = why.replace(
            f"channels assumed {DEFAULT_CHANNELS} (colour images)", f"is_color {str(p.is_color).lower()}"
        )
    return shape, why


def _window_data_shape(layer, batch):
    crop = layer.transform_param.crop_size
    if not crop:
        return None, "WindowData needs a crop_size"
    return (batch, 3, crop, crop), f"batch_size {batch}, 3 channels (window_data_layer.cpp), crop_size {crop}"


def _memory_data_shape(layer, j):
    p = layer.memory_data_param
    if j == 1:
        return (p.batch_size,), f"label: batch_size {p.batch_size}"
    why = (
        f"memory_data_param batch_size {p.batch_size}, channels {p.channels}, height {p.height}, "
        f"width {p.width}"
    )
    return (p.batch_size, p.channels, p.height, p.width), why


def _hdf5_data_shape(layer, j):
    return None, f"HDF5Data: the file {layer.hdf5_data_param.source!r} decides every top's shape"


def _dummy_data_shape(layer, j):
    p = layer.dummy_data_param
    if p.shape:
        shape = tuple(_for_top(p.shape, j).dim)
    else:
        shape = tuple(
            _for_top(values, j) if values else 1 for values in (p.num, p.channels, p.height, p.width)
        )
    return shape, "dummy_data_param's shape; its random filler becomes synthetic input"


_SHAPE_RULES = {
    "Data": _batched("data_param", _data_shape),
    "ImageData": _image_data_shape,
    "WindowData": _batched("window_data_param", _window_data_shape),
    "MemoryData": _memory_data_shape,
    "HDF5Data": _hdf5_data_shape,
    "DummyData": _dummy_data_shape,
}


def _dummy_is_constant(layer) -> bool:
    fillers = layer.dummy_data_param.data_filler
    return all(f.type == "constant" for f in fillers)


# ---- Input layers ---------------------------------------------------------------------------


def _input_layer(layer, shapes):
    replacement = caffe_pb2.LayerParameter(name=layer.name, type="Input")
    replacement.top.extend(layer.top)
    for shape in shapes:
        replacement.input_param.shape.add().dim.extend(shape)
    return replacement


def _input_shape(layer, j):
    shapes = layer.input_param.shape
    if not shapes:
        return ()
    return list(_for_top(shapes, j).dim)


def _for_top(values, j):
    """Top j's entry of a field given once for every top or once per top, as InputLayer and
    DummyDataLayer read their shapes (input_layer.cpp, dummy_data_layer.cpp)."""
    return values[0 if len(values) == 1 else j]


def _set_input_shape(layer, j, shape):
    shapes = layer.input_param.shape
    if len(shapes) != len(layer.top):
        # One shared shape (or none): give every top its own before changing one.
        current = [list(_input_shape(layer, k)) for k in range(len(layer.top))]
        del shapes[:]
        for dims in current:
            shapes.add().dim.extend(dims)
    del shapes[j].dim[:]
    shapes[j].dim.extend(shape)


def _dims(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


# ---- synthetic inputs and params --------------------------------------------------------------

INPUT_VALUES_LIMIT = 2**31 - 1  # Caffe's largest blob (INT_MAX values, blob.cpp)
PARAM_STD = 0.05  # params: small gaussian, so activations stay in float32's comfortable range


def _roles(net) -> dict[str, tuple[str, int]]:
    """For each Input top: ("data", 0), ("label", classes), ("binary", 2) or ("index", input_dim)."""
    topology = net.topology
    readers: dict[int, list[tuple[object, int]]] = {}
    for node in topology.layers:
        for k, b in enumerate(node.bottom_ids):
            readers.setdefault(b, []).append((node, k))

    def role_of(blob_id, depth=0):
        for node, k in readers.get(blob_id, []):
            if node.type == "Split" and depth < 8:
                for t in node.top_ids:
                    found = role_of(t, depth + 1)
                    if found[0] != "data":
                        return found
                continue
            # Label-like bottoms must hold valid integers: out-of-range labels are only
            # DCHECKed in Caffe. The layer class says which bottoms those are.
            role = node.cls.bottom_roles.get(k)
            if role == "label":
                scores = net.blobs[node.bottom_ids[0]].shape
                axis_field = node.cls.label_axis_param
                axis = getattr(node.param, axis_field).axis if axis_field else 1
                return "label", scores[axis if axis >= 0 else len(scores) + axis]
            if role == "index":
                return "index", node.param.embed_param.input_dim
            if role == "binary":
                return "binary", 2
        return "data", 0

    return {topology.blob_names[b]: role_of(b) for b in topology.input_ids}


def synthetic_case(
    runnable: RunnableNet,
    phase: str = "TRAIN",
    level: int = 0,
    stages=(),
    solver: str | None = None,
    seed: int = 0,
):
    """A Case for ``runnable``: gaussian data, valid integer labels, small gaussian params.

    The reference engine's own net construction gives the blob and param shapes (one shape
    rule per layer type). Returns (Case, notes).
    """
    import numpy as np

    from harness.case import Case
    from reference_engine.checks import CaffeError, Unsupported
    from reference_engine.net import PHASES, Net

    param = caffe_pb2.NetParameter()
    param.CopyFrom(runnable.param)
    param.state.phase = PHASES[phase]
    param.state.level = level
    param.state.stage.extend(stages)
    notes = []
    rng = np.random.default_rng(seed)
    inputs, params = {}, {}
    try:
        import torch

        net = Net(param, dtype=torch.float32)
    except (CaffeError, Unsupported) as e:
        net = None
        notes.append(
            f"shapes unknown to the reference engine ({getattr(e, 'message', e)}): inputs are "
            "gaussian and Caffe's own fillers set the params"
        )
    if net is not None:
        for name, (role, classes) in _roles(net).items():
            shape = tuple(net.blob(name).shape)
            if role == "data":
                inputs[name] = rng.standard_normal(shape).astype(np.float32)
            else:
                inputs[name] = rng.integers(0, max(classes, 1), size=shape).astype(np.float32)
                notes.append(f"input '{name}' {tuple(shape)}: {role} values drawn in [0, {classes})")
        drawn = {}
        special = {
            i: layer.blob_values(rng, [b.shape for b in layer.blobs])
            for i, layer in enumerate(net.layers)
            if layer.blobs
        }
        for entry in net.topology.params:
            node = net.topology.layers[entry.layer]
            if entry.owner >= 0:  # a shared blob is the owner's memory (Net::ShareWeights)
                drawn[(entry.layer, entry.index)] = drawn[
                    (net.topology.params[entry.owner].layer, net.topology.params[entry.owner].index)
                ]
                continue
            shape = tuple(net.layers[entry.layer].blobs[entry.index].shape)
            if special[entry.layer] is not None:
                drawn[(entry.layer, entry.index)] = special[entry.layer][entry.index]
            else:
                drawn[(entry.layer, entry.index)] = (rng.standard_normal(shape) * PARAM_STD).astype(
                    np.float32
                )
        for i, (node, layer) in enumerate(zip(net.topology.layers, net.layers)):
            if layer.blobs:
                params[node.name] = tuple(drawn[(i, j)] for j in range(len(layer.blobs)))
    else:
        for name, shape in runnable.input_shapes.items():
            # Shapes Caffe itself would refuse get no array: it refuses the net on its own.
            if all(d >= 0 for d in shape) and math.prod(shape) <= INPUT_VALUES_LIMIT:
                inputs[name] = rng.standard_normal(shape).astype(np.float32)
            else:
                notes.append(f"input '{name}' {tuple(shape)}: no values drawn (a shape Caffe refuses)")
    case = Case(
        net=runnable.text,
        solver=solver,
        phase=phase,
        level=level,
        stages=tuple(stages),
        iterations=1 if solver is not None else 0,
        inputs=inputs,
        params=params,
        seed=seed,
    )
    return case, notes
