"""The layer kinds the net strategy can draw: one drawing function per Caffe type string.

Each kind is registered by Caffe's type string, like the engine's layers. A kind draws
the type-specific fields and any extra bottoms for a chosen first bottom; the net
strategy (nets.py) then draws the fields every layer has (in place, propagate_down,
param specs, loss weights, rules), all inside the one span that holds the layer.
Bounds are computed from the bottom shapes, so no kind needs ``assume``.
``LAYER_KINDS`` and ``LOSS_KINDS`` list kinds simplest first: ReLU, always valid,
comes first.

Every optional field is drawn with the absent value first (``maybe``), so a shrunk
net differs from Caffe's defaults only where the failure needs it. A kind is a plain
function of ``draw``, and every choice among computed options is an index into them:
building a strategy object per draw (a fresh ``sampled_from(list)``, a fresh
``@composite``) costs Hypothesis a validation each time, which was most of a case's
generation time; the strategies drawn from here are cached by Hypothesis or by us.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import strategies as st

from reference_engine import caffe_pb2
from reference_engine.layer import layer_class

from .draft import FLOAT32_MAX, BlobInfo, NetDraft
from .draws import BOOLEANS, integers, maybe, pick, pick_or_none

LP = caffe_pb2.LayerParameter


@dataclass
class Drawn:
    """One drawn layer before the common fields: its param, bottoms and what its tops hold."""

    param: caffe_pb2.LayerParameter
    bottoms: list[BlobInfo]
    num_tops: int = 1
    positive: bool = False
    bound: float | None = None  # None: the largest bottom bound


@dataclass(frozen=True)
class LayerKind:
    type: str
    fields: Callable[..., Drawn]  # fields(draw, draft, bottom)
    valid: Callable[[NetDraft, BlobInfo], bool]
    aliases: bool = False  # tops share memory with the bottom: no in-place layer on them
    shareable: bool = True  # its params may be shared by name
    # Subtracts a mean it computes: on tied inputs an output can be the mean itself, which
    # float32 Caffe leaves a rounding error away from 0, on either side of a kink downstream.
    # Its outputs are such near-ties themselves (BlobInfo.centred): not drawn on them either.
    centres: bool = False

    # What Caffe's layer type is (in place, backward, label bottoms, fixed lr_mult): read from
    # the reference engine's class, where every fact about a type lives.
    @property
    def layer(self):
        return layer_class(self.type)

    def permitted(self, draft: NetDraft, bottom: BlobInfo, train_dropout: bool) -> bool:
        """Whether the net's state and the bottom's history let this kind in (its shape
        validity is ``valid``)."""
        cls = self.layer
        if draft.force_backward and not cls.has_backward:
            return False
        if self.centres and (draft.ties or bottom.centred):
            return False
        if draft.force_backward and any(cls.allow_force_backward(i) for i in cls.label_bottoms()):
            return False  # force_backward would ask for the gradient Caffe refuses to give
        # Dropout in TRAIN draws Caffe's own random mask, which the reference cannot replay yet.
        return not (cls.random_in_train and draft.phase == "TRAIN" and not train_dropout)


LAYER_KINDS: dict[str, LayerKind] = {}
LOSS_KINDS: dict[str, LayerKind] = {}


def layer_kind(type_name: str, valid=lambda draft, bottom: True, loss: bool = False, **options):
    """Register a kind's drawing function under Caffe's type string; a duplicate is refused."""

    def decorate(fn):
        registry = LOSS_KINDS if loss else LAYER_KINDS
        if type_name in registry:
            raise ValueError(f"layer kind {type_name!r} is already registered")
        registry[type_name] = LayerKind(type_name, fn, valid, **options)
        return fn

    return decorate


def axes(bottom: BlobInfo, default: int = 1):
    """Axis choices: unset (Caffe's ``default``) where that axis exists, then each axis, then -1."""
    return _axes(bottom.num_axes, default)


@functools.cache
def _axes(n: int, default: int):
    return st.sampled_from(([None] if default < n else []) + list(range(n)) + ([-1] if n > 0 else []))


def canonical(axis, bottom: BlobInfo, default: int = 1) -> int:
    axis = default if axis is None else axis
    return axis + bottom.num_axes if axis < 0 else axis


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def n_axes(*counts):
    return lambda draft, bottom: bottom.num_axes in counts


def at_least_axes(k):
    return lambda draft, bottom: bottom.num_axes >= k


def newest_first(blobs, bottom):
    """Candidate partners, newest first, the chosen bottom itself leading (a shrunk partner)."""
    rest = [b for b in reversed(blobs) if b is not bottom]
    return ([bottom] if bottom in blobs else []) + rest


# ---- neurons: one bottom, the same shape -------------------------------------------------


@layer_kind("ReLU")
def relu_layers(draw, draft, bottom):
    """ReLU; negative_slope unset first. Shrinks towards a plain ReLU."""
    p = LP(type="ReLU")
    slope = draw(maybe(0.1, 0.5))
    if slope is not None:
        p.relu_param.negative_slope = slope
    return Drawn(p, [bottom])


@layer_kind("Sigmoid")
def sigmoid_layers(draw, draft, bottom):
    """Sigmoid (no fields). Its output is positive while the input stays moderate."""
    return Drawn(LP(type="Sigmoid"), [bottom], positive=bottom.bound <= 8, bound=1.0)


@layer_kind("TanH")
def tanh_layers(draw, draft, bottom):
    """TanH (no fields)."""
    return Drawn(LP(type="TanH"), [bottom], bound=1.0)


@layer_kind("AbsVal")
def absval_layers(draw, draft, bottom):
    """AbsVal (no fields; Caffe refuses it in place)."""
    return Drawn(LP(type="AbsVal"), [bottom])


@layer_kind("BNLL")
def bnll_layers(draw, draft, bottom):
    """BNLL: log(1 + exp(x)), positive (no fields)."""
    return Drawn(LP(type="BNLL"), [bottom], positive=bottom.bound <= 8, bound=bottom.bound + 1)


@layer_kind("ELU")
def elu_layers(draw, draft, bottom):
    """ELU; alpha unset first."""
    p = LP(type="ELU")
    alpha = draw(maybe(0.5, 2.0))
    if alpha is not None:
        p.elu_param.alpha = alpha
    return Drawn(p, [bottom], bound=max(bottom.bound, alpha or 1.0))


@layer_kind("Swish")
def swish_layers(draw, draft, bottom):
    """Swish (Caffe master only); beta unset first."""
    p = LP(type="Swish")
    beta = draw(maybe(0.5, 2.0))
    if beta is not None:
        p.swish_param.beta = beta
    return Drawn(p, [bottom])


@layer_kind("Clip")
def clip_layers(draw, draft, bottom):
    """Clip (Caffe master only); min and max are required, so they are always set."""
    p = LP(type="Clip")
    p.clip_param.min = pick(draw, (-1.0, -0.5, 0.0))
    p.clip_param.max = pick(draw, (1.0, 0.5, 2.0))
    return Drawn(p, [bottom], bound=min(bottom.bound, 2.0))


@layer_kind("Power")
def power_layers(draw, draft, bottom):
    """Power: (shift + scale x)^power. A fractional power is offered only on a positive
    bottom, with shift 1, so the base stays >= 1; large powers only on a small bottom.
    Shrinks towards power, scale and shift unset (the identity)."""
    p = LP(type="Power")
    powers = [2.0] if bottom.bound <= 30 else []
    powers += [3.0] if bottom.bound <= 8 else []
    powers += [0.5] if bottom.positive else []
    power = draw(maybe(*powers, 0.0))
    scale = draw(maybe(0.5, 2.0) if power == 0.5 else maybe(0.5, -1.0, 2.0))
    if power == 0.5:
        shift = 1.0  # keeps the base away from 0, where the derivative of sqrt blows up
    else:
        shift = draw(maybe(1.0, -0.5))
    for name, value in (("power", power), ("scale", scale), ("shift", shift)):
        if value is not None:
            setattr(p.power_param, name, value)
    base = abs(shift or 0.0) + abs(1.0 if scale is None else scale) * bottom.bound
    return Drawn(
        p,
        [bottom],
        positive=power == 0.5,
        bound=max(1.0, base) ** (1.0 if power is None else power),
    )


@layer_kind("Exp", valid=lambda draft, bottom: bottom.bound <= 4)
def exp_layers(draw, draft, bottom):
    """Exp: base^(shift + scale x), only on a bottom small enough not to overflow.
    Shrinks towards base, scale and shift unset (e^x)."""
    p = LP(type="Exp")
    for name, values in (("base", (2.0, 0.5)), ("scale", (0.5, -1.0)), ("shift", (-1.0,))):
        value = draw(maybe(*values))
        if value is not None:
            setattr(p.exp_param, name, value)
    return Drawn(p, [bottom], positive=True, bound=math.exp(1 + bottom.bound))


@layer_kind("Log", valid=lambda draft, bottom: bottom.positive or bottom.bound <= 8)
def log_layers(draw, draft, bottom):
    """Log: log_base(shift + scale x) with a positive argument: on a positive bottom every
    field is unset first; elsewhere shift is set above scale times the bottom's bound."""
    p = LP(type="Log")
    for name, values in (("base", (2.0, 10.0)), ("scale", (0.5, 2.0))):
        value = draw(maybe(*values))
        if value is not None:
            setattr(p.log_param, name, value)
    scale = p.log_param.scale if p.log_param.HasField("scale") else 1.0
    if bottom.positive:
        shift = draw(maybe(1.0))
    else:
        shift = float(math.ceil(scale * bottom.bound)) + 1.0
    if shift is not None:
        p.log_param.shift = shift
    return Drawn(p, [bottom], bound=bottom.bound + 10)


@layer_kind("Dropout")
def dropout_layers(draw, draft, bottom):
    """Dropout (TEST phase unless the caller asks for TRAIN); dropout_ratio unset first."""
    p = LP(type="Dropout")
    ratio = draw(maybe(0.2, 0.7))
    if ratio is not None:
        p.dropout_param.dropout_ratio = ratio
    return Drawn(p, [bottom], bound=bottom.bound / (1 - (0.5 if ratio is None else ratio)))


@layer_kind("Threshold")
def threshold_layers(draw, draft, bottom):
    """Threshold: 1 where x > threshold. Caffe has no backward, so it never sits under a loss."""
    p = LP(type="Threshold")
    threshold = draw(maybe(0.5, -0.5))
    if threshold is not None:
        p.threshold_param.threshold = threshold
    return Drawn(p, [bottom], bound=1.0)


# ---- per-channel and normalisation layers -------------------------------------------------


def _operand_partners(draft, bottom):
    """(blob, axis) pairs a two-bottom Scale or Bias can use: blob's shape is bottom's from axis."""
    pairs = []
    for blob in newest_first(draft.data_blobs(), None):
        if blob is bottom or blob.num_axes == 0:
            continue
        for axis in range(bottom.num_axes - blob.num_axes + 1):
            if bottom.shape[axis : axis + blob.num_axes] == blob.shape:
                pairs.append((blob, axis))
                break
    return pairs


def _scale_or_bias(draw, draft, bottom, type_name):
    p = LP(type=type_name)
    fields = p.scale_param if type_name == "Scale" else p.bias_param
    partner = pick_or_none(draw, _operand_partners(draft, bottom))
    bottoms = [bottom]
    if partner is not None:
        blob, axis = partner
        bottoms.append(blob)
        if axis != 1:
            fields.axis = axis
    elif bottom.num_axes >= 1:
        axis = draw(axes(bottom))
        if axis is not None:
            fields.axis = axis
        start = canonical(axis, bottom)
        room = bottom.num_axes - start
        num_axes = draw(maybe(0, -1, *range(2, room + 1)) if room >= 1 else st.sampled_from((0, -1)))
        if num_axes is not None:
            fields.num_axes = num_axes
    if type_name == "Scale" and draw(maybe(True)):
        fields.bias_term = True
    bound = bottom.bound * (bottoms[1].bound if len(bottoms) > 1 else 1.0) + 1
    return Drawn(p, bottoms, positive=False, bound=bound)


@layer_kind("Scale", valid=at_least_axes(1))
def scale_layers(draw, draft, bottom):
    """Scale: by a param blob or by a second bottom shaped as the bottom's axes from ``axis``.
    Shrinks towards one bottom, axis and num_axes unset, no bias."""
    return _scale_or_bias(draw, draft, bottom, "Scale")


@layer_kind("Bias", valid=at_least_axes(1))
def bias_layers(draw, draft, bottom):
    """Bias: by a param blob or by a second bottom. Shrinks as Scale does."""
    return _scale_or_bias(draw, draft, bottom, "Bias")


@layer_kind("PReLU", valid=at_least_axes(2))
def prelu_layers(draw, draft, bottom):
    """PReLU; channel_shared unset first."""
    p = LP(type="PReLU")
    if draw(maybe(True)):
        p.prelu_param.channel_shared = True
    return Drawn(p, [bottom])


# Normalising a group of two values gives -1 and 1 whatever the values: the exact gradient
# is 0, and what float32 Caffe returns is its rounding divided by the group's small spread.
# So no variance of a group of two is normalised (BatchNorm's group: a channel across the
# batch and the spatial axes; MVN's: each row of num() x dim).
PAIR = 2


@layer_kind("BatchNorm", valid=at_least_axes(2), shareable=False, centres=True)
def batch_norm_layers(draw, draft, bottom):
    """BatchNorm; use_global_stats, moving_average_fraction and eps unset first.
    Its params are statistics: every ParamSpec it gets carries lr_mult 0, as Caffe demands.
    Over channel groups of two values (PAIR) it uses the stored statistics."""
    p = LP(type="BatchNorm")
    for name, values in (
        ("use_global_stats", (True, False)),
        ("moving_average_fraction", (0.9,)),
        ("eps", (1e-3,)),
    ):
        value = draw(maybe(*values))
        if value is not None:
            setattr(p.batch_norm_param, name, value)
    if bottom.count() // bottom.shape[1] == PAIR:
        p.batch_norm_param.use_global_stats = True
    return Drawn(p, [bottom], bound=bottom.bound + math.sqrt(bottom.count()) + 1)


@layer_kind("LRN", valid=n_axes(4))
def lrn_layers(draw, draft, bottom):
    """LRN on a 4-D bottom; every field unset first (local_size 5, ACROSS_CHANNELS)."""
    p = LP(type="LRN")
    for name, values in (
        ("local_size", (3, 1)),
        ("alpha", (0.5,)),
        ("beta", (0.5, 1.0)),
        ("k", (2.0,)),
        ("norm_region", (caffe_pb2.LRNParameter.WITHIN_CHANNEL,)),
    ):
        value = draw(maybe(*values))
        if value is not None:
            setattr(p.lrn_param, name, value)
    return Drawn(p, [bottom], positive=bottom.positive)


@layer_kind("MVN", valid=lambda draft, bottom: 1 <= bottom.num_axes <= 4, centres=True)
def mvn_layers(draw, draft, bottom):
    """MVN; normalize_variance, across_channels and eps unset first. Over rows of two values
    (PAIR) only the mean is taken out."""
    p = LP(type="MVN")
    for name, values in (
        ("normalize_variance", (False,)),
        ("across_channels", (True,)),
        ("eps", (1e-3,)),
    ):
        value = draw(maybe(*values))
        if value is not None:
            setattr(p.mvn_param, name, value)
    # MVN reads num() and channels() (absent axes are 1).
    rows = bottom.shape[0] * (1 if p.mvn_param.across_channels else bottom.count(1, 2))
    if bottom.count() // rows == PAIR:
        p.mvn_param.normalize_variance = False
    return Drawn(p, [bottom], bound=2 * bottom.bound + math.sqrt(bottom.count()))


@layer_kind("Softmax", valid=at_least_axes(1))
def softmax_layers(draw, draft, bottom):
    """Softmax along an axis (unset first: 1)."""
    p = LP(type="Softmax")
    axis = draw(axes(bottom))
    if axis is not None:
        p.softmax_param.axis = axis
    return Drawn(p, [bottom], positive=bottom.bound <= 4, bound=1.0)


# ---- layers with weights -------------------------------------------------------------------


@layer_kind("InnerProduct", valid=at_least_axes(1))
def inner_product_layers(draw, draft, bottom):
    """InnerProduct with 1-4 outputs; bias_term, axis and transpose unset first."""
    p = LP(type="InnerProduct")
    p.inner_product_param.num_output = draw(integers(1, 4))
    axis = draw(axes(bottom))
    if axis is not None:
        p.inner_product_param.axis = axis
    if draw(maybe(False)) is False:
        p.inner_product_param.bias_term = False
    if draw(maybe(True)):
        p.inner_product_param.transpose = True
    fan_in = bottom.count(canonical(axis, bottom))
    return Drawn(p, [bottom], bound=bottom.bound * math.sqrt(fan_in) + 1)


def _group_and_outputs(draw, channels):
    group = draw(maybe(*[g for g in divisors(channels) if g > 1]))
    g = group or 1
    num_output = g * draw(integers(1, max(1, 4 // g)))
    return group, num_output


def _kernel(draw, low, limits):
    """A square kernel first (one draw, within both limits), else separate height and width."""
    if draw(BOOLEANS):
        return [draw(integers(low, limit)) for limit in limits]
    return [draw(integers(low, min(limits)))] * 2


@layer_kind("Convolution", valid=n_axes(4))
def convolution_layers(draw, draft, bottom):
    """2-D Convolution; the kernel fits the padded, dilated input by construction.
    Shrinks towards one output, no group, no pad, stride or dilation, kernel 1."""
    _, channels, height, width = bottom.shape
    p = LP(type="Convolution")
    c = p.convolution_param
    group, c.num_output = _group_and_outputs(draw, channels)
    if group:
        c.group = group
    pad = draw(maybe(1, 2)) or 0
    dilation = draw(maybe(2)) or 1
    limits = [max(1, min(5, (size + 2 * pad - 1) // dilation + 1)) for size in (height, width)]
    kernel = _kernel(draw, 1, limits)
    if kernel[0] == kernel[1]:
        c.kernel_size.append(kernel[0])
    else:
        c.kernel_h, c.kernel_w = kernel
    if pad:
        c.pad.append(pad)
    stride = draw(maybe(2, 3))
    if stride:
        c.stride.append(stride)
    if dilation != 1:
        c.dilation.append(dilation)
    if draw(maybe(False)) is False:
        c.bias_term = False
    fan_in = channels // (group or 1) * kernel[0] * kernel[1]
    return Drawn(p, [bottom], bound=bottom.bound * math.sqrt(fan_in) + 1)


@layer_kind("Deconvolution", valid=n_axes(4))
def deconvolution_layers(draw, draft, bottom):
    """2-D Deconvolution; pad is bounded so the output keeps at least one pixel.
    Shrinks towards one output, no group, kernel 1, no stride, pad or dilation."""
    _, channels, height, width = bottom.shape
    p = LP(type="Deconvolution")
    c = p.convolution_param
    group, c.num_output = _group_and_outputs(draw, channels)
    if group:
        c.group = group
    kernel = draw(integers(1, 4))
    c.kernel_size.append(kernel)
    stride = draw(maybe(2, 3))
    if stride:
        c.stride.append(stride)
    dilation = draw(maybe(2))
    if dilation:
        c.dilation.append(dilation)
    span = (stride or 1) * (min(height, width) - 1) + (dilation or 1) * (kernel - 1)
    pad = draw(integers(0, min(2, span // 2)))
    if pad:
        c.pad.append(pad)
    if draw(maybe(False)) is False:
        c.bias_term = False
    fan_in = channels * kernel * kernel
    return Drawn(p, [bottom], bound=bottom.bound * math.sqrt(fan_in) + 1)


@layer_kind("Embed")
def embed_layers(draw, draft, bottom):
    """Embed, reading a fresh (or reused) Input of indices rather than the chosen bottom.
    Shrinks towards one output, input_dim 1, a 1-D index blob, bias kept."""
    p = LP(type="Embed")
    p.embed_param.num_output = draw(integers(1, 4))
    p.embed_param.input_dim = draw(integers(1, 5))
    if draw(maybe(False)) is False:
        p.embed_param.bias_term = False
    batch = draft.blobs[0].shape[0]
    shape = pick(draw, ((batch,), (batch, 2)))
    index = draft.reuse_input(shape, "index", p.embed_param.input_dim)
    if index is None or draw(BOOLEANS):
        index = draft.add_input(shape, "index", p.embed_param.input_dim)
    return Drawn(p, [index], bound=2.0)


@layer_kind("Parameter", aliases=True)
def parameter_layers(draw, draft, bottom):
    """Parameter: no bottom; its top is its param blob, shaped (batch, c) or (batch, c, h, w)."""
    p = LP(type="Parameter")
    batch = draft.blobs[0].shape[0]
    rest = pick(draw, (1, 3))
    shape = [batch] + [draw(integers(1, 4)) for _ in range(rest)]
    p.parameter_param.shape.dim.extend(shape)
    return Drawn(p, [], bound=1.0)


# ---- pooling and shape layers --------------------------------------------------------------


@layer_kind("Pooling", valid=n_axes(4))
def pooling_layers(draw, draft, bottom):
    """MAX or AVE Pooling on a 4-D bottom; kernel <= padded input and pad < kernel by
    construction. STOCHASTIC is left out: Caffe has no CPU backward for it.
    Shrinks towards MAX, no pad, a square kernel 1, stride unset, CEIL rounding, not global."""
    inputs = [b for b in draft.data_blobs() if b.name in draft.input_roles and b.num_axes == 4]
    if inputs and draw(integers(0, 2)) == 2:
        # One time in three on a data Input: in a case drawn with tied values (cases.py) its
        # windows then hold equal maxima, the only place MAX's tie-breaking shows.
        bottom = pick(draw, inputs[::-1])
    _, _, height, width = bottom.shape
    p = LP(type="Pooling")
    q = p.pooling_param
    pool = draw(maybe(caffe_pb2.PoolingParameter.AVE))
    if pool is not None:
        q.pool = pool
    pad = draw(maybe(1, 2)) or 0
    kernel = _kernel(draw, pad + 1, [size + 2 * pad for size in (height, width)])
    stride = draw(maybe(2, 3))
    if draw(maybe(caffe_pb2.PoolingParameter.FLOOR)) is not None:
        q.round_mode = caffe_pb2.PoolingParameter.FLOOR
    # Drawn last, after the window it replaces, so that "global" is no shortcut for the shrinker.
    if draw(maybe(True)):
        q.global_pooling = True  # Caffe then refuses any kernel, pad or stride
        return Drawn(p, [bottom], positive=bottom.positive and pool is None)
    if kernel[0] == kernel[1]:
        q.kernel_size = kernel[0]
    else:
        q.kernel_h, q.kernel_w = kernel
    if pad:
        q.pad = pad
    if stride:
        q.stride = stride
    positive = bottom.positive and pool is None
    empty = any(
        _has_empty_window(size, k, stride or 1, pad, q.round_mode != caffe_pb2.PoolingParameter.FLOOR)
        for size, k in zip((height, width), kernel)
    )
    # An empty MAX window yields -FLT_MAX (pooling_layer.cpp's initial maximum): the top is then
    # compared as it is, and read by no later layer (NetDraft.data_blobs).
    return Drawn(p, [bottom], positive=positive, bound=FLOAT32_MAX if empty and pool is None else None)


def _has_empty_window(size: int, kernel: int, stride: int, pad: int, ceil: bool) -> bool:
    """Whether Caffe's pooled grid on an axis has a window wholly outside the input: only
    unpadded CEIL rounding with a stride above the kernel can (with a pad, Caffe drops such a
    last window itself)."""
    if pad or not ceil:
        return False
    pooled = -(-(size - kernel) // stride) + 1
    return (pooled - 1) * stride >= size


@layer_kind("Flatten", valid=at_least_axes(1), aliases=True)
def flatten_layers(draw, draft, bottom):
    """Flatten; axis and end_axis unset first (1 and -1)."""
    p = LP(type="Flatten")
    axis = pick(draw, ([None] if bottom.num_axes >= 2 else []) + list(range(bottom.num_axes)))
    if axis is not None:
        p.flatten_param.axis = axis
    start = canonical(axis, bottom)
    end_axis = draw(maybe(*range(start, bottom.num_axes)))
    if end_axis is not None:
        p.flatten_param.end_axis = end_axis
    return Drawn(p, [bottom], positive=bottom.positive)


@layer_kind("Reshape", valid=at_least_axes(1), aliases=True)
def reshape_layers(draw, draft, bottom):
    """Reshape to a few shapes of the same count, with 0 (copy) and -1 (infer) dims."""
    p = LP(type="Reshape")
    rest = bottom.count(1)
    shapes = [[0, -1], [-1], [0, -1, 1, 1]] + [[0, d, -1] for d in divisors(rest) if 1 < d < rest]
    p.reshape_param.shape.dim.extend(pick(draw, shapes))
    return Drawn(p, [bottom], positive=bottom.positive)


@layer_kind("Tile", valid=at_least_axes(1))
def tile_layers(draw, draft, bottom):
    """Tile along an axis (unset first: 1); tiles is required, 1-3."""
    p = LP(type="Tile")
    axis = draw(axes(bottom))
    if axis is not None:
        p.tile_param.axis = axis
    p.tile_param.tiles = draw(integers(1, 3))
    return Drawn(p, [bottom], positive=bottom.positive)


@layer_kind("Reduction", valid=at_least_axes(1))
def reduction_layers(draw, draft, bottom):
    """Reduction over the tail from ``axis`` (unset first: 0, a scalar top).
    Shrinks towards SUM over everything with coeff unset. On a centred bottom (BlobInfo.centred)
    only ASUM or SUMSQ: a SUM or MEAN of centred values is 0 exactly, and Caffe's float32 result
    rounding (the sign a kink downstream then takes, the gradient back through the centring)."""
    p = LP(type="Reduction")
    R = caffe_pb2.ReductionParameter
    squares = [R.SUMSQ] if bottom.bound <= 10 else []
    if bottom.centred:
        op = pick(draw, [R.ASUM, *squares])
    else:
        op = draw(maybe(R.ASUM, R.MEAN, *squares))
    if op is not None:
        p.reduction_param.operation = op
    axis = draw(axes(bottom, default=0))
    if axis is not None:
        p.reduction_param.axis = axis
    coeff = draw(maybe(0.5, -2.0))
    if coeff is not None:
        p.reduction_param.coeff = coeff
    reduced = bottom.count(canonical(axis, bottom, default=0))
    value = bottom.bound**2 if op == R.SUMSQ else bottom.bound
    return Drawn(p, [bottom], bound=value * reduced * abs(coeff or 1.0) + 1)


@layer_kind("ArgMax", valid=at_least_axes(1))
def argmax_layers(draw, draft, bottom):
    """ArgMax (Caffe has no backward, so it never sits under a loss); top_k <= the
    searched extent. Shrinks towards top_k 1 over count(1), out_max_val unset."""
    p = LP(type="ArgMax")
    axis = draw(maybe(*range(bottom.num_axes)))
    if axis is not None:
        p.argmax_param.axis = axis
    extent = bottom.count(1) if axis is None else bottom.shape[axis]
    top_k = draw(maybe(*range(2, min(extent, 3) + 1)))
    if top_k is not None:
        p.argmax_param.top_k = top_k
    if draw(maybe(True)):
        p.argmax_param.out_max_val = True
    return Drawn(p, [bottom], bound=max(bottom.bound, float(extent)))


@layer_kind("Crop", valid=at_least_axes(1))
def crop_layers(draw, draft, bottom):
    """Crop to a second bottom no larger from ``axis`` on (the bottom itself first).
    Shrinks towards the identity crop: the bottom twice, axis and offsets unset."""
    n = bottom.num_axes
    p = LP(type="Crop")
    axis = pick(draw, ([None] if n > 2 else []) + list(range(n)))
    start = 2 if axis is None else axis
    partners = [
        b
        for b in newest_first(draft.data_blobs(), bottom)
        if b.num_axes == n and all(b.shape[i] <= bottom.shape[i] for i in range(start, n))
    ]
    partner = pick(draw, partners)
    if axis is not None:
        p.crop_param.axis = axis
    margins = [bottom.shape[i] - partner.shape[i] for i in range(start, n)]
    how = pick(draw, ("unset", "one", "each"))
    if how == "one":
        p.crop_param.offset.append(draw(integers(0, min(margins))))
    elif how == "each":
        p.crop_param.offset.extend(draw(integers(0, m)) for m in margins)
    return Drawn(p, [bottom, partner], positive=bottom.positive)


def _more_bottoms(draw, bottom, candidates, required: int, most: int):
    """Extra bottoms picked by index among candidates (newest first); each extra is one draw."""
    chosen = [bottom]
    while len(chosen) < most and candidates and (len(chosen) <= required or draw(integers(0, 2)) > 0):
        chosen.append(pick(draw, candidates))
    return chosen


@layer_kind("Concat", valid=at_least_axes(1))
def concat_layers(draw, draft, bottom):
    """Concat along an axis (unset first: 1) of blobs equal in every other axis; one
    bottom is allowed (Caffe then shares it). Shrinks towards one bottom."""
    p = LP(type="Concat")
    axis = draw(axes(bottom))
    if axis is not None:
        p.concat_param.axis = axis
    a = canonical(axis, bottom)
    candidates = [
        b
        for b in newest_first(draft.data_blobs(), bottom)
        if b.num_axes == bottom.num_axes
        and all(b.shape[i] == bottom.shape[i] for i in range(b.num_axes) if i != a)
    ]
    bottoms = _more_bottoms(draw, bottom, candidates, required=0, most=3)
    return Drawn(p, bottoms, positive=all(b.positive for b in bottoms), bound=max(b.bound for b in bottoms))


@layer_kind("Eltwise")
def eltwise_layers(draw, draft, bottom):
    """Eltwise over 2-3 blobs of one shape (the bottom itself may come twice). MAX only
    over distinct blobs, PROD only over small ones. Shrinks towards SUM of two, no coeff."""
    E = caffe_pb2.EltwiseParameter
    p = LP(type="Eltwise")
    candidates = [b for b in newest_first(draft.data_blobs(), bottom) if b.shape == bottom.shape]
    bottoms = _more_bottoms(draw, bottom, candidates, required=1, most=3)
    ops = []
    if math.prod(b.bound for b in bottoms) <= 1e4:
        ops.append(E.PROD)
    if len({id(b) for b in bottoms}) == len(bottoms):
        ops.append(E.MAX)
    op = draw(maybe(*ops))
    if op is not None:
        p.eltwise_param.operation = op
    bound = sum(b.bound for b in bottoms)
    if op in (None, E.SUM):
        coeff = draw(_coeff_lists(len(bottoms)))
        if coeff is not None:
            p.eltwise_param.coeff.extend(coeff)
            bound *= 2
    elif op == E.PROD:
        # The unstable gradient divides by the bottom: offered only where no value is 0.
        if all(b.positive for b in bottoms) and draw(maybe(False)) is False:
            p.eltwise_param.stable_prod_grad = False
        bound = math.prod(b.bound for b in bottoms)
    return Drawn(p, bottoms, bound=bound)


@functools.cache
def _coeff_lists(size: int):
    """Eltwise SUM coefficients: unset first, else one per bottom."""
    return st.none() | st.lists(st.sampled_from((1.0, -1.0, 0.5, 2.0)), min_size=size, max_size=size)


@functools.cache
def _slice_points(extent: int, count: int):
    return st.lists(st.integers(1, extent - 1), min_size=count, max_size=count, unique=True)


def _sliceable(draft, bottom):
    return any(d >= 2 for d in bottom.shape)


@layer_kind("Slice", valid=_sliceable)
def slice_layers(draw, draft, bottom):
    """Slice into 2-3 tops along an axis of extent >= 2 (unset first: 1); slice points
    unset first where the extent divides evenly. Shrinks towards two equal halves."""
    p = LP(type="Slice")
    choices = [None] if bottom.num_axes > 1 and bottom.shape[1] >= 2 else []
    choices += [a for a in range(bottom.num_axes) if bottom.shape[a] >= 2]
    axis = pick(draw, choices)
    if axis is not None:
        p.slice_param.axis = axis
    extent = bottom.shape[canonical(axis, bottom)]
    tops = draw(integers(2, min(3, extent)))
    if extent % tops or draw(BOOLEANS):
        points = draw(_slice_points(extent, tops - 1))
        p.slice_param.slice_point.extend(sorted(points))
    return Drawn(p, [bottom], num_tops=tops, positive=bottom.positive)


@layer_kind("Split", aliases=True)
def split_layers(draw, draft, bottom):
    """An explicit Split with 1-3 tops (Caffe inserts its own where a blob has two readers)."""
    return Drawn(LP(type="Split"), [bottom], num_tops=draw(integers(1, 3)), positive=bottom.positive)


@layer_kind("Silence")
def silence_layers(draw, draft, bottom):
    """Silence: reads 1-2 blobs, makes none."""
    bottoms = _more_bottoms(draw, bottom, newest_first(draft.data_blobs(), bottom), required=0, most=2)
    return Drawn(LP(type="Silence"), bottoms, num_tops=0)


# ---- losses and the accuracy, drawn after the loop --------------------------------------------


def _label_blob(draw, draft, shape, role, classes):
    """A label Input: one made before with the same shape and classes first (a shared reader)."""
    label = draft.reuse_input(shape, role, classes)
    if label is None or draw(BOOLEANS):
        label = draft.add_input(shape, role, classes)
    return label


def _normalization(draw, p):
    mode = draw(
        maybe(
            caffe_pb2.LossParameter.FULL,
            caffe_pb2.LossParameter.BATCH_SIZE,
            caffe_pb2.LossParameter.NONE,
        )
    )
    if mode is not None:
        p.loss_param.normalization = mode


def _partner_blob(draw, draft, bottom):
    """The second operand of a two-blob loss: a fresh Input of the bottom's shape first,
    else another blob of that shape (both bottoms then get a gradient)."""
    partners = [
        b
        for b in newest_first(draft.data_blobs(), None)
        if b.shape == bottom.shape and b is not bottom and not b.no_backward
    ]
    partner = pick_or_none(draw, partners)
    if partner is None:
        partner = draft.add_input(bottom.shape, "data")
    return partner


@layer_kind("EuclideanLoss", loss=True, valid=at_least_axes(1))
def euclidean_loss_layers(draw, draft, bottom):
    """EuclideanLoss against a fresh Input of the same shape first, else another blob of
    that shape (both bottoms then get a gradient)."""
    return Drawn(LP(type="EuclideanLoss"), [bottom, _partner_blob(draw, draft, bottom)])


def _class_axis_ok(draft, bottom):
    return bottom.num_axes >= 2


@layer_kind("SoftmaxWithLoss", loss=True, valid=_class_axis_ok)
def softmax_with_loss_layers(draw, draft, bottom):
    """SoftmaxWithLoss over an axis >= 1 (unset first: 1), labels shaped as the other axes.
    Shrinks towards axis, ignore_label and normalization unset."""
    p = LP(type="SoftmaxWithLoss")
    axis = draw(maybe(*range(2, bottom.num_axes)))
    if axis is not None:
        p.softmax_param.axis = axis
    a = 1 if axis is None else axis
    classes = bottom.shape[a]
    ignore = draw(maybe(*range(classes)))
    if ignore is not None:
        p.loss_param.ignore_label = ignore
    _normalization(draw, p)
    label = _label_blob(draw, draft, bottom.shape[:a] + bottom.shape[a + 1 :], "label", classes)
    return Drawn(p, [bottom, label])


@layer_kind("SigmoidCrossEntropyLoss", loss=True, valid=at_least_axes(1))
def sigmoid_cross_entropy_loss_layers(draw, draft, bottom):
    """SigmoidCrossEntropyLoss against targets in [0, 1] of the bottom's shape."""
    p = LP(type="SigmoidCrossEntropyLoss")
    _normalization(draw, p)
    return Drawn(p, [bottom, _label_blob(draw, draft, bottom.shape, "unit", 0)])


@layer_kind("HingeLoss", loss=True, valid=at_least_axes(1))
def hinge_loss_layers(draw, draft, bottom):
    """HingeLoss, labels per instance in [0, count(1)); norm unset first (L1)."""
    p = LP(type="HingeLoss")
    if draw(maybe(caffe_pb2.HingeLossParameter.L2)) is not None:
        p.hinge_loss_param.norm = caffe_pb2.HingeLossParameter.L2
    label = _label_blob(draw, draft, bottom.shape[:1], "label", bottom.count(1))
    return Drawn(p, [bottom, label])


@layer_kind(
    "MultinomialLogisticLoss",
    loss=True,
    valid=lambda draft, bottom: bottom.positive,
)
def multinomial_logistic_loss_layers(draw, draft, bottom):
    """MultinomialLogisticLoss on a positive bottom (probabilities), labels per instance."""
    label = _label_blob(draw, draft, bottom.shape[:1], "label", bottom.count(1))
    return Drawn(LP(type="MultinomialLogisticLoss"), [bottom, label])


@layer_kind("InfogainLoss", loss=True, valid=_class_axis_ok)
def infogain_loss_layers(draw, draft, bottom):
    """InfogainLoss over axis 1, with H (K x K, nonnegative) as a third Input bottom."""
    p = LP(type="InfogainLoss")
    classes = bottom.shape[1]
    label = _label_blob(draw, draft, bottom.shape[:1] + bottom.shape[2:], "label", classes)
    infogain = _label_blob(draw, draft, (classes, classes), "infogain", classes)
    return Drawn(p, [bottom, label, infogain])


def _contrastive_ok(draft, bottom):
    return 2 <= bottom.num_axes <= 4 and all(d == 1 for d in bottom.shape[2:])


@layer_kind("ContrastiveLoss", loss=True, valid=_contrastive_ok)
def contrastive_loss_layers(draw, draft, bottom):
    """ContrastiveLoss between the bottom and a fresh Input (or another blob) of its shape,
    with a 0/1 similarity per instance. Shrinks towards margin and legacy_version unset."""
    p = LP(type="ContrastiveLoss")
    partner = _partner_blob(draw, draft, bottom)
    margin = draw(maybe(0.5, 2.0))
    if margin is not None:
        p.contrastive_loss_param.margin = margin
    if draw(maybe(True)):
        p.contrastive_loss_param.legacy_version = True
    similar = _label_blob(draw, draft, bottom.shape[:1], "binary", 2)
    return Drawn(p, [bottom, partner, similar])


@layer_kind("Accuracy", loss=True, valid=_class_axis_ok)
def accuracy_layers(draw, draft, bottom):
    """Accuracy (no backward, not a loss: it reads the scores beside the losses).
    Shrinks towards top_k, axis and ignore_label unset."""
    p = LP(type="Accuracy")
    classes = bottom.shape[1]
    top_k = draw(maybe(*range(2, min(classes, 3) + 1)))
    if top_k is not None:
        p.accuracy_param.top_k = top_k
    ignore = draw(maybe(*range(classes)))
    if ignore is not None:
        p.accuracy_param.ignore_label = ignore
    label = _label_blob(draw, draft, bottom.shape[:1] + bottom.shape[2:], "label", classes)
    return Drawn(p, [bottom, label])
