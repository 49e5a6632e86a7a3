"""The reference net: Net::Init step by step, then forward and backward loops.

Caffe: src/caffe/net.cpp. Construction is FilterNet, InsertSplits, the wiring walk
(topology.py, running Layer::SetUp where Caffe does), the need-backward analysis
(need_backward.py) and ShareWeights. The numerics live in the layers.
"""

from __future__ import annotations

import functools

import torch
from google.protobuf import text_format

from . import caffe_pb2
from .blob import Blob
from .checks import CaffeError
from .need_backward import analyse
from .semantics import MASTER
from .splits import insert_splits
from .state import filter_net
from .topology import AUTOMATIC_TOP, SetupInfo, build_topology
from .upgrade import upgrade_net_as_needed

PHASES = {"TRAIN": caffe_pb2.TRAIN, "TEST": caffe_pb2.TEST}


@functools.lru_cache(maxsize=32)
def _parsed(text: str) -> bytes:
    return text_format.Parse(text, caffe_pb2.NetParameter()).SerializeToString()


def parse_net(text: str):
    """A fresh NetParameter from prototxt text (text_format.ParseError if it is not one).

    A case's net is read several times (the net, the solver's net, the harness's report), and
    text parsing costs milliseconds where decoding the cached binary form costs microseconds;
    each caller gets its own message to change."""
    return caffe_pb2.NetParameter.FromString(_parsed(text))


def read_net_param(text: str, phase: str = "TRAIN", level: int = 0, stages=()):
    """Net(file, phase, level, stages): parse, upgrade old formats, then set the state.

    The phase and level replace the file's; the stages are appended to its own
    (net.cpp, Net::Net). Returns (NetParameter, upgrade notes).
    """
    param = parse_net(text)
    notes = upgrade_net_as_needed(param)
    param.state.phase = PHASES[phase]
    param.state.level = level
    param.state.stage.extend(stages)
    return param, notes


def read_solver_net_param(text: str, solver_param):
    """The train net of a solver whose ``net:`` names this file (Solver::InitTrainNet, solver.cpp).

    Its state starts as phase TRAIN, then merges the file's own state, then the
    solver's ``train_state`` (MergeFrom: set scalars win, stages append).
    """
    param = parse_net(text)
    notes = upgrade_net_as_needed(param)
    state = caffe_pb2.NetState(phase=caffe_pb2.TRAIN)
    state.MergeFrom(param.state)
    state.MergeFrom(solver_param.train_state)
    param.state.CopyFrom(state)
    return param, notes


class Net:
    def __init__(self, param, dtype=torch.float64, device="cpu", semantics=MASTER, seed=0):
        self.dtype, self.device, self.semantics = dtype, device, semantics
        self.generator = torch.Generator().manual_seed(seed)
        self.filtered_param = filter_net(param)
        self.param = insert_splits(self.filtered_param)
        self.blobs: list[Blob] = []
        self.layers = []
        self.topology = build_topology(self.param, self._setup_layer)
        self.flags = analyse(self.topology)
        for layer, f in zip(self.layers, self.flags.layers):
            layer.param_propagate_down = list(f.param_propagate_down)
        self._share_weights()

    # ---- construction -----------------------------------------------------------------

    def _setup_layer(self, node, bottom_ids, top_ids) -> SetupInfo:
        while len(self.blobs) <= max(top_ids, default=-1):
            self.blobs.append(Blob(dtype=self.dtype, device=self.device))
        own = type(node.param)()
        own.CopyFrom(node.param)
        layer = node.cls(own, node.param.phase, self.dtype, self.device, self.semantics)
        layer.generator = self.generator
        layer.setup([self.blobs[b] for b in bottom_ids], [self.blobs[t] for t in top_ids])
        self.layers.append(layer)
        return SetupInfo(list(layer.loss), [list(b.shape) for b in layer.blobs], layer.param)

    def _share_weights(self):
        """Net::ShareWeights: a sharer's param blob is the owner's memory, data and diff."""
        for entry in self.topology.params:
            if entry.owner >= 0:
                owner = self.topology.params[entry.owner]
                mine = self.layers[entry.layer].blobs[entry.index]
                theirs = self.layers[owner.layer].blobs[owner.index]
                mine.share_data(theirs)
                mine.share_diff(theirs)

    # ---- names ------------------------------------------------------------------------

    @property
    def layer_names(self) -> list[str]:
        return [node.name for node in self.topology.layers]

    def blob(self, name: str) -> Blob:
        return self.blobs[self.topology.blob_id(name)]

    def named_blobs(self) -> dict[str, Blob]:
        """Blobs by name, as pycaffe's net.blobs (the last of a name wins; anonymous tops left out)."""
        return {n: self.blobs[i] for i, n in enumerate(self.topology.blob_names) if n != AUTOMATIC_TOP}

    @property
    def input_names(self) -> list[str]:
        return [self.topology.blob_names[i] for i in self.topology.input_ids]

    @property
    def learnable_params(self) -> list[Blob]:
        return [self._param_blob(l.net_param_id) for l in self.topology.learnables]

    @property
    def params_lr(self) -> list[float]:
        return [l.lr_mult for l in self.topology.learnables]

    @property
    def params_weight_decay(self) -> list[float]:
        return [l.decay_mult for l in self.topology.learnables]

    def _param_blob(self, net_param_id: int) -> Blob:
        entry = self.topology.params[net_param_id]
        return self.layers[entry.layer].blobs[entry.index]

    # ---- computation ------------------------------------------------------------------

    def forward(self, before_layer=None) -> float:
        """ForwardFromTo over the whole net; ``before_layer(node)``, where given, is called at
        each layer's turn, before it runs (an observer: it may read blobs, not change them)."""
        loss = 0.0
        for node, layer in zip(self.topology.layers, self.layers):
            if before_layer is not None:
                before_layer(node)
            loss += _at_stage("forward", layer.forward_layer, self._bottoms(node), self._tops(node))
        return loss

    def backward(self, before_layer=None):
        """BackwardFromTo: reverse order, skipping layers that need no backward;
        ``before_layer(node)`` as in forward, at every layer's turn, skipped or not."""
        for node, layer, f in reversed(list(zip(self.topology.layers, self.layers, self.flags.layers))):
            if before_layer is not None:
                before_layer(node)
            if f.need_backward:
                _at_stage(
                    "backward",
                    layer.backward,
                    self._tops(node),
                    list(f.bottom_need_backward),
                    self._bottoms(node),
                )

    def forward_backward(self) -> float:
        loss = self.forward()
        self.backward()
        return loss

    def clear_param_diffs(self):
        for blob in self.learnable_params:
            blob.diff.zero_()

    def update(self):
        for blob in self.learnable_params:
            blob.update()

    def _bottoms(self, node):
        return [self.blobs[b] for b in node.bottom_ids]

    def _tops(self, node):
        return [self.blobs[t] for t in node.top_ids]


def _at_stage(stage: str, method, *args):
    try:
        return method(*args)
    except CaffeError as error:
        error.stage = stage
        raise
