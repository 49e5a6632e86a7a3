"""The net strategy: NetParameters that Caffe accepts, grown layer by layer on known shapes.

The plan (as Hypothesis's BasicIndexStrategy states its own): a plain draw that shrinks
well first, complications after. The NetState and force_backward come first (they
decide which kinds are valid), then the Input blobs, then a loop on a draw adding one
layer at a time, then the loss layers, and last, behind ``refusals=True``, an optional
mutation that Caffe refuses, so the shrinker can drop it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from hypothesis import assume
from hypothesis import strategies as st

from harness.capabilities import EVERYTHING, Capabilities, within
from harness.errors import HarnessError
from reference_engine import caffe_pb2
from reference_engine.state import layer_included

from .draft import FLOAT32_MAX, NetDraft, ParamRecord
from .draws import BOOLEANS, combinations, eager, integers, maybe, pick, pick_or_none
from .kinds import LAYER_KINDS, LOSS_KINDS, LP, Drawn, LayerKind

LR_MULTS = (None, 0.0, 1.0, 0.5, 2.0)
DECAY_MULTS = (None, 0.0, 1.0, 2.0)
LOSS_WEIGHTS = (1.0, 0.0, 0.5, 2.0)
STAGES = ("a", "b")
# A net's stages, and a rule's stage or not_stage: none first.
STAGE_SETS = eager(st.lists(st.sampled_from(STAGES), unique=True, max_size=2))
# One layer in three carries an include or exclude rule: enough for every rule to meet the
# others, few enough that most drawn layers stay in the net.
RULE_LISTS = (None, None, None, None, "include", "exclude")


def flag_lists(draw, size: int):
    """propagate_down: unset first, else one flag per bottom (mixed lists included)."""
    return pick_or_none(draw, combinations(*[(True, False)] * size))


def weight_lists(draw, size: int):
    """loss_weight on a non-loss layer: unset first, else one weight per top."""
    return pick_or_none(draw, combinations(*[LOSS_WEIGHTS] * size))


def input_shapes(draw, batch: int):
    """A 4-D (batch, c, h, w) or, one time in three, 2-D (batch, c) shape: channels 1-4,
    spatial 1-6. Shrinks towards 4-D with every extent 1, which every kind accepts (2-D does
    not suit Pooling, Convolution or LRN, and a shrink from 2-D to 4-D would shift later draws)."""
    if draw(integers(0, 2)) == 2:
        return (batch, draw(integers(1, 4)))
    return (batch, draw(integers(1, 4)), draw(integers(1, 6)), draw(integers(1, 6)))


def net_states(draw, palette):
    """(phase, level, stages), each at Caffe's default first: TRAIN (where the capabilities
    allow it), 0, none."""
    phase = pick(draw, palette.capabilities.phases)
    if not palette.capabilities.levels_and_stages:
        return phase, 0, ()
    level = pick(draw, (0, 1, 2))
    stages = tuple(draw(STAGE_SETS))
    return phase, level, stages


RULE_CONDITIONS = (
    (None, caffe_pb2.TRAIN, caffe_pb2.TEST),  # phase
    (None, 0, 1, 2),  # min_level
    (None, 0, 1, 2),  # max_level
    (None, *STAGES),  # stage
    (None, *STAGES),  # not_stage
)
PHASE_ONLY_CONDITIONS = (RULE_CONDITIONS[0], (None,), (None,), (None,), (None,))


def state_rules(draw, palette):
    """A NetStateRule: its conditions in one draw, fewest set first."""
    phase, min_level, max_level, stage, not_stage = pick(draw, combinations(*palette.rule_conditions))
    rule = caffe_pb2.NetStateRule(phase=phase, min_level=min_level, max_level=max_level)
    rule.stage.extend([stage] if stage else [])
    rule.not_stage.extend([not_stage] if not_stage else [])
    return rule


def param_spec_lists(draw, draft: NetDraft, palette, kind: LayerKind, shapes, layer_index: int):
    """ParamSpecs for the first few param blobs (often fewer than there are: missing specs
    take Caffe's defaults), lr_mult and decay_mult unset first, a share by name where an
    earlier param has the same shape. A sharer never contradicts the multipliers its
    learnable already has (Caffe refuses that: a refusal of its own). Shrinks towards no specs."""
    specs, pending = [], []  # pending: this layer's sharers so far, for learnable_multipliers
    while len(specs) < len(shapes.params) and draw(BOOLEANS):
        index = len(specs)
        spec = caffe_pb2.ParamSpec()
        owner = None
        if kind.shareable and palette.capabilities.param_sharing:
            owners = [
                r
                for r in reversed(draft.params)
                if r.shape == shapes.params[index]
                and LAYER_KINDS.get(draft.layers[r.layer].type, kind).shareable
            ]
            owner = pick_or_none(draw, owners)
        lr_choices, decay_choices = LR_MULTS, DECAY_MULTS
        if owner is not None:
            lr, decay = draft.learnable_multipliers(owner, pending)
            if lr is not None:
                lr_choices = (None, lr)
            if decay is not None:
                decay_choices = (None, decay)
        if kind.layer.fixed_lr_mult is not None:
            lr_choices = (kind.layer.fixed_lr_mult,)
        lr_mult = pick(draw, lr_choices)
        decay_mult = pick(draw, decay_choices)
        if lr_mult is not None:
            spec.lr_mult = lr_mult
        if decay_mult is not None:
            spec.decay_mult = decay_mult
        if owner is not None:
            if not owner.name:
                owner.name = f"{draft.layers[owner.layer].name}_p{owner.index}"
                draft.param_spec(owner.layer, owner.index).name = owner.name
            spec.name = owner.name
            mode = draw(maybe(caffe_pb2.ParamSpec.STRICT, caffe_pb2.ParamSpec.PERMISSIVE))
            if mode is not None:
                spec.share_mode = mode
            pending.append(
                ParamRecord(layer_index, index, shapes.params[index], spec.name, lr_mult, decay_mult)
            )
        specs.append(spec)
    return specs


def common_fields(draw, draft: NetDraft, palette, kind: LayerKind, drawn, shapes_of):
    """The fields every layer has, each unset first and each only where the capabilities allow
    it: in place, propagate_down, param specs, loss weights, include/exclude rules.
    Returns (in_place, kept, shapes)."""
    capabilities = palette.capabilities
    p, bottoms = drawn.param, drawn.bottoms
    only = bottoms[0] if len(bottoms) == 1 else None
    in_place = False
    if (
        capabilities.in_place
        and kind.layer.may_run_in_place
        and only is not None
        and drawn.num_tops == 1
        and only.role == "data"
        and only.readers == 0
        and not only.aliased
        and not only.weighted
        # Input's Forward leaves its blob alone, so an in-place layer on it runs on its own
        # output again at every solver iteration: Exp would compound to inf.
        and not (kind.type == "Exp" and only.name in draft.input_roles)
    ):
        # Caffe refuses an in-place layer on a blob another layer read before (insert_splits).
        in_place = draw(BOOLEANS)
    if bottoms and capabilities.propagate_down:
        propagate = flag_lists(draw, len(bottoms))
        if propagate is not None:
            # Caffe aborts in Backward when asked for a gradient into labels or indices.
            p.propagate_down.extend(
                False if i in kind.layer.label_bottoms() else flag for i, flag in enumerate(propagate)
            )
    shapes = shapes_of(in_place)
    p.param.extend(param_spec_lists(draw, draft, palette, kind, shapes, len(draft.layers)))
    tainted = not kind.layer.has_backward or any(b.no_backward for b in bottoms)
    # A loss weight sums its top: on float32's lowest value (draft.data_blobs) that overflows.
    tainted = tainted or (drawn.bound is not None and drawn.bound >= FLOAT32_MAX)
    # Nor on what a centring layer made: a weighted sum of centred values is 0 exactly, its
    # gradient back through the centring is 0, and Caffe's is float32 rounding over the spread.
    tainted = tainted or kind.centres or any(b.centred for b in bottoms)
    if drawn.num_tops and not tainted and not in_place:
        if LOSS_KINDS.get(kind.type) is kind:
            weight = draw(maybe(*LOSS_WEIGHTS))
            weights = None if weight is None else [weight]
        elif capabilities.non_loss_weights:
            weights = weight_lists(draw, drawn.num_tops)
        else:
            weights = None
        if weights is not None:
            p.loss_weight.extend(weights)
    kept = True
    which = pick(draw, RULE_LISTS) if capabilities.state_rules else None
    if which is not None:
        getattr(p, which).append(state_rules(draw, palette))
        kept = layer_included(p, draft.state())
    return in_place, kept, shapes


class TwinSource(NamedTuple):
    """A kept layer with params that a later layer may copy (twin_layers)."""

    kind: LayerKind
    drawn: Drawn  # as the kind drew it, before the common fields and names
    bottom_shapes: list  # its bottoms' shapes then: a twin needs them unchanged


def _add(draw, draft: NetDraft, palette, kind: LayerKind, drawn):
    def shapes_of(in_place):
        return draft.shapes_for(drawn.param, drawn.bottoms, drawn.num_tops, in_place)

    fields = LP()
    fields.CopyFrom(drawn.param)  # before the common fields and names: what a twin copies
    in_place, kept, shapes = common_fields(draw, draft, palette, kind, drawn, shapes_of)
    if kept and not in_place and shapes.params and kind.shareable:
        twin = dataclasses.replace(drawn, param=fields)
        draft.twin_sources.append(TwinSource(kind, twin, [b.shape for b in drawn.bottoms]))
    # In place on an Input blob, a layer runs again on its own output at every forward (Input's
    # Forward leaves the blob alone): Sigmoid or TanH then drive it to their fixed point, and its
    # values tie to within rounding, as a centring layer's do (BlobInfo.centred).
    compounds = in_place and drawn.bottoms[0].name in draft.input_roles
    tops = draft.append(
        drawn.param,
        drawn.bottoms,
        drawn.num_tops,
        shapes=shapes,
        in_place=in_place,
        kept=kept,
        positive=drawn.positive,
        bound=drawn.bound,
        no_backward=not kind.layer.has_backward,
        centres=kind.centres or compounds,
    )
    for top in tops:
        top.aliased = top.aliased or kind.aliases or (kind.type == "Concat" and len(drawn.bottoms) == 1)
        top.weighted = any(w != 0 for w in drawn.param.loss_weight)


def twin_layers(draw, draft: NetDraft, palette, sources):
    """A copy of an earlier layer with params, on the same bottoms: a Siamese twin, whose
    param specs then find the original's params as owners of their shape to share by name.
    Without twins, equal param shapes (and so sharing) are rare."""
    source = pick(draw, sources[::-1])
    fields = LP()
    fields.CopyFrom(source.drawn.param)
    _add(draw, draft, palette, source.kind, dataclasses.replace(source.drawn, param=fields))


def layers(draw, draft: NetDraft, palette, train_dropout: bool):
    """One non-loss layer: a bottom by index counting back from the newest blob, then a kind
    of the palette valid for it (the net's focus kind half the time, else any, simplest first,
    ReLU always), then the kind's fields and the common ones; none where no kind of a
    restricted palette fits. Shrinks towards a ReLU on the newest blob.
    One layer in three, where an earlier layer with params still has its bottoms as they were,
    is a twin of it instead (twin_layers)."""
    data = draft.data_blobs()
    readable = {id(b): b.shape for b in data}
    sources = [
        source
        for source in draft.twin_sources
        if [readable.get(id(b)) for b in source.drawn.bottoms] == source.bottom_shapes
    ]
    if sources and draw(integers(0, 2)) == 2:
        twin_layers(draw, draft, palette, sources)
        return
    bottom = data[-1 - draw(integers(0, len(data) - 1))]
    focus = LAYER_KINDS.get(draft.focus)
    if focus is not None and focus.valid(draft, bottom) and draw(BOOLEANS):
        kind = focus
    else:
        # An index into every kind, so that it keeps its meaning when the shrinker changes the
        # layers below (the kinds valid here depend on their shapes and bounds); only where the
        # kind does not fit this bottom, a second draw among those that do.
        kind = pick(draw, palette.layer_kinds)
        if not kind.valid(draft, bottom):
            valid = [k for k in palette.layer_kinds if k.valid(draft, bottom)]
            if not valid:
                return
            kind = pick(draw, valid)
    if not kind.permitted(draft, bottom, train_dropout):
        # Substituted, not filtered out: the list drawn from depends on shapes only, so
        # simplifying the state (force_backward, phase) leaves every drawn index meaning
        # the same kind, and the shrinker can make that simplification.
        kind = substitute(palette.layer_kinds, draft, bottom, train_dropout)
        if kind is None:
            return
    _add(draw, draft, palette, kind, kind.fields(draw, draft, bottom))


def substitute(kinds, draft: NetDraft, bottom, train_dropout: bool) -> LayerKind | None:
    """The first of ``kinds`` valid and permitted on ``bottom``: ReLU (or EuclideanLoss) where
    the palette holds every kind, these being always both; None where none is."""
    return next(
        (k for k in kinds if k.valid(draft, bottom) and k.permitted(draft, bottom, train_dropout)), None
    )


def loss_layers(draw, draft: NetDraft, palette):
    """One loss layer (or Accuracy) of the palette on a blob that may be backpropagated through,
    by index counting back from the newest (the net's focus kind half the time, where it is a
    loss kind that fits); none where no loss kind of a restricted palette fits it. Shrinks
    towards EuclideanLoss on the newest such blob."""
    eligible = [b for b in draft.data_blobs() if b.num_axes >= 1 and not b.no_backward]
    if not eligible:
        # Everything readable is downstream of a layer without backward: give the loss its own input.
        eligible = [draft.add_input((draft.blobs[0].shape[0], 2), "data")]
    bottom = eligible[-1 - draw(integers(0, len(eligible) - 1))]
    valid = [k for k in palette.loss_kinds if k.valid(draft, bottom)]
    if not valid:
        return
    focus = LOSS_KINDS.get(draft.focus)  # only a net drawn for one loss type's sake has one
    if focus in valid and draw(BOOLEANS):
        kind = focus
    else:
        kind = pick(draw, valid)
    if not kind.permitted(draft, bottom, False):
        kind = substitute(palette.loss_kinds, draft, bottom, False)  # substituted, as in layers()
        if kind is None:
            return
    _add(draw, draft, palette, kind, kind.fields(draw, draft, bottom))


# ---- refusals: drawn last, so they shrink away -----------------------------------------------


def _kept_layer(draw, draft):
    kept = [layer for layer, k in zip(draft.layers, draft.kept) if k]
    return kept[-1 - draw(integers(0, len(kept) - 1))] if kept else None


def _refuse_propagate_down_count(draw, draft):
    layer = _kept_layer(draw, draft)
    if layer is None:
        return None
    del layer.propagate_down[:]
    layer.propagate_down.extend([True] * (len(layer.bottom) + 1))
    return "propagate_down param must be specified either 0 or bottom_size times"


def _refuse_in_place_after_reader(draw, draft):
    read = [b for b in draft.data_blobs() if b.readers > 0]
    if not read:
        return None
    blob = read[-1 - draw(integers(0, len(read) - 1))]
    draft.append(caffe_pb2.LayerParameter(type="ReLU"), [blob], 1, in_place=True, kept=False)
    return f"Top blob '{blob.name}' produced by multiple sources."


def _refuse_too_many_params(draw, draft):
    layer = _kept_layer(draw, draft)
    if layer is None:
        return None
    count = sum(1 for r in draft.params if draft.layers[r.layer] is layer)
    while len(layer.param) <= count:
        layer.param.add()
    return f"Too many params specified for layer {layer.name}"


def _owns_its_name(draft, record):
    """A param that is not itself a sharer, on a layer whose specs may take any lr_mult."""
    layer = draft.layers[record.layer]
    kind = LAYER_KINDS.get(layer.type)
    if kind is None or kind.layer.fixed_lr_mult is not None or layer.include or layer.exclude:
        return False
    name = layer.param[record.index].name if record.index < len(layer.param) else ""
    return name in ("", f"{layer.name}_p{record.index}")


def _refuse_shared_lr_mismatch(draw, draft):
    owners = [r for r in draft.params if _owns_its_name(draft, r)]
    if not owners:
        return None
    owner = owners[-1 - draw(integers(0, len(owners) - 1))]
    layer = draft.layers[owner.layer]
    spec = draft.param_spec(owner.layer, owner.index)
    spec.name = spec.name or f"{layer.name}_p{owner.index}"
    if not spec.HasField("lr_mult"):
        spec.lr_mult = 1.0
    copy = caffe_pb2.LayerParameter()
    copy.CopyFrom(layer)
    del copy.propagate_down[:], copy.loss_weight[:], copy.param[:]
    for i in range(owner.index + 1):
        copy.param.add()
    copy.param[owner.index].name = spec.name
    copy.param[owner.index].lr_mult = spec.lr_mult + 1.0
    bottoms = [next(b for b in draft.blobs if b.name == name) for name in layer.bottom]
    draft.append(copy, bottoms, len(layer.top), kept=False)
    return f"Shared param '{spec.name}' has mismatched lr_mult."


def _refuse_include_and_exclude(draw, draft):
    layer = draft.layers[-1 - draw(integers(0, len(draft.layers) - 1))]
    layer.include.add()
    layer.exclude.add()
    return "Specify either include rules or exclude rules; not both."


def _abort_backward_not_implemented(draw, draft):
    draft.force_backward = True
    blob = draft.data_blobs()[-1]
    draft.append(caffe_pb2.LayerParameter(type="Threshold"), [blob], 1, kept=False)
    return "Not Implemented Yet"


class Refusal(NamedTuple):
    """A mutation Caffe refuses (or aborts on), and the capabilities it needs."""

    mutate: Callable  # (draw, draft) -> the text of Caffe's fatal line, or None: no place for it
    fits: Callable[[Capabilities], bool]  # whether a net within these capabilities may carry it


REFUSALS = {
    "propagate_down_count": Refusal(_refuse_propagate_down_count, lambda c: c.propagate_down),
    "in_place_after_reader": Refusal(
        _refuse_in_place_after_reader, lambda c: c.in_place and c.allows_type("ReLU")
    ),
    "too_many_params": Refusal(_refuse_too_many_params, lambda c: True),
    "shared_lr_mismatch": Refusal(_refuse_shared_lr_mismatch, lambda c: c.param_sharing),
    "include_and_exclude": Refusal(_refuse_include_and_exclude, lambda c: c.state_rules),
    "backward_not_implemented": Refusal(
        _abort_backward_not_implemented,
        lambda c: c.force_backward and c.models("backward") and c.allows_type("Threshold"),
    ),
}


# ---- what a net may hold: the capabilities of the engine under test --------------------------


@dataclass(frozen=True)
class Palette:
    """What the net strategy may draw within one Capabilities. The kinds keep the registries'
    order (simplest first), so that with every kind allowed each draw means what it always did."""

    capabilities: Capabilities
    layer_kinds: tuple[LayerKind, ...]
    loss_kinds: tuple[LayerKind, ...]
    focus: st.SearchStrategy  # a layer type drawn for half the layers of a net, or None
    rule_conditions: tuple  # RULE_CONDITIONS, or only the phase where levels and stages are off
    refusals: tuple[str, ...]  # the names of REFUSALS that fit


@functools.cache
def palette_for(capabilities: Capabilities) -> Palette:
    """The Palette of ``capabilities``; a layer type the generator does not know is refused."""
    known = (*LAYER_KINDS, *LOSS_KINDS, "Input")
    allowed = within(known, capabilities.layer_types, "layer_types")
    layer_kinds = tuple(LAYER_KINDS[t] for t in allowed if t in LAYER_KINDS)
    focus = eager(st.none())
    if layer_kinds:
        focus = focus | st.sampled_from(tuple(sorted(k.type for k in layer_kinds)))
    return Palette(
        capabilities,
        layer_kinds,
        tuple(LOSS_KINDS[t] for t in allowed if t in LOSS_KINDS),
        focus,
        RULE_CONDITIONS if capabilities.levels_and_stages else PHASE_ONLY_CONDITIONS,
        tuple(
            sorted(
                name
                for name, refusal in REFUSALS.items()
                if capabilities.refusals and refusal.fits(capabilities)
            )
        ),
    )


def require_drawn_type(palette: Palette, layer_type: str | None) -> None:
    """Refuse a ``layer_type`` that no net of the palette can hold."""
    drawn = ("Input", *(k.type for k in palette.layer_kinds), *(k.type for k in palette.loss_kinds))
    if layer_type is not None and layer_type not in drawn:
        raise HarnessError(f"layer_type={layer_type!r}: not among the layer types drawn ({', '.join(drawn)})")


@st.composite
def another(draw, add, odds: int):
    """One element of a growing collection, with the draw that decided to add it: 0 stops
    (a shrunk collection is short), 1..odds call ``add(draw)``. Being one span, like an element
    of Hypothesis's ListStrategy, an element can be deleted without shifting the rest.
    Build one per collection and draw it again for each element: Hypothesis builds and
    validates a composite strategy at each call, at about the cost of a layer's draws."""
    if draw(integers(0, odds)) == 0:
        return False
    add(draw)
    return True


def extra_inputs(draw, draft: NetDraft, batch: int):
    """Another data Input of the same batch size."""
    draft.add_input(input_shapes(draw, batch), positive=draw(BOOLEANS))


@st.composite
def net_drafts(
    draw,
    max_layers: int = 8,
    max_losses: int = 3,
    refusals=False,
    train_dropout: bool = False,
    capabilities: Capabilities = EVERYTHING,
    layer_type: str | None = None,
):
    """The NetDraft behind ``nets()``; ``cases()`` reads its Input roles. ``refusals``: False,
    True (every name in REFUSALS) or a collection of those names, of which only those that fit
    ``capabilities`` are drawn. ``layer_type``: every draft keeps a layer of this type (see
    ``nets()``). Shrinks as ``nets()`` does."""
    palette = palette_for(capabilities)
    require_drawn_type(palette, layer_type)
    phase, level, stages = net_states(draw, palette)
    draft = NetDraft(phase=phase, level=level, stages=stages)
    # One net in two: force_backward computes every bottom diff, so every backward rule is
    # compared, not only those on a path from a learnable param; it keeps Accuracy, ArgMax,
    # Threshold, Embed and InfogainLoss out.
    draft.force_backward = capabilities.force_backward and draw(BOOLEANS)
    # Swarm-style focus: in half the nets one layer type is drawn for half the layers, so that
    # a kind's own options meet each other far more often than among forty kinds drawn evenly.
    # Shrinks to no focus. A draft drawn for one layer type's sake has that focus in every net.
    draft.focus = draw(palette.focus) if layer_type is None else layer_type
    # Half the nets take tied data values (tie-breaking rules meet equal values); shrinks to
    # distinct ones. Drawn before the layers, which it keeps mean-subtracting kinds out of.
    draft.ties = draw(BOOLEANS)
    batch = draw(integers(1, 3))
    draft.add_input(input_shapes(draw, batch), positive=draw(BOOLEANS))
    # usually one data input
    more_inputs = another(lambda d: extra_inputs(d, draft, batch), 1)
    while len(draft.inputs) < 3 and draw(more_inputs):
        pass
    more_layers = another(lambda d: layers(d, draft, palette, train_dropout), 6)
    while palette.layer_kinds and len(draft.layers) < max_layers and draw(more_layers):
        pass
    if palette.loss_kinds:
        loss_layers(draw, draft, palette)
        losses = 1
        more_losses = another(lambda d: loss_layers(d, draft, palette), 1)
        while losses < max_losses and draw(more_losses):
            losses += 1
    names = [name for name in palette.refusals if refusals is True or name in (refusals or ())]
    if names and draw(integers(0, 9)) == 9:  # about one net in ten
        name = pick(draw, names)
        expected = REFUSALS[name].mutate(draw, draft)
        if expected is not None:
            draft.refusal = name
            draft.refusal_message = expected
    if layer_type is not None:
        # Not by construction: a kind fits only some bottoms (Pooling a 4-D blob, Embed an index
        # input) and some states (Dropout no TRAIN net), so the focus puts it in most drafts,
        # not all; the others are rejected here.
        assume(draft.keeps_type(layer_type))
    return draft


@st.composite
def nets(
    draw,
    max_layers: int = 8,
    max_losses: int = 3,
    refusals=False,
    train_dropout: bool = False,
    capabilities: Capabilities = EVERYTHING,
    layer_type: str | None = None,
):
    """NetParameters that Caffe accepts, built layer by layer on known blob shapes.

    Input layers first (batch 1-3, channels 1-4, spatial 1-6; 2-D and 4-D), then up to
    ``max_layers`` layers, each drawn from the kinds valid for its bottoms, then one to
    ``max_losses`` loss layers. The NetState (phase, level, stages) is written into
    ``state``; force_backward is set where drawn. With ``refusals=True`` (or a collection of
    names from REFUSALS) about one net in ten carries one mutation Caffe refuses or aborts
    on; Dropout appears in TRAIN only with ``train_dropout=True``. Only what ``capabilities``
    allows is drawn (harness/capabilities.py). With ``layer_type`` (a type that capabilities
    allows, or "Input") every net keeps a layer of that type in its NetState: that type is the
    focus of every net, and a net without it is rejected.

    Shrinks towards fewer layers, a chain (each bottom is the newest blob), the first layer
    kind in LAYER_KINDS (ReLU), EuclideanLoss, TRAIN, no force_backward, no refusal and
    Caffe's defaults for every optional field."""
    drafts = net_drafts(max_layers, max_losses, refusals, train_dropout, capabilities, layer_type)
    return draw(drafts).to_proto()
