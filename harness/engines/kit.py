"""An adapter kit for engines written on torch modules: the author runs one Caffe layer, the
kit makes the whole Result.

A ``TorchEngine`` subclass implements ``forward``: one layer's tops from its LayerParameter,
its bottoms and its params, as torch tensors. The kit does the rest, as Caffe's Net does it
(src/caffe/net.cpp):

- the net as Caffe builds it, taken from the reference engine's construction (state
  filtering, Split insertion with Caffe's names, in-place wiring, net outputs, loss weights,
  param sharing, the initial params: the case's, else Caffe's fillers as the reference draws
  them) and the need-backward flags of its analysis. The flags so come from the reference
  and test the kit, not the engine: override ``layer_records`` to put the engine's own under
  test, since the kit runs backward by them;
- Split layers (Caffe's and any in the net), run by the kit: one top per reader, each with a
  diff of its own, summed into the bottom in Caffe's order (split_layer.cpp);
- Caffe's blobs: a blob's data is its last writer's top (an in-place layer's top replaces its
  bottom), and its diff is one buffer that Backward overwrites and nobody clears. The loss
  weights start in their tops' diffs (Layer::SetLossWeights) and Forward's loss is
  Σ top·diff over weighted tops (Layer::Forward), so a reader that overwrites a loss diff
  changes the loss as it does in Caffe (docs/semantics.md §3.2). A layer in place on a blob
  rewrites the tensors its earlier writers made, as it rewrites Caffe's one memory, so their
  backward reads what Caffe's does;
- Backward layer by layer, last first, by torch.autograd on that layer alone: its top diffs
  in, the diffs of the bottoms that ``bottom_need_backward`` asks for written, the gradients
  of the params that ``param_propagate_down`` asks for added (Caffe's layers accumulate param
  diffs), nothing for a layer that needs no backward. One autograd pass over the whole net
  would sum what Caffe overwrites, and leave in a diff what Caffe never computes;
- the solver, where the engine models one: Solver::Step's loop (clear the param diffs,
  ``iter_size`` forward-backward passes, their mean loss), then the engine's
  ``apply_update``, which is SGDSolver::ApplyUpdate's part (rate, clip, normalize,
  regularize, update);
- outcomes: a net Caffe refuses is REFUSED at "init" with Caffe's message (the reference's
  construction CHECKs it); any exception from the engine's code is ABORTED at the stage it
  happened, with the layer list and every array made before it; ``Unsupported`` is
  UNSUPPORTED, reported as skipped.

docs/engines.md ("Engines on torch modules: the adapter kit") has a complete example.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from harness.capabilities import Capabilities
from harness.case import Case, LayerRecord, Outcome, Result
from harness.engines.reference import case_net, case_solver_param, layer_records
from harness.errors import HarnessError
from reference_engine import caffe_pb2, checks
from reference_engine.net import Net
from reference_engine.topology import AUTOMATIC_TOP


class Unsupported(Exception):
    """Raised by an engine's ``forward`` or ``apply_update`` for what it does not model: the
    case's Result is UNSUPPORTED, reported as skipped, never as a verdict."""


@dataclass
class LearnableParam:
    """One learnable param of the net (Net::learnable_params_: a shared param once, through
    its owner) as ``apply_update`` sees it. ``diff`` holds the gradient summed over the
    iteration's ``iter_size`` passes; the update writes ``data`` in place. ``history`` is the
    solver's own state for this param, kept from one iteration of a case to the next (Caffe's
    history_ blobs start at zero: SGDSolver::PreSolve)."""

    layer: str  # the owner layer's name
    index: int  # which of its params
    data: torch.Tensor
    diff: torch.Tensor
    lr_mult: float  # after sharing merged the specs (Net::AppendParam)
    decay_mult: float
    history: dict = field(default_factory=dict)


class TorchEngine:
    """An engine whose layers are torch code; subclasses implement ``forward`` and, to model
    a solver, ``apply_update`` (and add "solver" to their capabilities' stages)."""

    name = "torch"
    # What the kit itself models is everything; the layers are the author's to declare.
    capabilities = Capabilities(stages=("forward", "backward"))
    dtype = torch.float32  # Caffe's Dtype in pycaffe

    def forward(
        self, layer: caffe_pb2.LayerParameter, bottom: list[torch.Tensor], params: list[torch.Tensor]
    ) -> Sequence[torch.Tensor]:
        """The tops of one layer, one tensor per top (an automatic top of a loss layer that
        names none included). ``layer`` is the net's copy: splits inserted, phase set.
        ``bottom`` and ``params`` require grad where Caffe's backward wants their diff; they
        are this layer's own, so the layer may write into them."""
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def apply_update(self, params: list[LearnableParam], solver: caffe_pb2.SolverParameter, iteration: int):
        """One solver update from the gradients in ``params[i].diff`` (SGDSolver::ApplyUpdate:
        rate, clip, normalize, regularize, compute the update value, data -= it). ``iteration``
        is Caffe's iter_ before this update: 0 at the first."""
        raise Unsupported(f"solver type {solver.type}: {self.name} models no solver")

    def layer_records(self, net: Net) -> tuple[LayerRecord, ...]:
        """The layer list and its flags, which the kit runs backward and the solver by: the
        reference's need-backward analysis, unless overridden."""
        return layer_records(net)

    def close(self):
        pass

    def run(self, case: Case) -> Result:
        started = time.perf_counter()
        run = _Run(self)
        try:
            result = run.result(case)
        except checks.CaffeError as error:  # Caffe's refusal, from the reference's construction
            stage = "solver" if run.stage == "solver" else "init"
            result = run.failed(Outcome.REFUSED, stage, error.message)
        except _EngineFailed as failure:
            result = run.failed(Outcome.ABORTED, failure.stage, failure.message)
        except (Unsupported, checks.Unsupported) as error:
            result = run.failed(Outcome.UNSUPPORTED, run.stage, str(error))
        result.info["seconds"] = time.perf_counter() - started
        return result


class _EngineFailed(Exception):
    """The engine's own code raised: the case's outcome, never the harness's failure."""

    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage, self.message = stage, message


@contextlib.contextmanager
def _engine_code(stage: str, where: str):
    """Around a call into the engine under test (a layer's forward, its autograd backward, the
    update): whatever it raises is its outcome at ``stage``, as NNSmith's checked_exec makes
    any backend exception a bug report. A CaffeError keeps its message alone (an engine that
    raises Caffe's words is compared on them); anything else is named with ``where``."""
    try:
        yield
    except (Unsupported, checks.Unsupported, HarnessError):
        raise
    except checks.CaffeError as error:
        raise _EngineFailed(stage, error.message) from error
    except Exception as error:  # any failure of the engine under test is its outcome
        raise _EngineFailed(stage, f"{where}: {type(error).__name__}: {error}") from error


class _TorchNet:
    """One net of a case as the kit runs it: the reference's wiring and flags, Caffe's blobs,
    the engine's layers."""

    def __init__(self, engine: TorchEngine, net: Net):
        self.engine = engine
        self.topology, self.layers = net.topology, net.topology.layers
        self.records = engine.layer_records(net)
        # Input tops hold the case's inputs; each diff is zero but where a loss weight went.
        self.data = [blob.data.clone() for blob in net.blobs]
        self.diff = [blob.diff.clone() for blob in net.blobs]
        # One data and one diff per param that owns its memory; a sharer sees its owner's, in
        # its own shape (Net::ShareWeights), so that sharers' gradients add up in one diff.
        entries = self.topology.params
        self.owner_of = [i if e.owner < 0 else e.owner for i, e in enumerate(entries)]
        self.param_data = {
            i: net.layers[e.layer].blobs[e.index].data.clone() for i, e in enumerate(entries) if e.owner < 0
        }
        self.param_diff = {i: torch.zeros_like(data) for i, data in self.param_data.items()}
        self.param_shape = {i: net.layers[e.layer].blobs[e.index].shape for i, e in enumerate(entries)}
        self.graphs: list = []  # per layer of the last forward: (bottom, params, tops), or None
        # Per blob, the tensors of the last forward that stand for its memory (tops, and the
        # bottoms of layers in place on it): an in-place layer rewrites them all (_rewrite).
        self.memory: dict[int, list[torch.Tensor]] = {}

    # ---- the passes ----------------------------------------------------------------------

    def forward(self, stage: str, before_layer=None) -> float:
        """Net::ForwardFromTo over the whole net; returns the loss. ``before_layer(i)`` is
        called at layer i's turn, before it runs."""
        self.graphs, self.memory, loss = [], {}, 0.0
        for i, (node, record) in enumerate(zip(self.layers, self.records)):
            if before_layer is not None:
                before_layer(i)
            self.graphs.append(self._forward_layer(stage, node, record))
            for top, weight in zip(node.top_ids, node.loss_weights):
                if weight:  # Layer::Forward: the weight sits in the top's diff
                    loss += float((self.data[top] * self.diff[top]).sum())
        return loss

    def _forward_layer(self, stage, node, record):
        if node.type == "Input":  # its tops were set from the case; its Forward does nothing
            return None
        wants = [record.need_backward and w for w in record.bottom_need_backward]
        # Copies: the layer may write into its bottoms, and the producer's data must survive.
        bottom = [self.data[b].detach().clone().requires_grad_(w) for b, w in zip(node.bottom_ids, wants)]
        params = [
            self._param_view(p).detach().clone().requires_grad_(record.need_backward and w)
            for p, w in zip(node.net_param_ids, record.param_propagate_down)
        ]
        if node.type == "Split":  # every top shares the bottom's data (SplitLayer::Forward_cpu)
            tops = [bottom[0].detach()] * len(node.top_ids)
        else:
            with _engine_code(stage, f"layer '{node.name}' ({node.type}) forward"):
                tops = list(self.engine.forward(node.param, bottom, params))
        if len(tops) != len(node.top_ids):
            raise _EngineFailed(
                stage,
                f"layer '{node.name}' ({node.type}) forward: {len(tops)} tops returned, "
                f"the net gives it {len(node.top_ids)}",
            )
        for b, x in zip(node.bottom_ids, bottom):
            if b in node.top_ids:
                self.memory.setdefault(b, []).append(x)
        for t, top in zip(node.top_ids, tops):
            self.data[t] = top.detach()
            self._rewrite(t, top)
        return bottom, params, tops

    def _rewrite(self, blob: int, top: torch.Tensor):
        """A top written into the memory of its blob. In Caffe a blob is one memory: a layer
        in place on it overwrites what its writers made, and their Backward later reads the
        new values (TanH's reads its top: a leaky ReLU in place after it changes its gradient).
        Copying the new values into every earlier tensor of the blob, past autograd's version
        checks (``.data``), lets the saved tensors of those layers' graphs see what Caffe's
        Backward sees: a layer whose torch backward reads what Caffe's reads (torch.tanh its
        output, leaky_relu its input) then gets Caffe's gradient, in place or not."""
        earlier = self.memory.setdefault(blob, [])
        for tensor in earlier:
            if tensor.shape == top.shape:
                tensor.data.copy_(top.detach())
        earlier.append(top)

    def backward(self, stage: str, before_layer=None):
        """Net::BackwardFromTo: last layer first, skipping those that need no backward.
        ``before_layer(i)`` is called at every layer's turn, skipped or not."""
        for i in reversed(range(len(self.layers))):
            if before_layer is not None:
                before_layer(i)
            node, record, graph = self.layers[i], self.records[i], self.graphs[i]
            if not record.need_backward or graph is None:
                continue
            if node.type == "Split":
                self._split_backward(node, record)
            else:
                self._backward_layer(stage, node, graph)

    def _split_backward(self, node, record):
        """SplitLayer::Backward_cpu: one top is copied, more are top 0 + top 1, then += the rest."""
        if not record.bottom_need_backward[0]:
            return
        total = self.diff[node.top_ids[0]].clone()
        for t in node.top_ids[1:]:
            total = total + self.diff[t]
        self.diff[node.bottom_ids[0]] = total

    def _backward_layer(self, stage, node, graph):
        bottom, params, tops = graph
        wanted = [x for x in (*bottom, *params) if x.requires_grad]
        if not wanted:
            return
        flowing = [(top, self.diff[t]) for top, t in zip(tops, node.top_ids) if top.requires_grad]
        grads = [None] * len(wanted)
        if flowing:
            with _engine_code(stage, f"layer '{node.name}' ({node.type}) backward"):
                outputs, top_diffs = zip(*flowing)
                grads = list(torch.autograd.grad(outputs, wanted, top_diffs, allow_unused=True))
        grads.reverse()  # taken in the order of ``wanted``: bottoms, then params
        for b, x in zip(node.bottom_ids, bottom):
            if x.requires_grad:
                grad = grads.pop()
                # A bottom diff is overwritten (gemm beta 0, copy): a layer writes all of it.
                self.diff[b] = torch.zeros_like(x) if grad is None else grad.detach()
        for p, x in zip(node.net_param_ids, params):
            if x.requires_grad:
                grad = grads.pop()
                if grad is not None:  # param diffs accumulate (gemm beta 1): sharers, iter_size
                    owner = self.owner_of[p]
                    self.param_diff[owner] += grad.detach().reshape(self.param_diff[owner].shape)

    # ---- params ----------------------------------------------------------------------------

    def _param_view(self, p: int) -> torch.Tensor:
        return self.param_data[self.owner_of[p]].reshape(self.param_shape[p])

    def clear_param_diffs(self):
        """Net::ClearParamDiffs."""
        for diff in self.param_diff.values():
            diff.zero_()

    def learnable_params(self) -> list[LearnableParam]:
        """Net::learnable_params_, each with the multipliers of its layer's record."""
        learnables = []
        for learnable in self.topology.learnables:
            entry = self.topology.params[learnable.net_param_id]
            record = self.records[entry.layer]
            learnables.append(
                LearnableParam(
                    layer=record.name,
                    index=entry.index,
                    data=self.param_data[learnable.net_param_id],
                    diff=self.param_diff[learnable.net_param_id],
                    lr_mult=record.param_lr[entry.index],
                    decay_mult=record.param_decay[entry.index],
                )
            )
        return learnables

    def params_by_layer(self, of: str) -> dict[str, tuple[np.ndarray, ...]]:
        """Param data or diffs (``of``) by layer name, the first layer of a name, as a case
        keys its params; a sharer shows its owner's, in its own shape."""
        out = {}
        for node in self.layers:
            if node.net_param_ids and node.name not in out:
                values = self.param_data if of == "data" else self.param_diff
                out[node.name] = tuple(
                    _array(values[self.owner_of[p]].reshape(self.param_shape[p])) for p in node.net_param_ids
                )
        return out

    # ---- blobs -----------------------------------------------------------------------------

    def blob_arrays(self, values, made_by: int | None = None) -> dict[str, np.ndarray]:
        """``values`` (self.data or self.diff) by blob name; with ``made_by``, only the blobs
        whose writers are all among the first ``made_by`` layers: what a forward that failed at
        that layer has made."""
        names, later = self.topology.blob_names, set()
        if made_by is not None:
            later = {t for node in self.layers[made_by:] for t in node.top_ids}
            made = {t for node in self.layers[:made_by] for t in node.top_ids}
        else:
            made = range(len(names))
        return {
            names[b]: _array(values[b]) for b in sorted(made) if b not in later and names[b] != AUTOMATIC_TOP
        }

    def in_place_blob(self, i: int) -> int | None:
        """The blob layer i runs in place on: its first top that is also a bottom."""
        node = self.layers[i]
        return next((t for t in node.top_ids if t in node.bottom_ids), None)


class _Run:
    """One case on one engine: what has been made so far, which a failure keeps."""

    def __init__(self, engine: TorchEngine):
        self.engine = engine
        self.stage = "init"
        self.net: _TorchNet | None = None
        self.layer_at = 0  # the layer the first forward has reached
        self.made: dict = {}  # Result fields computed so far

    def result(self, case: Case) -> Result:
        self.net = net = _TorchNet(self.engine, case_net(case, self.engine.dtype))
        self.stage = "forward"
        in_place_data, in_place_diff = {}, {}
        self.made.update(in_place_data=in_place_data, in_place_diff=in_place_diff)

        def before_forward(i):
            self.layer_at = i
            _keep_in_place(net, i, net.data, in_place_data)

        loss = net.forward("forward", before_forward)
        self.made.update(blob_data=net.blob_arrays(net.data), losses=(loss,))
        self.stage = "backward"
        net.backward("backward", lambda i: _keep_in_place(net, i, net.diff, in_place_diff))
        self.made.update(blob_diff=net.blob_arrays(net.diff), param_diff=net.params_by_layer("diff"))
        if case.solver is not None:
            self.stage = "solver"
            self._solve(case, loss)
        return Result(
            self.engine.name,
            layers=net.records,
            outputs=tuple(net.topology.outputs),
            info={"dtype": str(self.engine.dtype).replace("torch.", "")},
            **self.made,
        )

    def _solve(self, case: Case, first_loss: float):
        """Solver::Step for the case's iterations, on a fresh net from the initial params."""
        solver_param = case_solver_param(case)
        net = _TorchNet(self.engine, case_net(case, self.engine.dtype, solver_param=solver_param))
        params = net.learnable_params()  # once: each param's history lives for the whole case
        losses, history = [first_loss], []
        for iteration in range(case.iterations):
            net.clear_param_diffs()
            loss = np.float32(0)
            for _ in range(solver_param.iter_size):
                loss += np.float32(net.forward("solver"))
                net.backward("solver")
            losses.append(float(loss / np.float32(solver_param.iter_size)))
            self.made["losses"] = tuple(losses)
            with _engine_code("solver", f"apply_update at iteration {iteration}"):
                self.engine.apply_update(params, solver_param, iteration)
            history.append(net.params_by_layer("data"))
            self.made["param_history"] = tuple(history)

    def failed(self, outcome: Outcome, stage: str, message: str) -> Result:
        """The Result of a run that stopped at ``stage``, with the layer list and every array
        made before it (the comparison compares them with the oracle's up to the failure)."""
        made = dict(self.made)
        if self.stage == "forward" and self.net is not None:
            made["blob_data"] = self.net.blob_arrays(self.net.data, made_by=self.layer_at)
        layers = self.net.records if self.net is not None else ()
        return Result(self.engine.name, outcome, stage, message, layers=layers, **made)


def _keep_in_place(net: _TorchNet, i: int, values, into: dict):
    """Result.in_place_data and in_place_diff: the blob layer i runs in place on, as it reads
    it at its turn."""
    blob = net.in_place_blob(i)
    if blob is not None:
        into[net.layers[i].name] = _array(values[blob])


def _array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().copy()
