"""The cases real Caffe is never given: those whose net or solver makes Caffe open files or run
code.

The rootfs runtime runs the worker in a sandbox (runtimes/rootfs.py, docs/security.md) that makes
what Caffe can still do harmless; this refuses, before anything is sent, what only that sandbox
would stop, and says why. The refusal reads the case itself, so it holds for generated cases,
replayed bundles and users' nets alike. A refused case is an UNSUPPORTED result (compared as
skipped, never a verdict about Caffe): the case is valid, it is the harness that will not run
it, and a campaign or a replay goes on with the next case.
"""

from __future__ import annotations

from google.protobuf import text_format

from harness.case import Case
from reference_engine import caffe_pb2
from reference_engine.checks import CaffeError
from reference_engine.layer import LAYERS
from reference_engine.upgrade_v1 import upgrade_v1_layer_type

WHY = "the harness never asks real Caffe to touch files or run code (docs/security.md)"

# Caffe layer types the reference engine does not register, so that no class carries their
# facts, with what each does to the machine. Every other type that opens files is registered
# (reads_files, optional_file_field in reference_engine/layer.py).
UNREGISTERED_TYPES = {
    "HDF5Output": "writes the HDF5 file its hdf5_output_param names (hdf5_output_layer.cpp)",
    "Python": "imports and runs the Python module its python_param names (python_layer.hpp)",
}
# SolverParameter fields that name files Caffe opens (solver.cpp), with what it does with them.
# The worker refuses net and train_net too (it names the case's net itself, worker.py solver_text).
SOLVER_FILE_FIELDS = {
    "net": "reads the net from that file (Solver::InitTrainNet)",
    "train_net": "reads the train net from that file (Solver::InitTrainNet)",
    "test_net": "reads test nets from those files (Solver::InitTestNets)",
    "weights": "reads weights from those files (Solver::InitTrainNet)",
    "snapshot_prefix": "names the files snapshots are written to (Solver::Snapshot)",
}


def refusal(case: Case) -> str | None:
    """Why real Caffe must not be given ``case``, or None. Every layer of the net counts,
    whatever its include and exclude rules: a solver's test nets build other phases."""
    # Here, not at the top: the layer catalogue and the net's parser load torch (about a
    # second), which importing the Caffe engine need not.
    import reference_engine.layers  # noqa: F401  (registers every layer type)
    from reference_engine.net import parse_net

    try:
        net = parse_net(case.net)
    except text_format.ParseError:
        return None  # Caffe cannot read it either, and refuses it before building anything
    why = net_refusal(net)
    if why is None and case.solver is not None:
        why = solver_refusal(case.solver)
    return None if why is None else f"{why}: {WHY}"


def net_refusal(net) -> str | None:
    """The first layer of a NetParameter (new or V1 format) that opens files or runs code."""
    if any(layer.HasField("layer") for layer in net.layers):
        return "the net uses the V0 layer format (layers { layer { ... } }), whose layers are not checked"
    for layer in net.layer:
        why = _layer_refusal(layer.name, layer.type, layer)
        if why is not None:
            return why
    for layer in net.layers:
        try:
            type_name = upgrade_v1_layer_type(layer.type)
        except CaffeError:
            continue  # Caffe's upgrade refuses the type, and with it the net
        why = _layer_refusal(layer.name, type_name, layer)
        if why is not None:
            return why
    return None


def solver_refusal(text: str) -> str | None:
    try:
        solver = text_format.Parse(text, caffe_pb2.SolverParameter())
    except text_format.ParseError:
        return None  # Caffe cannot read it either
    given = {field.name: value for field, value in solver.ListFields()}
    for field, what in SOLVER_FILE_FIELDS.items():
        if field in given:
            return f"solver {field}: {given[field]!r} {what}"
    if solver.snapshot > 0:
        return f"solver snapshot: {solver.snapshot} writes a snapshot every {solver.snapshot} iterations (Solver::Step)"
    # Nets embedded in the solver: Caffe builds them, layers and all (an unset one has none).
    for field, net in [
        ("net_param", solver.net_param),
        ("train_net_param", solver.train_net_param),
        *(("test_net_param", net) for net in solver.test_net_param),
    ]:
        why = net_refusal(net)
        if why is not None:
            return f"solver {field}: {why}"
    return None


def _layer_refusal(name: str, type_name: str, param) -> str | None:
    """Why Caffe's layer ``name`` of ``type_name`` (its LayerParameter or V1LayerParameter,
    which name the *_param messages alike) would open files or run code, or None."""
    if type_name in UNREGISTERED_TYPES:
        return f"layer {name!r} ({type_name}) {UNREGISTERED_TYPES[type_name]}"
    cls = LAYERS.get(type_name)
    if cls is None:
        return None  # a type Caffe refuses, or one of those that touch nothing (LSTM, SPP, ...)
    if cls.reads_files:
        return f"layer {name!r} ({type_name}) reads its data from files"
    if cls.optional_file_field is not None:
        message, field = cls.optional_file_field.split(".")
        if getattr(param, message).HasField(field):
            value = getattr(getattr(param, message), field)
            return (
                f"layer {name!r} ({type_name}) {cls.optional_file_field}: {value!r} names a file Caffe reads"
            )
    return None
