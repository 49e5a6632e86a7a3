"""OpenCV's Caffe importer as an engine under test: ``cv2.dnn.readNetFromCaffe`` and a forward.

OpenCV reads a Caffe prototxt and caffemodel and runs the forward of the TEST phase; it has
no backward and no solver, so its capabilities are the forward, in TEST, of the layer types
its importer loads and runs (docs/opencv.md says how they were found).

OpenCV runs out of this process, in a fork server (a fresh Python that imports OpenCV once,
is sent pickled requests on its stdin and answers on its stdout) that runs each case in a
fork of its own: some nets crash OpenCV (a segmentation fault, a corrupt heap) or hang it,
and that must be the case's outcome, not the harness's end, nor the next case's.

The case's initial params reach OpenCV as a .caffemodel written here: a NetParameter whose
layers carry their blobs, matched to the prototxt's layers by name, as Caffe's
CopyTrainedLayersFrom matches them.

OpenCV exposes no layer list of Caffe's kind (split layers, in-place tops), so the layer list
returned is the one the reference engine's net construction (reference_engine/analysis.py)
gives for the case, without flags: it tells compare which layer writes which blob, and each
blob's data then comes from OpenCV: the output OpenCV gives for the layer of that name, the
last to write the blob (a Convolution layer, which OpenCV's importer names after its top,
under that name), in the shape OpenCV's own shape inference gives it (a cv::Mat has two
axes at least, so a blob of one comes back as a column). A Split layer's tops (Caffe's own
or the net's) are its bottom's data, which Caffe's SplitLayer shares, and an Input layer's
top is the case's input. A net the reference cannot build gets no layer list: its outcome
still is compared.

Two things OpenCV is not asked, both limits of its importer's API rather than semantics
(docs/opencv.md shows each): a net with an Input layer no layer reads (OpenCV then fails
every forward with "inputs.size() == requiredOutputs"; such Inputs are left out of the net it
is given), and several outputs of one Net object. In one forward a layer run later may
overwrite an output asked for (an activation on a Slice's top), and a second forward of the
same Net, asking for another layer, computed a Power after a Convolution as the Convolution
alone; so each layer's outputs come from a fresh copy of the net forwarded to that layer.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import pickle
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
from google.protobuf import text_format

from harness.capabilities import Capabilities
from harness.case import Case, LayerRecord, Outcome, Result
from harness.errors import HarnessError
from reference_engine import caffe_pb2

DEFAULT_TIMEOUT_S = 60.0
START_TIMEOUT_S = 60.0  # the fork server imports numpy and cv2
# The generator's types that OpenCV 4.14's importer loads and runs (found by experiment:
# docs/opencv.md); Input layers are always there.
OPENCV_LAYER_TYPES = frozenset(
    {
        "ReLU",
        "Sigmoid",
        "TanH",
        "AbsVal",
        "BNLL",
        "ELU",
        "Swish",
        "Power",
        "Exp",
        "Log",
        "Dropout",
        "Scale",
        "PReLU",
        "BatchNorm",
        "LRN",
        "MVN",
        "Softmax",
        "InnerProduct",
        "Convolution",
        "Deconvolution",
        "Pooling",
        "Flatten",
        "Reshape",
        "Crop",
        "Concat",
        "Eltwise",
        "Slice",
        "Split",
        "Silence",
    }
)


class OpenCVEngine:
    name = "opencv"
    # Forward in TEST only. OpenCV has no NetState filter (it ignores include/exclude), runs
    # no solver and computes no loss: the features that change only a backward or a solver
    # (propagate_down, force_backward, loss weights) would change nothing it returns.
    capabilities = Capabilities(
        stages=("forward",),
        layer_types=OPENCV_LAYER_TYPES,
        phases=("TEST",),
        state_rules=False,
        levels_and_stages=False,
        force_backward=False,
        non_loss_weights=False,
        propagate_down=False,
        refusals=False,
    )

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S):
        if importlib.util.find_spec("cv2") is None:
            raise HarnessError("engine 'opencv' needs OpenCV: pip install 'caffe-conformance[opencv]'")
        self.timeout_s = timeout_s
        self.child: subprocess.Popen | None = None  # the fork server, once started
        self.version = None  # OpenCV's, as the fork server reports it
        # The fork server's stderr, in a directory only this user can enter.
        self.scratch = tempfile.TemporaryDirectory(prefix="caffe-conformance-opencv-")

    def run(self, case: Case) -> Result:
        started = time.perf_counter()
        try:
            net_param = without_unread_inputs(case.net)
        except text_format.ParseError as e:
            return Result(self.name, Outcome.REFUSED, "init", f"net.prototxt: {e}")
        layers = caffe_layer_list(case)
        blob_data = {name: np.asarray(value, np.float32) for name, value in case.inputs.items()}
        outcome, stage, message = Outcome.OK, None, ""
        if any(layer.type != "Input" for layer in net_param.layer):
            inputs = [(l.top[0], case.inputs[l.top[0]]) for l in net_param.layer if l.type == "Input"]
            request = (
                text_format.MessageToString(net_param),
                caffemodel(case).SerializeToString(),
                inputs,
                [(r.name, r.type, r.bottoms, r.tops) for r in layers],
            )
            outcome, stage, message, data = self._ask(request)
            blob_data.update(data)
        info = {"opencv_version": self.version, "seconds": time.perf_counter() - started}
        if outcome is not Outcome.OK:
            return Result(self.name, outcome, stage, message, layers=layers, info=info)
        return Result(self.name, layers=layers, blob_data=blob_data, info=info)

    def close(self):
        self._stop()
        self.scratch.cleanup()

    # ---- the fork server ------------------------------------------------------------------

    def _ask(self, request) -> tuple[Outcome, str | None, str, dict]:
        """The fork server's answer to one request: (outcome, stage, message, blob data)."""
        if self.child is None:
            self._start()
        stage = "init"
        try:
            _send(self.child.stdin, request)
            while (message := _receive(self.child.stdout, self.timeout_s)) is not None:
                kind, payload = message
                if kind == "ok":
                    return Outcome.OK, None, "", payload
                if kind == "error":
                    raise HarnessError(f"the OpenCV engine failed:\n{payload}")
                if kind != "stage":  # refused at init or aborted at forward (OpenCV raised), crashed
                    return Outcome(kind), stage, payload, {}
                stage = payload
        except (EOFError, BrokenPipeError):  # the fork server itself died
            code = self.child.wait(timeout=5)
            died = f"the OpenCV fork server died ({_exit_status(code)}): {_last_line(self._log_path)}"
            self._stop()
            return Outcome.CRASHED, stage, died, {}
        self._stop()
        return Outcome.TIMEOUT, stage, f"no answer within {self.timeout_s} s", {}

    @property
    def _log_path(self) -> Path:
        return Path(self.scratch.name) / "stderr"

    def _start(self):
        """A fresh Python, not a fork: nothing of this process's (threads, torch) in it."""
        root = str(Path(__file__).resolve().parents[2])  # where the harness package is
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
        with open(self._log_path, "wb") as log:
            self.child = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    f"from harness.engines.opencv import serve; serve({str(self._log_path)!r})",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                bufsize=0,
                start_new_session=True,  # its own process group: a timeout kills its forks too
            )
        try:
            ready = _receive(self.child.stdout, START_TIMEOUT_S)
        except EOFError:
            ready = None
        if ready is None:
            self._stop()
            raise HarnessError(f"the OpenCV fork server did not start: {_last_line(self._log_path)}")
        self.version = ready[1]

    def _stop(self):
        if self.child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.child.pid, signal.SIGKILL)
            self.child.wait(timeout=5)
            self.child.stdin.close()
            self.child.stdout.close()
            self.child = None


def _send(stream, message) -> None:
    """One message: its length in 8 bytes, then its pickle."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(data).to_bytes(8, "big") + data)
    stream.flush()


def _receive(stream, timeout_s: float):
    """The next message from an unbuffered pipe; None if it has not come within timeout_s;
    EOFError when the other end is gone."""
    deadline = time.monotonic() + timeout_s
    header = _read_exactly(stream, 8, deadline)
    data = None if header is None else _read_exactly(stream, int.from_bytes(header, "big"), deadline)
    return None if data is None else pickle.loads(data)


def _read_exactly(stream, size: int, deadline: float) -> bytes | None:
    chunks = []
    while size:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([stream], [], [], left)[0]:
            return None
        chunk = os.read(stream.fileno(), size)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def serve(log_path: str) -> None:
    """The fork server, its stderr (and its forks') in ``log_path``. It imports OpenCV
    once and runs each request in a fresh fork of itself, which answers and exits, so that no
    case sees what an earlier one left: a net that corrupts OpenCV's heap then crashes the case
    that caused it, every time it is run."""
    requests, answers = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever OpenCV prints goes to the log, never among the answers
    import cv2

    # Its errors come back as exceptions; its log would bury glibc's last words on a crash.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    cv2.setNumThreads(1)  # tiny nets, and a fork that starts without a thread pool in it
    _send(answers, ("ready", cv2.__version__))
    while len(header := requests.read(8)) == 8:
        request = pickle.loads(requests.read(int.from_bytes(header, "big")))
        os.ftruncate(2, 0)  # the log holds this case's last words only
        os.lseek(2, 0, os.SEEK_SET)
        pid = os.fork()
        if pid == 0:
            try:
                _send(answers, run_in_opencv(cv2, lambda message: _send(answers, message), *request))
            except Exception:  # noqa: BLE001 - a bug of ours: the parent raises it as a HarnessError
                _send(answers, ("error", traceback.format_exc()))
            os._exit(0)
        status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        if status:
            died = f"OpenCV died ({_exit_status(status)}): {_last_line(Path(log_path))}"
            _send(answers, ("crashed", died))


def run_in_opencv(cv2, announce, net_text: str, model: bytes, inputs, layers):
    """readNetFromCaffe, then each layer's outputs (the module's docstring says how), as
    ("ok", blob data); an error OpenCV raises is ("refused" or "aborted", its message). Each
    stage is announced first, so that a crash is known to have happened there."""
    announce(("stage", "init"))
    with tempfile.TemporaryDirectory(prefix="caffe-conformance-opencv-") as scratch:
        net_file, model_file = Path(scratch) / "net.prototxt", Path(scratch) / "net.caffemodel"
        net_file.write_text(net_text)
        model_file.write_bytes(model)

        def fresh_net():
            net = cv2.dnn.readNetFromCaffe(str(net_file), str(model_file))
            for name, value in inputs:
                net.setInput(np.ascontiguousarray(value, dtype=np.float32), name)
            return net

        try:
            cv2.dnn.readNetFromCaffe(str(net_file), str(model_file))
        except cv2.error as e:
            return "refused", _message(e)
        announce(("stage", "forward"))
        try:
            return "ok", _outputs(cv2, fresh_net(), fresh_net, inputs, layers)
        except cv2.error as e:
            return "aborted", _message(e)


def _outputs(cv2, net, fresh_net, inputs, layers) -> dict:
    """Each top's data: a Split's from its bottom, every other layer's from a forward of a
    fresh copy of the net that ends at that layer (a forward's outputs may be overwritten by
    the layers after it, and a later forward of the same net computes some wrongly after an
    earlier one asked for another layer)."""
    blob_data = dict(inputs)
    shapes = _output_shapes(cv2, net, [value.shape for _, value in inputs])
    known = set(net.getLayerNames())
    for name, type_name, bottoms, tops in layers:
        if type_name == "Split":
            # OpenCV gives no outputs of its own for a Split (forwardAndRetrieve fails on one):
            # Caffe's tops share the bottom's data.
            if bottoms[0] in blob_data:
                blob_data.update(dict.fromkeys(tops, blob_data[bottoms[0]]))
            continue
        if type_name == "Convolution" and name not in known and tops:
            name = tops[0]  # OpenCV's importer names a Convolution layer after its top
        if name in known:
            outputs = fresh_net().forwardAndRetrieve([name])[0]
            for j, (top, value) in enumerate(zip(tops, outputs)):
                array, shape = np.array(value, np.float32), shapes.get((name, j))
                # Only a blob of fewer than two axes, which a cv::Mat cannot be, is reshaped.
                fits = shape is not None and len(shape) < 2 and array.size == math.prod(shape)
                blob_data[top] = array.reshape(shape) if fits else array
    return blob_data


def _output_shapes(cv2, net, input_shapes) -> dict[tuple[str, int], tuple[int, ...]]:
    """OpenCV's own shape of each layer's output j, by (layer name, j); none where its shape
    inference fails (it does on a net's own Split of several tops, whose forward runs)."""
    try:
        ids, _, output_shapes = net.getLayersShapes(input_shapes)
    except cv2.error:
        return {}
    names = {net.getLayerId(name): name for name in net.getLayerNames()}
    return {
        (names[i], j): tuple(int(d) for d in shape)
        for i, shapes in zip(ids.ravel().tolist(), output_shapes)
        if i in names
        for j, shape in enumerate(shapes)
    }


def caffe_layer_list(case: Case) -> tuple[LayerRecord, ...]:
    """The layers as Caffe builds the case's net (split layers in, Caffe's names), no flags;
    none where the reference cannot build it."""
    from reference_engine.analysis import analyse_text
    from reference_engine.checks import CaffeError, Unsupported
    from reference_engine.topology import AUTOMATIC_TOP

    try:
        topology = analyse_text(case.net, case.phase, case.level, case.stages).topology
    except (CaffeError, Unsupported):
        return ()
    names = topology.blob_names
    return tuple(
        LayerRecord(
            node.name,
            node.type,
            tuple(names[b] for b in node.bottom_ids),
            tuple(names[t] for t in node.top_ids if names[t] != AUTOMATIC_TOP),
        )
        for node in topology.layers
    )


def without_unread_inputs(net_text: str) -> caffe_pb2.NetParameter:
    """The case's net less the Input layers whose top no layer reads."""
    net_param = text_format.Parse(net_text, caffe_pb2.NetParameter())
    read = {bottom for layer in net_param.layer for bottom in layer.bottom}
    kept = [layer for layer in net_param.layer if layer.type != "Input" or set(layer.top) & read]
    del net_param.layer[:]
    net_param.layer.extend(kept)
    return net_param


def caffemodel(case: Case) -> caffe_pb2.NetParameter:
    """The case's initial params as a .caffemodel: one layer per name, its blobs in order."""
    model = caffe_pb2.NetParameter(name="initial")
    for layer_name, arrays in case.params.items():
        layer = model.layer.add(name=layer_name)
        for array in arrays:
            blob = layer.blobs.add()
            blob.shape.dim.extend(array.shape)
            blob.data.extend(np.asarray(array, np.float32).ravel())
    return model


def _message(error) -> str:
    """OpenCV's error on one line, without its version and source path."""
    text = " ".join(line.strip(" >") for line in str(error).splitlines() if line.strip(" >"))
    return re.sub(r"^OpenCV\([^)]*\) \S+:\d+: error: ", "", text)


def _exit_status(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit status {code}"


def _last_line(path: Path) -> str:
    """The last line written to the fork server's stderr (glibc's "free(): invalid next size")."""
    lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
    return lines[-1] if lines else "no message"
