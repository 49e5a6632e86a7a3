"""A net under construction: blobs with their shapes, layers, readers.

The generator grows a NetDraft one layer at a time. Shapes are never restated here:
``layer_shapes`` sets the reference engine's own layer class up on Blobs of the
bottom shapes (Layer::SetUp) and reads back the top and param shapes. A shape bug in
the engine still shows, because the worker reports the shapes Caffe computed.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import torch

from reference_engine import caffe_pb2
from reference_engine.blob import Blob
from reference_engine.layer import layer_class

PHASES = {"TRAIN": caffe_pb2.TRAIN, "TEST": caffe_pb2.TEST}

# What an Input blob holds; cases.py draws each role's values (listed below).
#   data      distinct values, spaced apart and away from 0 (no ties, no kinks)
#   positive  data values, all > 0 (recorded in input_roles only; the blob's role stays data)
#   label     integer class indices in [0, classes)
#   index     integer indices in [0, classes) for Embed
#   binary    0 or 1 (ContrastiveLoss's similarity)
#   unit      values in [0, 1] (SigmoidCrossEntropyLoss's targets)
#   infogain  a nonnegative K x K matrix (InfogainLoss's H)
FLOAT32_MAX = 3.4028234663852886e38  # FLT_MAX: what an empty MAX pooling window holds, negated
ROLES = ("data", "label", "index", "binary", "unit", "infogain")


@dataclass
class BlobInfo:
    """One named blob version the next layer may read."""

    name: str
    shape: tuple[int, ...]
    role: str = "data"
    classes: int = 0  # label/index roles: values lie in [0, classes)
    positive: bool = False  # every value > 0 (after Sigmoid, Exp, Softmax ...)
    bound: float = 1.0  # a rough upper bound on |value|, to keep float32 well-conditioned
    no_backward: bool = False  # downstream of a layer whose backward Caffe does not implement
    readers: int = 0  # layers that read this version (an in-place layer needs 0)
    producer: int = -1  # index into NetDraft.layers; -1 for Input blobs
    aliased: bool = False  # shares memory with another blob (Flatten, Split ...): no in-place layer
    weighted: bool = False  # a non-loss layer gave it a loss weight: no in-place layer
    # Downstream of a layer that subtracts a mean it computes (LayerKind.centres): its values
    # can agree to within rounding across a whole group (MVN of two values gives -c and c),
    # so a second centring layer would leave only Caffe's float32 rounding, amplified.
    centred: bool = False

    @property
    def overflows(self) -> bool:
        """Whether values reach float32's range, where arithmetic on them overflows."""
        return self.bound >= FLOAT32_MAX

    @property
    def num_axes(self) -> int:
        return len(self.shape)

    def count(self, start: int = 0, end: int | None = None) -> int:
        return math.prod(self.shape[start:end])


@dataclass
class LayerShapes:
    tops: list[tuple[int, ...]]
    params: list[tuple[int, ...]]


def layer_shapes(param, bottom_shapes, num_tops: int, phase: str, in_place: bool = False) -> LayerShapes:
    """Layer::SetUp of the reference layer class on Blobs of the given shapes."""
    own = caffe_pb2.LayerParameter()
    own.CopyFrom(param)
    own.phase = PHASES[phase]
    # Names and wiring do not change shapes; leaving them out lets the shrinker's replays hit the cache.
    own.ClearField("name")
    own.ClearField("bottom")
    own.ClearField("top")
    own.ClearField("include")
    own.ClearField("exclude")
    shapes = _cached_shapes(
        own.SerializeToString(deterministic=True),
        tuple(map(tuple, bottom_shapes)),
        num_tops,
        in_place,
    )
    return LayerShapes(list(shapes[0]), list(shapes[1]))


@functools.lru_cache(maxsize=4096)
def _cached_shapes(serialized: bytes, bottom_shapes, num_tops: int, in_place: bool):
    own = caffe_pb2.LayerParameter.FromString(serialized)
    layer = layer_class(own.type)(own, own.phase, torch.float64, "cpu")
    bottom = [Blob(shape, dtype=torch.float64) for shape in bottom_shapes]
    top = [Blob(dtype=torch.float64) for _ in range(num_tops)]
    if in_place:
        top[0] = bottom[0]
    layer.setup(bottom, top)
    return tuple(tuple(t.shape) for t in top), tuple(tuple(b.shape) for b in layer.blobs)


@dataclass
class ParamRecord:
    """A param blob some later layer may share by name."""

    layer: int
    index: int
    shape: tuple[int, ...]
    name: str = ""
    lr_mult: float | None = None
    decay_mult: float | None = None


@dataclass
class NetDraft:
    phase: str = "TRAIN"
    level: int = 0
    stages: tuple[str, ...] = ()
    force_backward: bool = False
    inputs: list = field(default_factory=list)  # Input LayerParameters, written first
    layers: list = field(default_factory=list)  # every other LayerParameter, in order
    blobs: list[BlobInfo] = field(default_factory=list)  # readable blob versions, oldest first
    params: list[ParamRecord] = field(default_factory=list)
    input_roles: dict[str, tuple[str, int]] = field(default_factory=dict)  # Input top: (role, classes)
    kept: list[bool] = field(default_factory=list)  # per layer: does the NetState keep it?
    focus: str | None = None  # a layer type drawn more often in this net (nets.layers), or None
    ties: bool = False  # data inputs hold a few exact values (cases.tied_values), not distinct ones
    refusal: str | None = None  # the refusal drawn (nets.REFUSALS), or None
    refusal_message: str = ""  # the text Caffe's fatal line is expected to hold
    # Kept layers with params that a later layer may copy as a twin (nets.TwinSource).
    twin_sources: list = field(default_factory=list)

    # ---- reading ---------------------------------------------------------------------------

    def data_blobs(self) -> list[BlobInfo]:
        """Blobs a generic layer may read, oldest first (bottoms count back from the newest).
        A blob that may hold float32's lowest value (``overflows``) is read by none: any sum or
        product of it overflows in Caffe's float32 and not in the float64 reference, a question
        of precision, never of a rule."""
        return [b for b in self.blobs if b.role == "data" and not b.overflows]

    def newest_first(self, blobs) -> list[BlobInfo]:
        return list(reversed(list(blobs)))

    def has_type(self, type_name: str) -> bool:
        return any(layer.type == type_name for layer in self.layers)

    def keeps_type(self, type_name: str) -> bool:
        """Whether the net its NetState keeps holds a layer of this type (Input: every net)."""
        kept = [layer for layer, k in zip(self.layers, self.kept) if k]
        return any(layer.type == type_name for layer in [*self.inputs, *kept])

    # ---- growing ---------------------------------------------------------------------------

    def add_input(self, shape, role: str = "data", classes: int = 0, positive: bool = False) -> BlobInfo:
        """An Input layer with one top; Input layers are written before every other layer.
        A ``positive`` data input holds only values > 0 (cases.py draws it as role "positive")."""
        assert role in ROLES, role
        name = f"{role}{len(self.inputs)}"
        layer = caffe_pb2.LayerParameter(name=f"input{len(self.inputs)}", type="Input", top=[name])
        layer.input_param.shape.add().dim.extend(shape)
        self.inputs.append(layer)
        self.input_roles[name] = ("positive" if positive else role, classes)
        # cases.py steps data values by max(0.011, 0.6 / count) from 0.05 up (data_values).
        bound = 0.05 + max(0.011 * math.prod(shape), 0.6) if role == "data" else float(max(classes, 1))
        blob = BlobInfo(name, tuple(shape), role, classes, positive=positive, bound=bound)
        self.blobs.append(blob)
        return blob

    def reuse_input(self, shape, role: str, classes: int = 0) -> BlobInfo | None:
        """An Input blob of this role, shape and class count made before, if any."""
        for blob in self.blobs:
            if (
                blob.producer == -1
                and blob.role == role
                and blob.shape == tuple(shape)
                and blob.classes == classes
            ):
                return blob
        return None

    def name_layer(self, type_name: str) -> str:
        return f"{type_name.lower()}{len(self.layers)}"

    def shapes_for(self, param, bottoms, num_tops: int, in_place: bool = False) -> LayerShapes:
        return layer_shapes(param, [b.shape for b in bottoms], num_tops, self.phase, in_place)

    def append(
        self,
        param,
        bottoms,
        num_tops: int,
        *,
        shapes: LayerShapes | None = None,
        in_place: bool = False,
        kept: bool = True,
        positive: bool = False,
        bound: float | None = None,
        no_backward: bool = False,
        centres: bool = False,
    ) -> list[BlobInfo]:
        """Add a layer reading ``bottoms``; returns the new top blobs (none for a filtered layer).

        ``param`` carries the type and type-specific fields; names, bottoms and tops are set here.
        A layer the NetState filters out (``kept`` False) reads nothing and makes nothing, as
        in Net::FilterNet, so no later layer may read its tops (refusals append their layers
        this way too: they are never set up). ``shapes`` saves a second SetUp.
        """
        param.name = self.name_layer(param.type)
        del param.bottom[:]
        del param.top[:]
        param.bottom.extend(b.name for b in bottoms)
        if in_place:
            param.top.append(bottoms[0].name)
        elif num_tops == 1:
            param.top.append(param.name)
        else:
            param.top.extend(f"{param.name}_{j}" for j in range(num_tops))
        index = len(self.layers)
        self.layers.append(param)
        self.kept.append(kept)
        if not kept:
            return []
        shapes = shapes or self.shapes_for(param, bottoms, num_tops, in_place)
        for p, shape in enumerate(shapes.params):
            spec = param.param[p] if p < len(param.param) else None
            self.params.append(
                ParamRecord(
                    index,
                    p,
                    shape,
                    spec.name if spec else "",
                    spec.lr_mult if spec is not None and spec.HasField("lr_mult") else None,
                    spec.decay_mult if spec is not None and spec.HasField("decay_mult") else None,
                )
            )
        bound = max((b.bound for b in bottoms), default=1.0) if bound is None else bound
        no_backward = no_backward or any(b.no_backward for b in bottoms)
        centred = centres or any(b.centred for b in bottoms)
        if in_place:
            blob = bottoms[0]
            blob.shape, blob.positive, blob.bound, blob.producer = (
                shapes.tops[0],
                positive,
                bound,
                index,
            )
            blob.no_backward, blob.centred = no_backward, centred
            return [blob]
        for b in bottoms:
            b.readers += 1
        tops = [
            BlobInfo(
                name,
                shape,
                "data",
                positive=positive,
                bound=bound,
                no_backward=no_backward,
                centred=centred,
                producer=index,
            )
            for name, shape in zip(param.top, shapes.tops)
        ]
        self.blobs.extend(tops)
        return tops

    def learnable_multipliers(self, record: ParamRecord, pending=()) -> tuple[float | None, float | None]:
        """The lr_mult and decay_mult the learnable behind ``record`` has so far: for each, the
        first set among the specs that share its name, in net order (Net::AppendParam; a later
        spec must then match it), ``pending`` (the specs of the layer being drawn) last. None
        where no spec set it yet."""
        same = [r for r in (*self.params, *pending) if r is record or (record.name and r.name == record.name)]
        lr = next((r.lr_mult for r in same if r.lr_mult is not None), None)
        decay = next((r.decay_mult for r in same if r.decay_mult is not None), None)
        return lr, decay

    def param_spec(self, layer: int, index: int):
        """The ParamSpec of param blob ``index`` of a layer, adding empty specs up to it."""
        param = self.layers[layer]
        while len(param.param) <= index:
            param.param.add()
        return param.param[index]

    # ---- writing ---------------------------------------------------------------------------

    def state(self):
        return caffe_pb2.NetState(phase=PHASES[self.phase], level=self.level, stage=self.stages)

    def to_proto(self):
        """The NetParameter: Input layers first, then the rest; the NetState drawn with it."""
        net = caffe_pb2.NetParameter(name="generated")
        if self.force_backward:
            net.force_backward = True
        net.state.phase = PHASES[self.phase]
        if self.level:
            net.state.level = self.level
        net.state.stage.extend(self.stages)
        net.layer.extend(self.inputs)
        net.layer.extend(self.layers)
        return net
