"""The reference engine behind the harness's Engine interface: a Case in, a Result out.

It runs a case as the worker runs it in real Caffe (harness/engines/worker.py): the net
read as from a file, given inputs and params, one forward, one backward after
clearing param diffs, then K solver iterations on a fresh net from the same
initial params.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from google.protobuf import text_format

from harness.capabilities import EVERYTHING
from harness.case import Case, LayerRecord, Outcome, Result
from harness.engines.memory import DEFAULT_MEMORY_BUDGET, budget_refusal, case_footprint
from reference_engine import caffe_pb2
from reference_engine.checks import CaffeError, Unsupported
from reference_engine.net import Net, read_net_param, read_solver_net_param
from reference_engine.semantics import MASTER, SEMANTICS
from reference_engine.solvers import make_solver
from reference_engine.topology import AUTOMATIC_TOP

NET_FILE = "net.prototxt"  # the name the worker gives the case's net file
DTYPES = {"float64": torch.float64, "float32": torch.float32}


class ReferenceEngine:
    name = "reference"
    capabilities = EVERYTHING

    def __init__(
        self,
        dtype: str = "float64",
        device: str = "cpu",
        semantics: str = MASTER.name,
        threads: int | None = 1,
        memory_budget: int | None = DEFAULT_MEMORY_BUDGET,
    ):
        # Fuzzed nets are tiny: one thread is faster than torch's pool (and --jobs runs several engines).
        if threads is not None:
            torch.set_num_threads(threads)
        self.dtype = DTYPES[dtype]
        self.device = device
        self.semantics = SEMANTICS[semantics]
        self.memory_budget = memory_budget  # bytes a case may take here (harness/engines/memory.py)

    def in_float32(self) -> ReferenceEngine:
        """The same engine in Caffe's precision: the precision triage's rerun."""
        return ReferenceEngine(
            dtype="float32",
            device=self.device,
            semantics=self.semantics.name,
            threads=None,
            memory_budget=self.memory_budget,
        )

    def run(self, case: Case) -> Result:
        started = time.perf_counter()
        too_large = self._over_budget(case)
        if too_large is not None:  # not a verdict: the harness will not run it
            return Result(
                self.name,
                Outcome.UNSUPPORTED,
                "init",
                too_large,
                info={"seconds": time.perf_counter() - started},
            )
        # What the run has produced so far: a case that aborts keeps it, and the comparison
        # compares it with the other engine's (a wrong top that makes a later layer abort is
        # then blamed on the layer that made it).
        state = {"stage": "init", "layers": (), "made": {}}
        try:
            result = self._run(case, state)
        except CaffeError as error:
            # The stage is the case's step (as the worker reports it): an abort inside a
            # solver iteration's forward is at "solver", not "forward".
            stage = state["stage"]
            outcome = Outcome.REFUSED if stage == "init" else Outcome.ABORTED
            if stage == "forward":
                state["made"]["blob_data"] = _made_before(state["net"], state["forward_at"])
            result = Result(self.name, outcome, stage, error.message, layers=state["layers"], **state["made"])
        except Unsupported as error:
            result = Result(
                self.name, Outcome.UNSUPPORTED, state["stage"], str(error), layers=state["layers"]
            )
        result.info["seconds"] = time.perf_counter() - started
        return result

    def close(self):
        pass

    def _over_budget(self, case: Case) -> str | None:
        if self.memory_budget is None:
            return None
        footprint = case_footprint(case)
        needed = footprint.reference_bytes(self.dtype.itemsize)
        return budget_refusal(footprint, needed, self.memory_budget, f"the reference engine ({self.dtype})")

    # ---- one case ----------------------------------------------------------------------

    def _net(self, case: Case, solver_param=None) -> Net:
        return case_net(case, self.dtype, self.device, self.semantics, solver_param)

    def _run(self, case: Case, state) -> Result:
        net = self._net(case)
        made = state["made"]
        state["net"], state["layers"] = net, layer_records(net)
        state["stage"] = "forward"
        made["in_place_data"] = {}

        def before_forward(node):
            state["forward_at"] = node  # an abort here keeps the blobs made before it
            _keep_in_place(net, node, "data", made["in_place_data"])

        loss = net.forward(before_forward)
        made["blob_data"] = {n: _array(b.data) for n, b in net.named_blobs().items()}
        state["stage"] = "backward"
        for layer in net.layers:
            for blob in layer.blobs:
                blob.diff.zero_()
        made["in_place_diff"] = {}
        net.backward(lambda node: _keep_in_place(net, node, "diff", made["in_place_diff"]))
        made["blob_diff"] = {n: _array(b.diff) for n, b in net.named_blobs().items()}
        made["param_diff"] = _params(net, "diff")
        made["losses"] = (loss,)
        history = []
        if case.solver is not None:
            state["stage"] = "solver"
            try:
                solver_param = case_solver_param(case)
                solver = make_solver(solver_param, lambda: self._net(case, solver_param), self.semantics)
            except CaffeError as error:
                return Result(
                    self.name, Outcome.REFUSED, "solver", error.message, layers=state["layers"], **made
                )
            for _ in range(case.iterations):
                solver.step(1)
                history.append(_params(solver.net, "data"))
                made["param_history"] = tuple(history)
                made["losses"] = (loss, *solver.losses)
        return Result(
            self.name,
            layers=state["layers"],
            outputs=tuple(net.topology.outputs),
            **made,
            info={
                "dtype": str(self.dtype).replace("torch.", ""),
                "device": str(self.device),
                "semantics": self.semantics.name,
            },
        )


def _made_before(net: Net, node) -> dict[str, np.ndarray]:
    """The data of the blobs whose writers all ran before ``node``: what a forward that
    aborts at ``node`` has made."""
    layers, names = net.topology.layers, net.topology.blob_names
    at = layers.index(node)
    later = {t for n in layers[at:] for t in n.top_ids}
    made = [t for n in layers[:at] for t in n.top_ids if t not in later and names[t] != AUTOMATIC_TOP]
    return {names[t]: _array(net.blobs[t].data) for t in made}


def _keep_in_place(net: Net, node, field: str, into: dict):
    """The blob a layer runs in place on (its first top that is also a bottom), as the layer
    reads it: Result.in_place_data and in_place_diff."""
    for top in node.top_ids:
        if top in node.bottom_ids:
            into[node.name] = _array(getattr(net.blobs[top], field))
            return


def case_net(case: Case, dtype, device="cpu", semantics=MASTER, solver_param=None) -> Net:
    """The case's net as Caffe reads it from a file (the solver's own net where
    ``solver_param`` is given), with the case's inputs and initial params in its blobs."""
    try:
        if solver_param is None:
            param, _ = read_net_param(case.net, case.phase, case.level, case.stages)
        else:
            param, _ = read_solver_net_param(case.net, solver_param)
    except text_format.ParseError as e:
        # Caffe reads the case's net from a file (upgrade_proto.cpp, ReadNetParamsFromTextFileOrDie).
        raise CaffeError(
            "Check failed: ReadProtoFromTextFile(param_file, param) "
            f"Failed to parse NetParameter file: {NET_FILE}"
        ) from e
    net = Net(param, dtype, device, semantics, seed=case.seed)
    for name, value in case.inputs.items():
        blob = net.blob(name)
        if list(value.shape) != blob.shape:
            blob.reshape(value.shape)
        blob.data.copy_(torch.as_tensor(value, dtype=dtype))
    # A sharer's blob is its owner's memory, so a shared param takes its last layer's values.
    for layer, node in zip(net.layers, net.topology.layers):
        for blob, value in zip(layer.blobs, case.params.get(node.name, ())):
            blob.data.copy_(torch.as_tensor(value, dtype=dtype).reshape(blob.shape))
    return net


def case_solver_param(case: Case):
    """The case's solver as Caffe reads it from a file (ReadSolverParamsFromTextFileOrDie)."""
    try:
        solver_param = text_format.Parse(case.solver, caffe_pb2.SolverParameter())
    except text_format.ParseError as e:
        raise CaffeError(
            "Check failed: ReadProtoFromTextFile(param_file, param) "
            "Failed to parse SolverParameter file: solver.prototxt"
        ) from e
    if (case.level or case.stages) and not solver_param.HasField("train_state"):
        # The solver builds its own TRAIN net; the case's level and stages reach it
        # through train_state, as the worker passes them to Caffe.
        solver_param.train_state.level = case.level
        solver_param.train_state.stage.extend(case.stages)
    return solver_param


def layer_records(net: Net) -> tuple[LayerRecord, ...]:
    topology, names = net.topology, net.topology.blob_names
    records = []
    for node, f in zip(topology.layers, net.flags.layers):
        learnables = [topology.learnables[topology.params[i].learnable] for i in node.net_param_ids]
        records.append(
            LayerRecord(
                name=node.name,
                type=node.type,
                bottoms=tuple(names[b] for b in node.bottom_ids),
                tops=tuple(names[t] for t in node.top_ids if names[t] != AUTOMATIC_TOP),
                logged_need_backward=f.logged_need_backward,
                need_backward=f.need_backward,
                bottom_need_backward=tuple(f.bottom_need_backward),
                param_propagate_down=tuple(f.param_propagate_down),
                param_lr=tuple(l.lr_mult for l in learnables),
                param_decay=tuple(l.decay_mult for l in learnables),
            )
        )
    return tuple(records)


def _params(net: Net, field: str) -> dict[str, tuple[np.ndarray, ...]]:
    """Param blobs by layer name (the first layer of a name, as the case keys its params)."""
    out = {}
    for node, layer in zip(net.topology.layers, net.layers):
        if layer.blobs and node.name not in out:
            out[node.name] = tuple(_array(getattr(b, field)) for b in layer.blobs)
    return out


def _array(tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().copy()
