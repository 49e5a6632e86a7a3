"""The wiring of a net, as Net::Init builds it, without any tensor.

Caffe: Net::Init, AppendBottom, AppendTop, AppendParam (src/caffe/net.cpp). The walk
is layer by layer in Caffe's order, so that the first CHECK to fail is the one
Caffe would hit first. A ``setup`` hook lets the numeric net run Layer::SetUp at
the point Caffe does; without it, the param-blob counts and loss weights come from
the layer classes, so a net can be analysed without knowing any shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from . import caffe_pb2
from .blob import shape_string
from .checks import check, check_eq, check_le, fatal
from .layer import layer_class

# Caffe's name for a top that a layer gets without declaring it (AutoTopBlobs: Net::AppendTop).
AUTOMATIC_TOP = "(automatic)"


@dataclass
class LayerNode:
    index: int
    param: caffe_pb2.LayerParameter  # the net's copy: splits inserted, phase filled in
    cls: type
    bottom_ids: list[int] = field(default_factory=list)
    top_ids: list[int] = field(default_factory=list)
    in_place: list[bool] = field(default_factory=list)
    loss_weights: list[float] = field(default_factory=list)  # effective, after SetUp
    param_lr_mults: list[float] = field(default_factory=list)  # the net copy's specs (default 1)
    net_param_ids: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.param.name

    @property
    def type(self) -> str:
        return self.param.type

    @property
    def propagate_down(self) -> list[bool] | None:
        return list(self.param.propagate_down) if self.param.propagate_down else None


@dataclass
class ParamEntry:
    """One param blob of one layer (Net::params_), and the learnable param it belongs to."""

    layer: int
    index: int
    display_name: str
    owner: int  # net param id of the owner, or -1: this entry owns its blob
    learnable: int


@dataclass
class Learnable:
    """One entry of Net::learnable_params_ with its merged multipliers."""

    net_param_id: int
    lr_mult: float
    decay_mult: float
    has_lr_mult: bool
    has_decay_mult: bool


@dataclass
class SetupInfo:
    """What Layer::SetUp tells the net: loss weights, param shapes, the layer's own param copy."""

    loss_weights: list[float]
    param_shapes: list[list[int] | None]
    own_param: caffe_pb2.LayerParameter


@dataclass
class Topology:
    name: str
    phase: int
    layers: list[LayerNode]
    blob_names: list[str]
    input_ids: list[int]
    outputs: list[str]  # sorted by name, as Caffe iterates its std::set
    params: list[ParamEntry]
    learnables: list[Learnable]
    force_backward: bool

    def blob_id(self, name: str) -> int:
        """The last blob of that name (Net::blob_names_index_ keeps the last)."""
        return max(i for i, n in enumerate(self.blob_names) if n == name)


SetupHook = Callable[[LayerNode, list[int], list[int]], SetupInfo]


def shape_free_setup(node: LayerNode, bottom_ids, top_ids) -> SetupInfo:
    own = node.cls.own_param(node.param)
    count = node.cls.param_blob_count(own, len(bottom_ids))
    return SetupInfo(node.cls.default_loss_weights(own, len(top_ids)), [None] * count, own)


def build_topology(param, setup: SetupHook = shape_free_setup) -> Topology:
    """Wire the layers of a filtered, split-inserted NetParameter."""
    phase = param.state.phase
    blob_names: list[str] = []
    name_to_blob: dict[str, int] = {}
    available: set[str] = set()
    layers: list[LayerNode] = []
    input_ids: list[int] = []
    params: list[ParamEntry] = []
    learnables: list[Learnable] = []
    param_name_to_id: dict[str, int] = {}
    param_shapes: list[list[int] | None] = []

    def new_blob(name: str) -> int:
        blob_names.append(name)
        return len(blob_names) - 1

    for layer_id, layer_param in enumerate(param.layer):
        lp = caffe_pb2.LayerParameter()
        lp.CopyFrom(layer_param)
        if not lp.HasField("phase"):
            lp.phase = phase
        if lp.propagate_down:
            check_eq(
                len(lp.propagate_down),
                len(lp.bottom),
                "layer_param.propagate_down_size()",
                "layer_param.bottom_size()",
                "propagate_down param must be specified either 0 or bottom_size times ",
            )
        node = LayerNode(layer_id, lp, layer_class(lp.type))

        for k, blob in enumerate(lp.bottom):
            if blob not in available:
                fatal(f"Unknown bottom blob '{blob}' (layer '{lp.name}', bottom index {k})")
            node.bottom_ids.append(name_to_blob[blob])
            available.discard(blob)
        for j, blob in enumerate(lp.top):
            if j < len(lp.bottom) and blob == lp.bottom[j]:
                node.top_ids.append(name_to_blob[blob])
                node.in_place.append(True)
            elif blob in name_to_blob:
                fatal(f"Top blob '{blob}' produced by multiple sources.")
            else:
                name_to_blob[blob] = new_blob(blob)
                node.top_ids.append(name_to_blob[blob])
                node.in_place.append(False)
            available.add(blob)
            if lp.type == "Input":
                input_ids.append(node.top_ids[-1])
        if node.cls.auto_top_blobs:
            # Anonymous tops: not in the name map, so neither outputs nor usable as bottoms.
            needed = max(node.cls.min_top_blobs, node.cls.exact_num_top_blobs)
            while len(node.top_ids) < needed:
                node.top_ids.append(new_blob(AUTOMATIC_TOP))
                node.in_place.append(False)

        info = setup(node, node.bottom_ids, node.top_ids)
        node.loss_weights = list(info.loss_weights)

        check_le(
            len(lp.param),
            len(info.param_shapes),
            "param_size",
            "num_param_blobs",
            f"Too many params specified for layer {lp.name}",
        )
        default_spec = caffe_pb2.ParamSpec()
        node.param_lr_mults = [
            (lp.param[p] if p < len(lp.param) else default_spec).lr_mult
            for p in range(len(info.param_shapes))
        ]
        for p, shape in enumerate(info.param_shapes):
            node.net_param_ids.append(len(params))
            params.append(
                _append_param(
                    layers,
                    node,
                    info.own_param,
                    p,
                    len(params),
                    shape,
                    param_shapes,
                    param_name_to_id,
                    params,
                    learnables,
                )
            )
            param_shapes.append(shape)
        layers.append(node)

    return Topology(
        name=param.name,
        phase=phase,
        layers=layers,
        blob_names=blob_names,
        input_ids=input_ids,
        outputs=sorted(available),
        params=params,
        learnables=learnables,
        force_backward=param.force_backward,
    )


def _append_param(
    layers, node, own_param, p, net_param_id, shape, param_shapes, name_to_id, params, learnables
) -> ParamEntry:
    """Net::AppendParam: a new learnable param, or a share of a named one seen before.

    It reads the layer's own copy of its LayerParameter (BatchNorm's added specs count here).
    """
    spec = own_param.param[p] if p < len(own_param.param) else caffe_pb2.ParamSpec()
    name = own_param.param[p].name if p < len(own_param.param) else ""
    display = name or str(p)
    if not name or name not in name_to_id:
        if name:
            name_to_id[name] = net_param_id
        learnables.append(
            Learnable(
                net_param_id,
                spec.lr_mult,
                spec.decay_mult,
                spec.HasField("lr_mult"),
                spec.HasField("decay_mult"),
            )
        )
        return ParamEntry(node.index, p, display, -1, len(learnables) - 1)

    owner_id = name_to_id[name]
    owner = params[owner_id]
    owner_layer = layers[owner.layer].name
    owner_shape = param_shapes[owner_id]
    if shape is not None and owner_shape is not None:
        if p < len(own_param.param) and spec.share_mode == caffe_pb2.ParamSpec.PERMISSIVE:
            check_eq(
                _count(shape),
                _count(owner_shape),
                "this_blob->count()",
                "owner_blob->count()",
                f"Cannot share param '{name}' owned by layer '{owner_layer}' with layer "
                f"'{node.name}'; count mismatch.  Owner layer param shape is "
                f"{shape_string(owner_shape)}; sharing layer shape is {shape_string(shape)}",
            )
        else:
            check(
                list(shape) == list(owner_shape),
                "this_blob->shape() == owner_blob->shape()",
                f"Cannot share param '{name}' owned by layer '{owner_layer}' with layer "
                f"'{node.name}'; shape mismatch.  Owner layer param shape is "
                f"{shape_string(owner_shape)}; sharing layer expects shape {shape_string(shape)}",
            )
    learnable = learnables[owner.learnable]
    if spec.HasField("lr_mult"):
        if learnable.has_lr_mult:
            check_eq(
                spec.lr_mult,
                learnable.lr_mult,
                "param_spec->lr_mult()",
                "params_lr_[learnable_param_id]",
                f"Shared param '{name}' has mismatched lr_mult.",
            )
        else:
            learnable.has_lr_mult, learnable.lr_mult = True, spec.lr_mult
    if spec.HasField("decay_mult"):
        if learnable.has_decay_mult:
            check_eq(
                spec.decay_mult,
                learnable.decay_mult,
                "param_spec->decay_mult()",
                "params_weight_decay_[learnable_param_id]",
                f"Shared param '{name}' has mismatched decay_mult.",
            )
        else:
            learnable.has_decay_mult, learnable.decay_mult = True, spec.decay_mult
    return ParamEntry(node.index, p, display, owner_id, owner.learnable)


def _count(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
