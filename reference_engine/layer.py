"""The Layer base class and the registry of layer types.

Caffe: include/caffe/layer.hpp (Layer::SetUp, Forward, Backward, CheckBlobCounts,
SetLossWeights) and include/caffe/layer_factory.hpp (LayerRegistry).

A subclass fills in hooks (``layer_setup``, ``reshape``, ``forward``, ``backward``)
and declarative contracts (``exact_num_bottom_blobs`` ...). ``setup`` and
``forward_layer`` are never overridden: they own the order, as in Caffe.
"""

from .checks import check_eq, check_ge, check_le
from .semantics import MASTER

LAYERS: dict[str, type["Layer"]] = {}


def register_layer(type_name: str):
    """REGISTER_LAYER_CLASS: map Caffe's type string to the class; a duplicate is refused."""

    def decorate(cls):
        check_eq(
            LAYERS.get(type_name) is None,
            True,
            "registry.count(type)",
            "0",
            f"Layer type {type_name} already registered.",
        )
        cls.type = type_name
        LAYERS[type_name] = cls
        return cls

    return decorate


def layer_class(type_name: str) -> type["Layer"]:
    """LayerRegistry::CreateLayer's lookup, with Caffe's message for an unknown type."""
    _load_catalogue()
    cls = LAYERS.get(type_name)
    if cls is None:
        known = ", ".join(sorted(LAYERS))
        check_eq(0, 1, "registry.count(type)", "1", f"Unknown layer type: {type_name} (known types: {known})")
    return cls


def _load_catalogue():
    # Importing the package registers every layer module (see layers/__init__.py).
    from . import layers  # noqa: F401


class Layer:
    type = ""
    # Blob-count contracts; a negative value means "no constraint" (layer.hpp).
    exact_num_bottom_blobs = -1
    min_bottom_blobs = -1
    max_bottom_blobs = -1
    exact_num_top_blobs = -1
    min_top_blobs = -1
    max_top_blobs = -1
    equal_num_bottom_top_blobs = False
    # AutoTopBlobs(): the net adds anonymous tops up to the minimum (all loss layers).
    auto_top_blobs = False
    # Layers that read the default loss weight of 1 on top 0 (LossLayer::LayerSetUp).
    is_loss = False

    # ---- facts about the type: net analysis, generation, hazards, user nets and the Caffe
    # worker read them here, never from a table of type names of their own ----------------
    # Caffe's Backward_cpu exists (ArgMax, Threshold, Accuracy: NOT_IMPLEMENTED).
    has_backward = True
    # Caffe computes this type exactly in place (top 0 is bottom 0) and the reference follows
    # it there, so generation may draw it in place. in_place_hazard says where it goes wrong.
    may_run_in_place = False
    # Bottoms that hold values of a role (harness draft roles: "label", "index", "binary",
    # "infogain") and that Caffe refuses to backpropagate to (LOG(FATAL) or CHECK in Backward).
    bottom_roles: dict[int, str] = {}
    # Backward LOG(FATAL)s "<type> Layer cannot backpropagate to label inputs." when a label
    # bottom is asked for a gradient (the loss layers); others CHECK or ignore it.
    label_backward_fatal = False
    # The LayerParameter field whose `axis` says where a label bottom's classes lie (default 1).
    label_axis_param: str | None = None
    # Caffe's Backward reads a bottom diff before it writes it (HingeLoss keeps its margins
    # there from Forward): a worker observing which diffs Backward writes must not pre-fill it.
    backward_reads_bottom_diff = False
    # Caffe's Backward points the bottom diff at the top's memory instead of writing it (Flatten).
    backward_repoints_bottom_diff = False
    # Registered in BVLC master only; Caffe 1.0's registry does not know the type.
    master_only = False
    # Makes its tops from outside the net (the caller, files, fillers) rather than from bottoms;
    # generated nets hold their data as Input layers only.
    is_source = False
    # Reads files named in its param (an LMDB, an HDF5 list, images).
    reads_files = False
    # Its TRAIN forward draws from Caffe's own RNG (Dropout's mask), which no other engine replays.
    random_in_train = False
    # A field of its param ("message.field") naming a file that Caffe reads when the field is set
    # (InfogainLoss's matrix): the Caffe engine refuses such a layer (harness/engines/sandbox.py).
    optional_file_field: str | None = None
    # Every ParamSpec gets this lr_mult, whatever the prototxt says (BatchNorm's statistics).
    fixed_lr_mult: float | None = None

    @classmethod
    def blob_values(cls, rng, shapes) -> tuple | None:
        """Initial values for param blobs that are not plain weights (a numpy Generator and
        the blobs' shapes), or None: weights, drawn as the caller likes."""
        return None

    @classmethod
    def label_bottoms(cls) -> tuple[int, ...]:
        return tuple(sorted(cls.bottom_roles))

    @classmethod
    def in_place_hazard(cls, param) -> str | None:
        """Why Caffe computes this layer wrongly in place, or refuses it there; None where in
        place is exact (or nothing is known against it)."""
        return None

    @classmethod
    def backward_abort(cls, param, bottom_need_backward) -> str | None:
        """Why Caffe aborts when the net calls this layer's Backward with these flags, or None."""
        if not cls.has_backward:
            return f"{cls.type} has no backward: Backward_cpu is NOT_IMPLEMENTED"
        return None

    def __init__(self, param, phase: int, dtype, device, semantics=MASTER):
        self.param = param  # caffe_pb2.LayerParameter, the layer's own copy
        self.phase = phase
        self.semantics = semantics
        self.dtype = dtype
        self.device = device
        self.blobs = []
        self.param_propagate_down = []
        self.loss = []

    # ---- what the net needs before any shape is known ------------------------------------

    @classmethod
    def param_blob_count(cls, param, num_bottoms: int) -> int:
        """How many param blobs LayerSetUp creates, from the LayerParameter alone."""
        return 0

    @classmethod
    def allow_force_backward(cls, bottom_index: int) -> bool:
        """Layer::AllowForceBackward: may force_backward turn on this bottom's gradient?"""
        return True

    @classmethod
    def own_param(cls, param):
        """The layer's own LayerParameter as LayerSetUp leaves it, where that matters to the net.

        Net::AppendParam reads the layer's copy (net.cpp), so BatchNorm's added
        lr_mult-0 specs reach the solver while the net's flag loop never sees them.
        """
        return param

    @classmethod
    def default_loss_weights(cls, param, num_tops: int) -> list[float]:
        """The loss weights SetUp will use: the given ones, or LossLayer's implicit 1 on top 0."""
        if param.loss_weight:
            return list(param.loss_weight)
        if cls.is_loss:
            return [1.0] + [0.0] * (num_tops - 1)
        return [0.0] * num_tops

    # ---- Layer::SetUp ---------------------------------------------------------------------

    def setup(self, bottom, top):
        self.check_blob_counts(bottom, top)
        self.layer_setup(bottom, top)
        self.reshape(bottom, top)
        self.set_loss_weights(top)

    def check_blob_counts(self, bottom, top):
        t = self.type
        if self.exact_num_bottom_blobs >= 0:
            check_eq(
                self.exact_num_bottom_blobs,
                len(bottom),
                "ExactNumBottomBlobs()",
                "bottom.size()",
                f"{t} Layer takes {self.exact_num_bottom_blobs} bottom blob(s) as input.",
            )
        if self.min_bottom_blobs >= 0:
            check_le(
                self.min_bottom_blobs,
                len(bottom),
                "MinBottomBlobs()",
                "bottom.size()",
                f"{t} Layer takes at least {self.min_bottom_blobs} bottom blob(s) as input.",
            )
        if self.max_bottom_blobs >= 0:
            check_ge(
                self.max_bottom_blobs,
                len(bottom),
                "MaxBottomBlobs()",
                "bottom.size()",
                f"{t} Layer takes at most {self.max_bottom_blobs} bottom blob(s) as input.",
            )
        if self.exact_num_top_blobs >= 0:
            check_eq(
                self.exact_num_top_blobs,
                len(top),
                "ExactNumTopBlobs()",
                "top.size()",
                f"{t} Layer produces {self.exact_num_top_blobs} top blob(s) as output.",
            )
        if self.min_top_blobs >= 0:
            check_le(
                self.min_top_blobs,
                len(top),
                "MinTopBlobs()",
                "top.size()",
                f"{t} Layer produces at least {self.min_top_blobs} top blob(s) as output.",
            )
        if self.max_top_blobs >= 0:
            check_ge(
                self.max_top_blobs,
                len(top),
                "MaxTopBlobs()",
                "top.size()",
                f"{t} Layer produces at most {self.max_top_blobs} top blob(s) as output.",
            )
        if self.equal_num_bottom_top_blobs:
            check_eq(
                len(bottom),
                len(top),
                "bottom.size()",
                "top.size()",
                f"{t} Layer produces one top blob as output for each bottom blob input.",
            )

    def set_loss_weights(self, top):
        """Layer::SetLossWeights: a nonzero weight is written into the top's diff."""
        weights = list(self.param.loss_weight)
        if weights:
            check_eq(
                len(top),
                len(weights),
                "top.size()",
                "num_loss_weights",
                "loss_weight must be unspecified or specified once per top blob.",
            )
        self.loss = [0.0] * len(top)
        for t, w in enumerate(weights):
            self.loss[t] = w
            if w != 0:
                top[t].diff.fill_(w)

    # ---- Layer::Forward / Backward ----------------------------------------------------------

    def forward_layer(self, bottom, top) -> float:
        """Layer::Forward: reshape, compute, then add loss_weight · top.data · top.diff."""
        self.reshape(bottom, top)
        self.forward(bottom, top)
        loss = 0.0
        for t, w in enumerate(self.loss):
            if w != 0:
                loss += float((top[t].data * top[t].diff).sum())
        return loss

    # ---- for the harness's memory estimate (harness/engines/memory.py) -------------------

    def scratch_count(self, bottom, top) -> int:
        """At most how many elements this layer keeps beyond its blobs and params, at the blobs'
        current shapes: its scratch buffers and internal blobs, and the temporaries of one
        forward and backward. Three copies of its bottoms and tops cover the elementwise
        layers, LRN's five input-sized buffers and pooling's int64 indices."""
        return 3 * sum(blob.count() for blob in (*bottom, *top))

    def temporary_count(self, bottom, top) -> int:
        """Elements its forward or backward allocates on top of scratch_count and frees before
        the next layer runs (so that only the largest of a net's counts at once)."""
        return 0

    # ---- hooks ----------------------------------------------------------------------------

    def layer_setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        raise NotImplementedError(f"{self.type}: reshape")

    def forward(self, bottom, top):
        raise NotImplementedError(f"{self.type}: forward")

    def backward(self, top, propagate_down, bottom):
        raise NotImplementedError(f"{self.type}: backward")

    # ---- for subclasses -------------------------------------------------------------------

    def new_blob(self, shape):
        from .blob import Blob

        return Blob(shape, dtype=self.dtype, device=self.device)

    def scratch(self, name: str, shape, dtype=None):
        """A buffer the layer keeps between calls, as Caffe's layers keep theirs (max_idx_,
        scale_, col_buffer_): zero-filled when first made or when its shape changes, otherwise
        holding whatever the layer last wrote. Reusing it spares a large allocation per call."""
        import torch

        dtype = self.dtype if dtype is None else dtype
        shape = tuple(int(d) for d in shape)
        buffers = self.__dict__.setdefault("_scratch", {})
        buffer = buffers.get(name)
        if buffer is None or tuple(buffer.shape) != shape or buffer.dtype != dtype:
            buffer = buffers[name] = torch.zeros(shape, dtype=dtype, device=self.device)
        return buffer
