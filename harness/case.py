"""Case and Result: the protocol between the harness and any engine.

A Case is self-contained (net, solver, inputs, initial params) and round-trips
through a directory: ``net.prototxt``, ``solver.prototxt``, ``arrays.npz``,
``meta.json``. A Result holds the outcome, the layers with their flags, and the
arrays. docs/protocol.md describes the same structures as they travel to the
worker over stdin/stdout.

Array keys (in ``.npz`` files and on the wire) are prefixed by what they hold;
names may themselves contain "/", so the trailing param index is split off
from the right:

    input/<blob>                     Case: an Input layer's top
    param/<layer>/<i>                Case: initial data of param blob i of a layer
    data/<blob>                      Result: blob data after forward
    diff/<blob>                      Result: blob diff after backward
    param_diff/<layer>/<i>           Result: param diff after one backward
    iter<k>/<layer>/<i>              Result: param data after solver iteration k (1-based)
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import io
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import HarnessError
from .versions import json_text


class Outcome(enum.StrEnum):
    OK = "ok"
    REFUSED = "refused"  # Caffe aborted while building the net or solver
    ABORTED = "aborted"  # Caffe aborted at forward, backward or a solver step
    CRASHED = "crashed"  # died without Caffe's fatal line (a signal, a segfault)
    TIMEOUT = "timeout"
    OUT_OF_MEMORY = "out_of_memory"
    UNSUPPORTED = "unsupported"  # the engine does not model this feature; not a verdict
    # A sanitizer (the rootfs-instrumented runtime's ASan or UBSan) reported undefined
    # behaviour in Caffe: Caffe's answer means nothing here, so this is no verdict either.
    CAFFE_UNDEFINED = "caffe_undefined"


STAGES = ("init", "forward", "backward", "solver")


@dataclass(frozen=True)
class Case:
    net: str  # NetParameter prototxt; inputs are Input layers
    # SolverParameter prototxt without a net; None: no solver step. The solver builds its own
    # net in phase TRAIN; the case's level and stages become its train_state (unless it has one).
    solver: str | None = None
    phase: str = "TRAIN"
    level: int = 0
    stages: tuple[str, ...] = ()
    iterations: int = 0  # solver iterations; at least 1 when a solver is given
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict[str, tuple[np.ndarray, ...]] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self):
        for name in ("level", "iterations", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise HarnessError(f"{name}={value!r}: must be an integer")
        if not all(isinstance(stage, str) for stage in self.stages):
            raise HarnessError(f"stages={self.stages!r}: must be strings")
        if self.phase not in ("TRAIN", "TEST"):
            raise HarnessError(f"phase={self.phase!r}: must be 'TRAIN' or 'TEST'")
        if self.solver is not None and self.iterations < 1:
            raise HarnessError(
                f"iterations={self.iterations}: a case with a solver needs at least one solver iteration"
            )
        if self.solver is None and self.iterations != 0:
            raise HarnessError(f"iterations={self.iterations}: a case without a solver runs no iteration")

    # ---- arrays --------------------------------------------------------------------------

    def arrays(self) -> dict[str, np.ndarray]:
        out = {f"input/{k}": v for k, v in self.inputs.items()}
        for layer, blobs in self.params.items():
            out.update({f"param/{layer}/{i}": b for i, b in enumerate(blobs)})
        return out

    def meta(self) -> dict:
        return {
            "phase": self.phase,
            "level": self.level,
            "stages": list(self.stages),
            "iterations": self.iterations,
            "seed": self.seed,
            "has_solver": self.solver is not None,
        }

    @classmethod
    def from_parts(cls, net: str, solver: str | None, meta: dict, arrays: dict) -> Case:
        inputs = {k[len("input/") :]: v for k, v in arrays.items() if k.startswith("input/")}
        return cls(
            net=net,
            solver=solver,
            phase=meta["phase"],
            level=meta.get("level", 0),
            stages=tuple(meta.get("stages", ())),
            iterations=meta["iterations"],
            inputs=inputs,
            params=_indexed(arrays, "param/"),
            seed=meta.get("seed", 0),
        )

    def digest(self) -> str:
        """A hash of everything the case holds: equal digests, equal cases."""
        h = hashlib.sha256()
        h.update(json.dumps([self.net, self.solver, self.meta()], sort_keys=True).encode())
        for name, array in sorted(self.arrays().items()):
            array = np.ascontiguousarray(array)
            h.update(f"{name} {array.dtype.str} {array.shape}".encode())
            h.update(array.tobytes())
        return h.hexdigest()

    def save(self, directory: Path):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "net.prototxt").write_text(self.net)
        if self.solver is not None:
            (directory / "solver.prototxt").write_text(self.solver)
        np.savez(directory / "arrays.npz", **self.arrays())
        (directory / "meta.json").write_text(json.dumps(self.meta(), indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> Case:
        directory = Path(directory)
        for name in ("net.prototxt", "meta.json", "arrays.npz"):
            if not (directory / name).is_file():
                raise HarnessError(f"case directory {str(directory)!r}: {name} is missing")
        with reading(f"case directory {str(directory)!r}"):
            meta = json.loads((directory / "meta.json").read_text())
            solver_path = directory / "solver.prototxt"
            solver = solver_path.read_text() if solver_path.is_file() else None
            return cls.from_parts(
                (directory / "net.prototxt").read_text(),
                solver,
                meta,
                load_npz((directory / "arrays.npz").read_bytes()),
            )


@dataclass(frozen=True)
class LayerRecord:
    """One layer of the net an engine built (split layers included), with its flags.

    ``logged_need_backward`` is what Caffe logs ("needs backward computation."),
    before force_backward; ``need_backward`` is what Caffe does. None: not known.
    """

    name: str
    type: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    logged_need_backward: bool | None = None
    need_backward: bool | None = None
    bottom_need_backward: tuple[bool, ...] | None = None
    param_propagate_down: tuple[bool, ...] | None = None
    param_lr: tuple[float, ...] | None = None  # the learnable param's multipliers (after sharing)
    param_decay: tuple[float, ...] | None = None
    bottom_written: tuple[bool, ...] | None = None  # observed: did backward write this bottom's diff?

    def to_json(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_json(cls, d: dict) -> LayerRecord:
        return cls(
            **{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in _LAYER_FIELDS}
        )


# Read once: dataclasses.fields costs more than building a LayerRecord, and a result has one
# per layer.
_LAYER_FIELDS = frozenset(f.name for f in dataclasses.fields(LayerRecord))


@dataclass(frozen=True)
class Result:
    engine: str
    outcome: Outcome = Outcome.OK
    stage: str | None = None  # where a non-ok outcome happened: one of STAGES
    message: str = ""  # Caffe's fatal message ("Check failed: ..."), or what went wrong
    layers: tuple[LayerRecord, ...] = ()
    outputs: tuple[str, ...] = ()
    losses: tuple[float, ...] = ()  # the forward's loss, then each solver iteration's
    blob_data: dict[str, np.ndarray] = field(default_factory=dict)
    blob_diff: dict[str, np.ndarray] = field(default_factory=dict)
    param_diff: dict[str, tuple[np.ndarray, ...]] = field(default_factory=dict)
    param_history: tuple[dict[str, tuple[np.ndarray, ...]], ...] = ()  # per solver iteration
    # A layer that runs in place rewrites its bottom, and blob_data and blob_diff keep only a
    # blob's last value. So, for each layer L in place on a blob (its first top that is also
    # a bottom), keyed by L's name: that blob as L reads it, its data just before L's forward
    # (what the writer before L left) and its diff just before L's backward turn (what the
    # layers after L left; recorded whether or not L then runs its backward). With them the
    # comparison blames the first layer of an in-place chain whose output diverges; both are
    # optional, compared where both engines give them.
    in_place_data: dict[str, np.ndarray] = field(default_factory=dict)
    in_place_diff: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict = field(default_factory=dict)  # engine facts: Caffe version, timings

    def arrays(self) -> dict[str, np.ndarray]:
        out = {f"data/{k}": v for k, v in self.blob_data.items()}
        out.update({f"diff/{k}": v for k, v in self.blob_diff.items()})
        out.update({f"in_place_data/{k}": v for k, v in self.in_place_data.items()})
        out.update({f"in_place_diff/{k}": v for k, v in self.in_place_diff.items()})
        for layer, blobs in self.param_diff.items():
            out.update({f"param_diff/{layer}/{i}": b for i, b in enumerate(blobs)})
        for k, snapshot in enumerate(self.param_history, start=1):
            for layer, blobs in snapshot.items():
                out.update({f"iter{k}/{layer}/{i}": b for i, b in enumerate(blobs)})
        return out

    def meta(self) -> dict:
        return {
            "engine": self.engine,
            "outcome": self.outcome.value,
            "stage": self.stage,
            "message": self.message,
            "layers": [layer.to_json() for layer in self.layers],
            "outputs": list(self.outputs),
            "losses": list(self.losses),
            "iterations": len(self.param_history),
            "info": self.info,
        }

    @classmethod
    def from_parts(cls, meta: dict, arrays: dict) -> Result:
        # One pass over the keys, each filed by its part before the first "/": a pass per kind
        # of array cost more than decoding the arrays themselves.
        blob_data, blob_diff, param_diff, in_place_data, in_place_diff = {}, {}, [], {}, {}
        snapshots = {f"iter{k}": [] for k in range(1, meta.get("iterations", 0) + 1)}
        for key, value in arrays.items():
            kind, slash, rest = key.partition("/")
            if not slash:
                continue
            if kind == "data":
                blob_data[rest] = value
            elif kind == "diff":
                blob_diff[rest] = value
            elif kind == "param_diff":
                param_diff.append((rest, value))
            elif kind == "in_place_data":
                in_place_data[rest] = value
            elif kind == "in_place_diff":
                in_place_diff[rest] = value
            elif kind in snapshots:
                snapshots[kind].append((rest, value))
        return cls(
            engine=meta["engine"],
            outcome=Outcome(meta["outcome"]),
            stage=meta.get("stage"),
            message=meta.get("message", ""),
            layers=tuple(LayerRecord.from_json(d) for d in meta.get("layers", ())),
            outputs=tuple(meta.get("outputs", ())),
            losses=tuple(float(loss) for loss in meta.get("losses", ())),
            blob_data=blob_data,
            blob_diff=blob_diff,
            param_diff=_by_layer(param_diff),
            param_history=tuple(_by_layer(snapshot) for snapshot in snapshots.values()),
            in_place_data=in_place_data,
            in_place_diff=in_place_diff,
            info=meta.get("info", {}),
        )

    def save(self, directory: Path):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / "arrays.npz", **self.arrays())
        (directory / "result.json").write_text(json_text(self.meta()) + "\n")

    @classmethod
    def load(cls, directory: Path) -> Result:
        directory = Path(directory)
        with reading(f"result directory {str(directory)!r}"):
            meta = json.loads((directory / "result.json").read_text())
            return cls.from_parts(meta, load_npz((directory / "arrays.npz").read_bytes()))


def _indexed(arrays: dict, prefix: str) -> dict[str, tuple[np.ndarray, ...]]:
    """Collect "<prefix><layer>/<i>" keys into {layer: (blob 0, blob 1, ...)}."""
    return _by_layer((key[len(prefix) :], value) for key, value in arrays.items() if key.startswith(prefix))


def _by_layer(items) -> dict[str, tuple[np.ndarray, ...]]:
    """Collect ("<layer>/<i>", blob) pairs into {layer: (blob 0, blob 1, ...)}."""
    found: dict[str, dict[int, np.ndarray]] = {}
    for name, value in items:
        layer, index = name.rsplit("/", 1)
        found.setdefault(layer, {})[int(index)] = value
    return {layer: tuple(blobs[i] for i in sorted(blobs)) for layer, blobs in found.items()}


def dump_npz(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@contextlib.contextmanager
def reading(what: str):
    """Reading data that may come from anyone (a saved case or result, an engine's reply):
    what is not what it should be (not UTF-8, not JSON, not an .npz, fields missing or of
    the wrong kind) is a HarnessError naming ``what``, never a traceback."""
    try:
        yield
    except (
        OSError,
        UnicodeDecodeError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        EOFError,
        zipfile.BadZipFile,
    ) as e:
        raise HarnessError(f"{what}: unreadable ({type(e).__name__}: {e})") from e


def load_npz(payload: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files}


# ---- the raw wire encoding (docs/protocol.md) ----------------------------------------------
# An .npz costs a zip archive and an ast.literal_eval of each .npy header, several ms for the
# twenty small arrays of a case. The raw form lists each array in the frame's JSON header and
# sends the bytes back to back.


def dump_raw(arrays: dict[str, np.ndarray]) -> tuple[list[dict], list[np.ndarray]]:
    """Each array's header entry, and its bytes as a flat uint8 view (a copy only where the
    array is not C-contiguous). The payload is the views concatenated, in order."""
    specs, chunks = [], []
    for name, value in arrays.items():
        array = np.asarray(value)
        if array.dtype.hasobject or array.dtype.fields is not None:
            raise HarnessError(
                f"array {name!r}: dtype {array.dtype} cannot travel raw (numbers and bools only)"
            )
        flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        specs.append({"name": name, "dtype": array.dtype.str, "shape": list(array.shape), "bytes": flat.size})
        chunks.append(flat)
    return specs, chunks


def load_raw(specs: list[dict], payload: bytes | bytearray | np.ndarray) -> dict[str, np.ndarray]:
    """The arrays of a raw payload. They are views into ``payload``, with no copy: writable when
    it is (a bytearray, a uint8 array), read-only when it is bytes. An array whose offset does
    not suit its dtype's alignment is copied (numpy would accept it, but slowly, and
    torch.from_numpy not)."""
    out, offset = {}, 0
    for spec in specs:
        name, dtype, shape, size = spec["name"], np.dtype(spec["dtype"]), tuple(spec["shape"]), spec["bytes"]
        if dtype.hasobject or size != dtype.itemsize * math.prod(shape):
            raise HarnessError(
                f"array {name!r}: {size} bytes do not hold a {dtype.str} array of shape {shape}"
            )
        if offset + size > len(payload):
            raise HarnessError(
                f"array {name!r}: needs bytes {offset}..{offset + size}, the payload has {len(payload)}"
            )
        array = np.ndarray(shape, dtype, buffer=payload, offset=offset)
        out[name] = array if offset % dtype.alignment == 0 else array.copy()
        offset += size
    if offset != len(payload):
        raise HarnessError(f"raw payload: {len(payload)} bytes, the arrays take {offset}")
    return out
