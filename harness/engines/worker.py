"""The in-Caffe worker: reads cases on stdin, runs them in real Caffe, writes results on stdout.

Runs inside a Caffe runtime (harness/engines/runtimes/), so it must stay one file, valid Python
2.7 and 3.x, importing only the standard library, numpy and pycaffe (with protobuf, which pycaffe
itself imports). docs/protocol.md describes the framing; harness/case.py the array keys. The
harness imports this file too, for the constants both sides share (harness/engines/command.py):
importing it does nothing else, and only main, which runs the worker, loads Caffe (import_caffe).

A failed CHECK in Caffe aborts the process running the case. The worker is a fork server
(fork_server): the process that imported caffe forks the child that serves, and replaces it
when it dies. Before each step the child marks the step in <log dir>/stage (Postmortem); glog
writes to file descriptor 2 (pycaffe never calls InitGoogleLogging), which points at the
harness's stderr log, or at <log dir>/stage.log while a step whose log is read runs. So the
harness can read the stage and Caffe's fatal line after the child died.
"""

from __future__ import division, print_function

import errno
import io
import json
import mmap
import os
import re
import sys
import tempfile
import time
import traceback

import numpy as np

PROTOCOL_VERSION = 1
SENTINEL = -1234.5678  # fills a bottom diff before its consumer's Backward: backward_observing
# The size the harness widens both pipes to, and the worker's write buffer: a frame of up to
# 1 MiB leaves in one write, and wakes the harness once.
PIPE_BYTES = 1 << 20
# Where the harness names the log directory (besides --log-dir), and the files the worker
# leaves there for the harness to read after a death: Postmortem's two, LogCapture's log.
LOG_DIR_VARIABLE = "CAFFE_CONFORMANCE_LOG_DIR"
STAGE_FILE = "stage"
BUILT_FILE = "built.json"
STAGE_LOG = "stage.log"


def import_caffe():
    """Load pycaffe into the worker's process, after the set-up it needs. The functions that
    call Caffe import it again where they need it: then a lookup in sys.modules."""
    # glog reads its flags from the environment when libcaffe is loaded: INFO lines to stderr.
    os.environ.setdefault("GLOG_minloglevel", "0")
    os.environ.setdefault("GLOG_logtostderr", "1")
    # caffe/__init__.py and pycaffe.py import caffe.io, which imports skimage, scipy and
    # matplotlib (about 1-2 s of the 2-3 s a worker takes to start); the worker never uses
    # caffe.io (image preprocessing helpers), so an empty stand-in takes its place. Restarts
    # after aborts are cheaper.
    if "caffe.io" not in sys.modules:
        import types

        sys.modules["caffe.io"] = types.ModuleType("caffe.io")
    import caffe

    caffe.set_mode_cpu()


class CoverageCounters(object):
    """gcov's counters of an instrumented Caffe (harness/engines/runtimes/instrumented.py, which
    exports gcov's dump and reset from libcaffe as caffe_gcov_dump and caffe_gcov_reset); with
    any other Caffe, every method does nothing. gcov writes its counters at exit(), never at
    os._exit or an abort, which is how a serving child ends: so a child dumps them itself before
    os._exit, and on SIGABRT (a failed CHECK, a sanitizer's report) through a C signal handler
    that is the dump itself (a Python handler would never run inside abort)."""

    def __init__(self):
        self.lib = None
        import ctypes

        import caffe._caffe

        try:
            lib = ctypes.CDLL(caffe._caffe.__file__)
        except OSError:
            return
        if hasattr(lib, "caffe_gcov_dump") and hasattr(lib, "caffe_gcov_reset"):
            self.ctypes = ctypes
            self.lib = lib

    def dump(self):
        if self.lib is not None:
            self.lib.caffe_gcov_dump()

    def reset(self):
        if self.lib is not None:
            self.lib.caffe_gcov_reset()

    def dump_on_abort(self):
        if self.lib is None:
            return
        import signal

        ctypes = self.ctypes
        libc = ctypes.CDLL(None)
        libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
        libc.signal.restype = ctypes.c_void_p
        # abort() runs the handler, then dies of SIGABRT all the same (glibc restores the default).
        libc.signal(signal.SIGABRT, ctypes.cast(self.lib.caffe_gcov_dump, ctypes.c_void_p))


if sys.version_info[0] >= 3:
    text_type = str
else:
    text_type = unicode  # noqa: F821 (Python 2 only)


def native_str(value):
    """Text as the native str type: pycaffe on Python 2 takes byte strings for paths and names."""
    if sys.version_info[0] < 3 and isinstance(value, text_type):
        return value.encode("utf-8")
    return value


class WorkerError(Exception):
    """A case the worker cannot run (the harness's fault, not Caffe's): answered as op "error"."""


# ---- framing -------------------------------------------------------------------------------


class Channel(object):
    """One JSON header line, then the payload: exactly header["raw_bytes"] bytes of arrays back
    to back when the header lists them in "arrays" (the raw form), else header["npz_bytes"]
    bytes of an .npz archive. A reply takes the form of the last request."""

    def __init__(self, read_fd, write_fd):
        self.reader = os.fdopen(read_fd, "rb")
        self.writer = os.fdopen(write_fd, "wb", PIPE_BYTES)
        self.reply_format = "npz"

    def read(self):
        line = self.reader.readline()
        if not line:
            return None, None
        header = json.loads(line.decode("utf-8"))
        raw = "arrays" in header
        key = "raw_bytes" if raw else "npz_bytes"
        size = int(header.get(key, 0))
        payload = self.reader.read(size) if size else b""
        if len(payload) != size:
            raise WorkerError("%s=%d: the stream ended after %d bytes" % (key, size, len(payload)))
        self.reply_format = "raw" if raw else "npz"
        if raw:
            return header, load_raw(header["arrays"], payload)
        arrays = {}
        if size:
            archive = np.load(io.BytesIO(payload), allow_pickle=False)
            for name in archive.files:
                arrays[name] = archive[name]
            archive.close()
        return header, arrays

    def write(self, header, arrays=None):
        header = dict(header)
        if self.reply_format == "raw" and header.get("op") == "result":
            specs, chunks = dump_raw(arrays or {})
            header["arrays"] = specs
            header["raw_bytes"] = sum(spec["bytes"] for spec in specs)
            self.writer.write(json.dumps(header).encode("utf-8") + b"\n")
            for chunk in chunks:
                self.writer.write(chunk)
            self.writer.flush()
            return
        payload = b""
        if arrays:
            buffer = io.BytesIO()
            np.savez(buffer, **dict((native_str(k), v) for k, v in arrays.items()))
            payload = buffer.getvalue()
        header["npz_bytes"] = len(payload)
        self.writer.write(json.dumps(header).encode("utf-8") + b"\n")
        if payload:
            self.writer.write(payload)
        self.writer.flush()


def dump_raw(arrays):
    """The raw form's header entries and byte chunks (harness/case.py, dump_raw, is the twin)."""
    specs = []
    chunks = []
    for name, value in arrays.items():
        contiguous = np.ascontiguousarray(value)
        specs.append(
            {
                "name": name,
                "dtype": value.dtype.str,
                "shape": list(value.shape),
                "bytes": contiguous.nbytes,
            }
        )
        # Python 3's file objects take any C-contiguous buffer as its bytes; Python 2's take a str.
        chunks.append(contiguous if sys.version_info[0] >= 3 else contiguous.tostring())
    return specs, chunks


def load_raw(specs, payload):
    """Read-only views into the payload: the worker only copies them into Caffe's blobs."""
    arrays = {}
    offset = 0
    for spec in specs:
        dtype = np.dtype(str(spec["dtype"]))
        size = int(spec["bytes"])
        shape = tuple(int(d) for d in spec["shape"])
        count = 1
        for d in shape:
            count *= d
        if dtype.hasobject or size != count * dtype.itemsize or offset + size > len(payload):
            raise WorkerError(
                "array %r: %d bytes at offset %d do not hold a %s array of shape %s in %d bytes"
                % (spec["name"], size, offset, dtype.str, shape, len(payload))
            )
        if count:
            array = np.frombuffer(payload, dtype, count=count, offset=offset).reshape(shape)
        else:
            array = np.zeros(shape, dtype)
        arrays[spec["name"]] = array
        offset += size
    return arrays


class LogCapture(object):
    """Points fd 2 at a file while one step runs: Caffe's glog output (C++ writes, which
    Python-level sys.stderr redirection never sees) and, if Caffe aborts, its fatal line."""

    def __init__(self, path):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 420)  # 0o644
        self.saved = os.dup(2)

    def start(self):
        sys.stderr.flush()
        os.ftruncate(self.fd, 0)
        os.lseek(self.fd, 0, 0)
        os.dup2(self.fd, 2)

    def clear(self):
        os.ftruncate(self.fd, 0)

    def stop(self):
        sys.stderr.flush()
        os.dup2(self.saved, 2)
        size = os.lseek(self.fd, 0, 2)
        os.lseek(self.fd, 0, 0)
        chunks = []
        while size > 0:
            chunk = os.read(self.fd, size)
            if not chunk:
                break
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks).decode("utf-8", "replace")


class Postmortem(object):
    """What the harness reads only after this worker died or hung, instead of a frame per step:
    <log dir>/stage holds the JSON list [request_id, stage, step] of the step running now, written
    through a shared memory map (no system call per step; the page outlives the process);
    <log dir>/built.json holds the net as built (its layers and flags), written once it is.
    Opened by the fork server, so that every child writes the same files."""

    SIZE = 256

    def __init__(self, directory):
        fd = os.open(os.path.join(directory, STAGE_FILE), os.O_RDWR | os.O_CREAT, 420)  # 0o644
        try:
            os.ftruncate(fd, self.SIZE)
            self.stage_map = mmap.mmap(fd, self.SIZE)
        finally:
            os.close(fd)
        self.built_fd = os.open(os.path.join(directory, BUILT_FILE), os.O_RDWR | os.O_CREAT, 420)
        # The stage record is json.dumps([request_id, stage, step]), put together from the
        # request's part, encoded once a case, and the step's part, encoded once a process:
        # a json.dumps per step would cost more than the steps of a small net.
        self.record_ends = {}
        self.set_request(None)

    def set_request(self, request_id):
        self.request_id = request_id
        self.record_start = json.dumps([request_id, None]).encode("utf-8")[: -len(b"null]")]

    def start_case(self, request_id):
        self.set_request(request_id)
        self.mark("init", "request")

    def mark(self, stage, step):
        end = self.record_ends.get((stage, step))
        if end is None:
            end = self.record_ends[(stage, step)] = json.dumps([stage, step]).encode("utf-8")[1:]
        record = self.record_start + end
        self.stage_map[: self.SIZE] = record[: self.SIZE].ljust(self.SIZE)

    def built(self, layers, outputs):
        data = json.dumps(
            {"request_id": self.request_id, "layers": layers, "outputs": outputs}
        ).encode("utf-8")
        overwrite_fd(self.built_fd, data)


class Stages(object):
    """Marks each step before running it (Postmortem), and times the Caffe calls."""

    def __init__(self, postmortem, capture):
        self.postmortem = postmortem
        self.capture = capture
        self.caffe_s = 0.0
        self.steps_s = {}
        self.last_s = 0.0
        self.current = None

    def run(self, stage, step, function, *args):
        self.current = stage
        self.postmortem.mark(stage, step)
        started = time.time()
        try:
            return function(*args)
        finally:
            elapsed = self.last_s = time.time() - started
            self.caffe_s += elapsed
            self.steps_s[step] = self.steps_s.get(step, 0.0) + elapsed

    def run_logged(self, stage, step, function, *args):
        """run, with Caffe's log (fd 2) captured in stage.log and returned: for the steps whose
        log is read (net construction, solver steps) or would flood stderr (a second net). A
        fatal line of any other step goes to stderr, where the harness reads it too."""
        self.capture.start()
        try:
            value = self.run(stage, step, function, *args)
        finally:
            log = self.capture.stop()
        return value, log

    def reassign(self, step, rest_step, step_s):
        """Keep step_s of the last run of step under its name; the rest of it goes to rest_step."""
        rest = self.last_s - step_s
        self.steps_s[step] -= rest
        self.steps_s[rest_step] = self.steps_s.get(rest_step, 0.0) + rest


# ---- flags ---------------------------------------------------------------------------------


class FlagsProbe(object):
    """harness/native/flags_probe.cpp, loaded with ctypes into this process: it links the same
    libcaffe (and libboost_python) that pycaffe loaded. Where it was built with ccf_flags_net
    (live is True), it reads the flags of the pycaffe Net the case runs on, in microseconds;
    otherwise it builds a second Net from the same file, which costs about a millisecond."""

    def __init__(self, path):
        self.path = path
        self.error = None
        self.lib = None
        self.live = False
        if not os.path.isfile(path):
            self.error = "flags probe %r is missing: exact flags unavailable" % path
            return
        import ctypes

        try:
            # PyDLL: calls keep the GIL, and a Python exception the call sets is raised.
            lib = ctypes.PyDLL(path)
        except OSError as e:
            self.error = "flags probe %r does not load: %s" % (path, e)
            return
        lib.ccf_flags.restype = ctypes.c_void_p
        lib.ccf_flags.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_char_p]
        lib.ccf_free.argtypes = [ctypes.c_void_p]
        lib.ccf_free.restype = None
        if hasattr(lib, "ccf_flags_net"):
            lib.ccf_flags_net.restype = ctypes.c_void_p
            lib.ccf_flags_net.argtypes = [ctypes.py_object]
            self.live = True
        self.ctypes = ctypes
        self.lib = lib

    def flags(self, net, net_path, phase, level, stages):
        if self.live:
            pointer = self.lib.ccf_flags_net(net)
        else:
            stages_text = "".join(s + "\n" for s in stages)
            pointer = self.lib.ccf_flags(
                net_path.encode("utf-8") if isinstance(net_path, text_type) else net_path,
                0 if phase == "TRAIN" else 1,
                int(level),
                stages_text.encode("utf-8") if isinstance(stages_text, text_type) else stages_text,
            )
        if not pointer:
            raise MemoryError("flags probe: no memory for its answer")
        try:
            text = self.ctypes.string_at(pointer)
        finally:
            self.lib.ccf_free(pointer)
        return json.loads(text.decode("utf-8"))["layers"]


NEEDS = " needs backward computation."
DOES_NOT_NEED = " does not need backward computation."


def parse_logged_need_backward(log):
    """Net::Init's reverse sweep logs one line per layer, last layer first (net.cpp, Net::Init):
    "<layer> needs backward computation." or "... does not need ...". Matched on the message
    text only (after glog's prefix, which ends at the first "] " and differs between glog
    versions)."""
    found = []
    for line in log.splitlines():
        if not line.endswith(" backward computation."):
            continue  # most lines: a cheap test first
        message = line.split("] ", 1)[1] if "] " in line else line
        if message.endswith(NEEDS):
            found.append((message[: -len(NEEDS)], True))
        elif message.endswith(DOES_NOT_NEED):
            found.append((message[: -len(DOES_NOT_NEED)], False))
    found.reverse()
    return found


# ---- one case ------------------------------------------------------------------------------


def vector_items(vector):
    """The items of a pycaffe vector (net.layers, layer.blobs, net._bottom_ids(i), ...) as a
    list, read by index: iterating a boost::python vector ends in a C++ exception turned into
    StopIteration, which costs about 8 us a vector, more than reading all its items."""
    return [vector[i] for i in range(len(vector))]


class NetIndex(object):
    """What run_case reads of a pycaffe Net more than once, read once: each pycaffe property
    access (net.layers, layer.blobs, blob.diff) builds a new Python object. blobs_by_name and
    outputs are pycaffe's net.blobs and net.outputs, built from the same vectors."""

    def __init__(self, net):
        self.net = net
        self.layers = vector_items(net.layers)
        self.names = vector_items(net._layer_names)
        self.types = [layer.type for layer in self.layers]
        self.bottom_ids = [vector_items(net._bottom_ids(i)) for i in range(len(self.layers))]
        self.top_ids = [vector_items(net._top_ids(i)) for i in range(len(self.layers))]
        self.param_blobs = [vector_items(layer.blobs) for layer in self.layers]
        self.blob_names = vector_items(net._blob_names)
        self.blobs = vector_items(net._blobs)
        self.blobs_by_name = dict(zip(self.blob_names, self.blobs))
        self.outputs = [self.blob_names[i] for i in vector_items(net._outputs)]


def layer_structure(index):
    layers = []
    for i, name in enumerate(index.names):
        layers.append(
            {
                "name": name,
                "type": index.types[i],
                "bottoms": [index.blob_names[b] for b in index.bottom_ids[i]],
                "tops": [index.blob_names[t] for t in index.top_ids[i]],
            }
        )
    return layers


def set_inputs(index, inputs):
    reshaped = False
    for name, array in inputs.items():
        if name not in index.blobs_by_name:
            raise WorkerError(
                "input/%s: the net has no blob %r (blobs: %s)"
                % (name, name, ", ".join(index.blob_names))
            )
        blob = index.blobs_by_name[name]
        if tuple(blob.data.shape) != tuple(array.shape):
            blob.reshape(*[int(d) for d in array.shape])
            reshaped = True
    if reshaped:
        index.net.reshape()
    for name, array in inputs.items():
        index.blobs_by_name[name].data[...] = array


def set_params(index, params):
    """params: {layer name: {blob index: array}}. Shared blobs alias their owner's data."""
    position = dict((name, i) for i, name in enumerate(index.names))
    for layer, blobs in params.items():
        if layer not in position:
            raise WorkerError("param/%s: the net has no layer %r" % (layer, layer))
        caffe_blobs = index.param_blobs[position[layer]]
        for j, array in blobs.items():
            if j >= len(caffe_blobs):
                raise WorkerError(
                    "param/%s/%d: layer %r has %d param blobs" % (layer, j, layer, len(caffe_blobs))
                )
            target = caffe_blobs[j].data
            if tuple(target.shape) != tuple(array.shape):
                raise WorkerError(
                    "param/%s/%d: shape %s, but Caffe's blob has shape %s"
                    % (layer, j, tuple(array.shape), tuple(target.shape))
                )
            target[...] = array


def param_values(index, which, prefix=""):
    out = {}
    for name, blobs in zip(index.names, index.param_blobs):
        for j, blob in enumerate(blobs):
            out["%s%s/%d" % (prefix, name, j)] = getattr(blob, which).copy()
    return out


def backward_observing(net, index, need_backward, reads_bottom_diff, repoints_bottom_diff):
    """Net::BackwardFromTo(last, 0) run one layer at a time (net._backward(i, i)), observing
    which bottom diffs each layer's Backward writes: each bottom diff that is not also the
    layer's top is filled with SENTINEL just before the layer's Backward, and afterwards every
    element still holding SENTINEL gets its previous value back. An in-place bottom is its own
    top, so for it "written" can only mean "changed". need_backward: the probe's
    layer_need_backward per layer (None where unknown); a layer without it is skipped, as
    BackwardFromTo skips it (net.cpp), and writes nothing. reads_bottom_diff and
    repoints_bottom_diff: layer types, as the request names them (Request): the harness sends
    the types whose class in the reference engine sets backward_reads_bottom_diff or
    backward_repoints_bottom_diff (reference_engine/layer.py).

    The diffs this leaves are those of one plain net._backward(last, 0), bit for bit:
    - BackwardFromTo is exactly the loop "for i from last down to 0: if layer_need_backward[i],
      layers[i]->Backward(top, bottom_need_backward[i], bottom)", and net._backward(i, i) is one
      turn of it;
    - between turns only layer i's bottom diffs are touched, and each element ends as a plain
      pass leaves it: what the Backward wrote, or the value it had before;
    - the fill changes no value the Backward reads: it reads no bottom diff before writing it
      (a blob with two readers gets a Split layer, insert_splits.cpp, so no layer accumulates
      into one), except the types of reads_bottom_diff, observed apart (observe_apart):
      HingeLoss finishes in Backward the margins its Forward left in bottom 0's diff
      (hinge_loss_layer.cpp); every other layer of BVLC master (src/caffe/layers/*.cpp,
      Backward_cpu and the helpers it calls) writes a bottom diff before it reads it;
    - a diff may be shared by two blobs (Reshape, and Concat or Slice with one bottom or top,
      share their top's diff with their bottom; a Parameter layer its top's with its param):
      the fill reaches both, but every element filled gets its value back or is written;
    - the types of repoints_bottom_diff write no memory: Flatten's Backward points the
      bottom's diff at the top's (flatten_layer.cpp, ShareDiff). The memory it leaves may be
      another blob's too (a Parameter layer's param diff, the bottom of a Reshape below), where
      a sentinel would then stay: no fill for it; the bottom then holds the top's gradient,
      whatever propagate_down says, and counts as written.
    The exception would be a Backward writing exactly SENTINEL, an improbable float32 value.
    tests/caffe/test_caffe_engine.py compares the diffs with a plain pass on generated nets.

    Returns (written: per layer, per bottom, a bool; each in-place layer's blob's diff as it
    reads it, "in_place_diff/<layer>"; seconds spent in the real Backward calls)."""
    blobs = index.blobs
    written = [None] * len(index.layers)
    in_place_diffs = {}
    caffe_s = 0.0
    for i in reversed(range(len(index.layers))):
        bottoms = index.bottom_ids[i]
        blob = in_place_blob(index, i)
        if blob is not None:  # the blob's diff as this layer reads it, at its turn
            in_place_diffs["in_place_diff/" + index.names[i]] = blobs[blob].diff.copy()
        if need_backward[i] is False:
            written[i] = [False] * len(bottoms)
            continue
        in_place = set(index.top_ids[i])
        if index.types[i] in repoints_bottom_diff:
            before = [(data_address(blobs[b].diff), blobs[b].diff.copy()) for b in bottoms]
            started = time.time()
            net._backward(i, i)
            caffe_s += time.time() - started
            written[i] = [
                data_address(blobs[b].diff) != address or not np.array_equal(blobs[b].diff, values)
                for b, (address, values) in zip(bottoms, before)
            ]
            continue
        if index.types[i] in reads_bottom_diff:
            written[i] = observe_apart(net, i, blobs, bottoms, in_place, index.param_blobs[i])
            started = time.time()
            net._backward(i, i)
            caffe_s += time.time() - started
            continue
        saved = fill_sentinel(blobs, bottoms, in_place)
        started = time.time()
        net._backward(i, i)
        caffe_s += time.time() - started
        written[i] = restore_untouched(blobs, bottoms, in_place, saved)
    return written, in_place_diffs, caffe_s


def data_address(array):
    return array.__array_interface__["data"][0]


def fill_sentinel(blobs, bottoms, tops):
    """Copies of a layer's bottom diffs; the diffs that are not also its tops get SENTINEL."""
    saved = {}
    for b in bottoms:
        diff = blobs[b].diff
        saved[b] = diff.copy()
        if b not in tops:
            diff.fill(SENTINEL)
    return saved


def restore_untouched(blobs, bottoms, tops, saved):
    """Which bottom diffs a layer's Backward wrote; the elements it left get their values back."""
    # A 0-d array rather than a numpy scalar: the comparison is the same, and numpy converts
    # a scalar to an array at each comparison, which takes longer than comparing a small blob.
    sentinel = np.array(SENTINEL, np.float32)
    flags = []
    # np.count_nonzero, not np.array_equal or ndarray.all: both pass through Python-level
    # wrappers that cost more than the comparison itself on a small blob.
    for b in bottoms:
        diff = blobs[b].diff
        if b in tops:
            flags.append(np.count_nonzero(diff != saved[b]) > 0)
        else:
            untouched = diff == sentinel
            if np.count_nonzero(untouched) == untouched.size:
                flags.append(False)
                diff[...] = saved[b]
            else:
                flags.append(True)
                np.copyto(diff, saved[b], where=untouched)
    return flags


def observe_apart(net, i, blobs, bottoms, tops, param_blobs):
    """For a layer that may read a bottom diff: observe a Backward run on the sentinels, then
    give the bottom diffs and the layer's param diffs (which Backward accumulates into) their
    values back, so the real Backward that follows sees what a plain pass gives it."""
    params = [blob.diff.copy() for blob in param_blobs]
    saved = fill_sentinel(blobs, bottoms, tops)
    net._backward(i, i)
    flags = restore_untouched(blobs, bottoms, tops, saved)
    for b in bottoms:
        blobs[b].diff[...] = saved[b]
    for blob, diff in zip(param_blobs, params):
        blob.diff[...] = diff
    return flags


DISPLAY_LINE = re.compile(r"Iteration \d+.*, loss = (\S+)")


def displayed_loss(log):
    """The loss Solver::Step displays: 'Iteration N (...), loss = X' (master) or
    'Iteration N, loss = X' (1.0). None if Caffe printed none."""
    found = DISPLAY_LINE.findall(log)
    return float(found[-1]) if found else None


def solver_text(solver, net_path, level, stages):
    """The case's SolverParameter plus the net file; the case's level and stages become the
    solver's train_state, since the solver builds its own train net (solver.cpp, InitTrainNet)."""
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    param = caffe_pb2.SolverParameter()
    text_format.Merge(native_str(solver), param)
    for field in ("net", "net_param", "train_net", "train_net_param"):
        if param.HasField(field):
            raise WorkerError(
                "solver: must not name a net (found %r); the case's net is used" % field
            )
    param.net = native_str(net_path)
    # Each iteration's loss is read from Caffe's own display line (Solver::Step); with
    # average_loss 1 the displayed (smoothed) loss is that iteration's loss. Neither field
    # changes training.
    param.display = 1
    param.average_loss = 1
    if (level or stages) and not param.HasField("train_state"):
        param.train_state.level = int(level)
        for stage in stages:
            param.train_state.stage.append(native_str(stage))
    return text_format.MessageToString(param)


def overwrite_file(path, data):
    """overwrite_fd on the file at path, created if need be."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 420)  # 0o644
    try:
        overwrite_fd(fd, data)
    finally:
        os.close(fd)


def overwrite_fd(fd, data):
    """Write data over the file's old content from its start, then cut it to length if the old
    content was longer. Never truncated to zero first (open(path, "wb")): on ext4
    (auto_da_alloc) a file truncated to zero and rewritten is flushed to disk when closed, which
    costs milliseconds per case. Not cut when it need not be: an ftruncate costs several times
    the fstat that tells, and the write of a small file."""
    old_size = os.fstat(fd).st_size
    os.lseek(fd, 0, 0)
    written = 0
    while written < len(data):
        written += os.write(fd, data[written:])
    if old_size > len(data):
        os.ftruncate(fd, len(data))


class Request(object):
    """A run request, read (docs/protocol.md): the case's settings, its arrays split into inputs
    ({blob: array}) and params ({layer: {blob index: array}}), and the layer facts of
    backward_observing."""

    def __init__(self, header, arrays):
        self.phase = header.get("phase", "TRAIN")
        self.level = int(header.get("level", 0))
        self.stages = [native_str(s) for s in header.get("stages", [])]
        self.iterations = int(header.get("iterations", 0))
        self.inputs = {}
        self.params = {}
        for key, value in arrays.items():
            if key.startswith("input/"):
                self.inputs[key[len("input/") :]] = value
            elif key.startswith("param/"):
                layer, index = key[len("param/") :].rsplit("/", 1)
                self.params.setdefault(layer, {})[int(index)] = value
            else:
                raise WorkerError(
                    "%s: unknown array key (expected input/<blob> or param/<layer>/<i>)" % key
                )
        self.net = header["net"]
        self.seed = int(header.get("seed", 0))
        self.solver = header.get("solver")
        self.reads_bottom_diff = layer_types(header, "backward_reads_bottom_diff")
        self.repoints_bottom_diff = layer_types(header, "backward_repoints_bottom_diff")


def layer_types(header, field):
    """A set of layer types the request names. Required: without them backward_observing would
    fill the bottom diffs of a layer whose Backward reads them, and change its gradient."""
    if field not in header:
        raise WorkerError("%s: missing from the request (harness/engines/caffe.py sends it)" % field)
    return frozenset(native_str(t) for t in header[field])


def run_case(header, arrays, stages_runner, probe, work_dir):
    """One run request, in the order of Caffe's own sequence: returns the reply and its arrays."""
    started = time.time()
    request = Request(header, arrays)
    net_path, net, log = build_net(request, stages_runner, work_dir)
    index = NetIndex(net)
    layers, info = read_flags(request, index, net_path, log, stages_runner, probe)
    # The net as built, before anything can abort: a later abort still reports its flags.
    stages_runner.postmortem.built(layers, index.outputs)

    set_params(index, request.params)
    set_inputs(index, request.inputs)
    # The solver's own net starts from these (copy_initial_params), Caffe's fillers included.
    initial = param_values(index, "data") if request.solver is not None else {}
    loss, out = forward(index, stages_runner)
    out.update(backward(request, index, layers, stages_runner))
    losses = [float(loss)]
    if request.solver is not None:
        step_losses, steps_out = solver_steps(request, net_path, initial, stages_runner, work_dir)
        losses.extend(step_losses)
        out.update(steps_out)
    return result_reply(request, layers, index.outputs, losses, info, stages_runner, started), out


def build_net(request, stages_runner, work_dir):
    """The case's Net, as pycaffe builds it from a file: (its path, the Net, Caffe's log of its
    construction)."""
    import caffe

    net_path = os.path.join(work_dir, "net.prototxt")
    overwrite_file(net_path, request.net.encode("utf-8"))
    net_path = native_str(net_path)
    caffe.set_random_seed(request.seed)
    caffe_phase = caffe.TRAIN if request.phase == "TRAIN" else caffe.TEST

    def build():
        if request.level or request.stages:
            return caffe.Net(net_path, caffe_phase, level=request.level, stages=request.stages)
        return caffe.Net(net_path, caffe_phase)

    net, log = stages_runner.run_logged("init", "net", build)
    return net_path, net, log


PROBED_FLAGS = (
    "need_backward",
    "bottom_need_backward",
    "param_propagate_down",
    "param_lr",
    "param_decay",
)


def read_flags(request, index, net_path, log, stages_runner, probe):
    """The layers of the net as built, with Caffe's flags: need_backward as Net::Init logged it,
    and what the probe reads. Returns (layers, the reply's info: why there is no probe)."""
    layers = layer_structure(index)
    logged = parse_logged_need_backward(log)
    if [name for name, _ in logged] == index.names:
        for layer, (_, needs) in zip(layers, logged):
            layer["logged_need_backward"] = needs
    if probe.lib is None:
        return layers, {"flags_probe": probe.error}
    args = (index.net, net_path, request.phase, request.level, request.stages)
    if probe.live:
        flags = stages_runner.run("init", "probe", probe.flags, *args)
    else:
        # A second Net built from the file logs all its construction: keep that off stderr.
        flags, _ = stages_runner.run_logged("init", "probe", probe.flags, *args)
    for layer, found in zip(layers, flags):
        for field in PROBED_FLAGS:
            layer[field] = found[field]
    return layers, {}


def in_place_blob(index, i):
    """The blob layer i runs in place on (its first top that is also a bottom), or None."""
    for top in index.top_ids[i]:
        if top in index.bottom_ids[i]:
            return top
    return None


def forward(index, stages_runner):
    """Net::ForwardFromTo over the whole net, paused before each layer that runs in place to
    copy the blob as that layer reads it ("in_place_data/<layer>"): ForwardFromTo(a, b) then
    ForwardFromTo(b + 1, c) runs the layers of ForwardFromTo(a, c), in the same order, on the
    same blobs. Returns (the loss, every blob's data and those copies)."""
    out = {}
    loss, start, last = 0.0, 0, len(index.layers) - 1
    for i in range(len(index.layers)):
        blob = in_place_blob(index, i)
        if blob is None:
            continue
        if i > start:
            loss += stages_runner.run("forward", "forward", index.net._forward, start, i - 1)
            start = i
        out["in_place_data/" + index.names[i]] = index.blobs[blob].data.copy()
    loss += stages_runner.run("forward", "forward", index.net._forward, start, last)
    for name, blob in zip(index.blob_names, index.blobs):
        out["data/" + name] = blob.data.copy()
    return loss, out


def backward(request, index, layers, stages_runner):
    """Net::Backward, after clearing the param diffs it accumulates into, observing which bottom
    diffs each layer writes (each layer's "bottom_written"): every blob's diff and param diff."""
    index.net.clear_param_diffs()
    need_backward = [layer.get("need_backward") for layer in layers]
    written, in_place_diffs, backward_s = stages_runner.run(
        "backward",
        "backward",
        backward_observing,
        index.net,
        index,
        need_backward,
        request.reads_bottom_diff,
        request.repoints_bottom_diff,
    )
    # Caffe's own Backward calls count as "backward", the observation's bookkeeping as "observe".
    stages_runner.reassign("backward", "observe", backward_s)
    for layer, flags in zip(layers, written):
        layer["bottom_written"] = flags
    out = dict(in_place_diffs)
    for name, blob in zip(index.blob_names, index.blobs):
        out["diff/" + name] = blob.diff.copy()
    out.update(param_values(index, "diff", prefix="param_diff/"))
    return out


def solver_steps(request, net_path, initial, stages_runner, work_dir):
    """Caffe's solver on the case's net, from the case's initial params and inputs, stepped once
    per iteration: (each step's displayed loss, the params after each step)."""
    import caffe

    solver_path = os.path.join(work_dir, "solver.prototxt")
    overwrite_file(
        solver_path,
        solver_text(request.solver, net_path, request.level, request.stages).encode("utf-8"),
    )
    caffe.set_random_seed(request.seed)
    # The solver's net logs all its construction: keep that off stderr.
    solver, _ = stages_runner.run_logged(
        "solver", "solver_init", caffe.get_solver, native_str(solver_path)
    )
    solver_index = NetIndex(solver.net)
    copy_initial_params(solver_index, initial)
    # Input layers' Forward does nothing (input_layer.cpp): the blobs keep what we set.
    set_inputs(solver_index, request.inputs)
    losses = []
    out = {}
    for k in range(1, request.iterations + 1):
        _, log = stages_runner.run_logged("solver", "step", solver.step, 1)
        losses.append(displayed_loss(log))
        out.update(param_values(solver_index, "data", prefix="iter%d/" % k))
    return losses, out


def result_reply(request, layers, outputs, losses, info, stages_runner, started):
    """The "result" frame's header for a case that ran to its end."""
    info["worker_s"] = time.time() - started
    info["caffe_s"] = stages_runner.caffe_s
    info["steps_s"] = stages_runner.steps_s
    return {
        "op": "result",
        "engine": "caffe",
        "outcome": "ok",
        "stage": None,
        "message": "",
        "layers": layers,
        "outputs": outputs,
        "losses": losses,
        "iterations": request.iterations if request.solver is not None else 0,
        "info": info,
    }


def copy_initial_params(solver_index, initial):
    """The initial params of the case net (given, or Caffe's fillers) into the solver's own net."""
    for name, blobs in zip(solver_index.names, solver_index.param_blobs):
        for j, blob in enumerate(blobs):
            key = "%s/%d" % (name, j)
            if key in initial and initial[key].shape == blob.data.shape:
                blob.data[...] = initial[key]


def hello(probe, fork_server):
    import caffe

    return {
        "op": "hello",
        "protocol": PROTOCOL_VERSION,
        "caffe_version": getattr(caffe, "__version__", None),
        "caffe_path": os.path.dirname(os.path.abspath(caffe.__file__)),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "numpy": np.__version__,
        "flags_probe": probe.path if probe.lib is not None else None,
        "flags_probe_error": probe.error,
        "flags_probe_live": probe.live,
        "array_formats": ["raw", "npz"],
        "fork_server": fork_server,
    }


def serve(channel, capture, postmortem, probe, work_dir, fork_server):
    """Answer requests until stdin ends; returns the exit status (0)."""
    while True:
        header, arrays = channel.read()
        if header is None:
            return 0
        op = header.get("op")
        stages_runner = Stages(postmortem, capture)
        try:
            if op == "hello":
                channel.write(hello(probe, fork_server))
            elif op == "run":
                # A step's log from an earlier case must never be read as this case's.
                capture.clear()
                postmortem.start_case(header.get("request_id"))
                reply, out = run_case(header, arrays, stages_runner, probe, work_dir)
                channel.write(reply, out)
            else:
                raise WorkerError("op=%r: unknown (known: hello, run)" % (op,))
        except MemoryError as e:
            channel.write(
                {
                    "op": "result",
                    "engine": "caffe",
                    "outcome": "out_of_memory",
                    "stage": stages_runner.current,
                    "message": "MemoryError in the worker: %s" % (e,),
                    "info": {"caffe_s": stages_runner.caffe_s},
                }
            )
        except (
            WorkerError,
            ValueError,
            KeyError,
            TypeError,
            IndexError,
            RuntimeError,
            IOError,
        ) as e:
            # The case or the harness is at fault, not Caffe: the harness raises HarnessError.
            channel.write(
                {
                    "op": "error",
                    "message": "%s: %s" % (type(e).__name__, e),
                    "traceback": traceback.format_exc(),
                }
            )


# A net and a solver step that touch what most cases touch (net construction, the probe, forward,
# backward, an SGD step). See warm_up.
WARM_UP_NET = """
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 } }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def warm_up(capture, postmortem, probe, work_dir):
    """Run one small case in the fork server before any child exists. The first case in a
    process pays for lazy set-ups (protobuf descriptors, Caffe's and pycaffe's first calls,
    first allocations): paid here, once, and not again in every child after an abort."""
    header = {
        "net": WARM_UP_NET,
        "solver": 'type: "SGD" base_lr: 0.1 lr_policy: "fixed"',
        "iterations": 1,
        # No layer of WARM_UP_NET reads or repoints a bottom diff.
        "backward_reads_bottom_diff": [],
        "backward_repoints_bottom_diff": [],
    }
    arrays = {
        "input/data": np.zeros((2, 3), np.float32),
        "input/label": np.zeros(2, np.float32),
    }
    run_case(header, arrays, Stages(postmortem, capture), probe, work_dir)
    capture.clear()


def wait_for(pid):
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except OSError as e:  # Python 2 does not retry an interrupted call itself
            if e.errno != errno.EINTR:
                raise


def fork_server(serve_child, reply_fd, coverage):
    """Run serve_child in a forked child; when a child dies (a failed CHECK aborts it), tell the
    harness with a "died" frame and fork a fresh one, which serves the next case. This process
    has imported caffe and loaded the probe but never runs a case, so a fork (milliseconds)
    replaces a whole restart (chroot, python, import caffe: about half a second). It never
    reads stdin: the children read the requests, one at a time, and the harness sends the next
    only after the answer (or the "died" frame) to the last."""
    while True:
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                status = serve_child()
            except BaseException:
                traceback.print_exc()
                raise  # preempted by os._exit below: a child never returns into this loop
            finally:
                sys.stderr.flush()
                coverage.dump()
                os._exit(status)
        status = wait_for(pid)
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            return 0  # stdin ended: the harness is done
        died = {
            "op": "died",
            "pid": pid,
            "status": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        }
        line = json.dumps(died).encode("utf-8") + b"\n"
        try:
            os.write(reply_fd, line)  # one write under PIPE_BUF bytes: never interleaved
        except OSError as e:
            if e.errno == errno.EPIPE:
                return 1  # the harness is gone
            raise


def main(argv):
    log_dir = os.environ.get(LOG_DIR_VARIABLE)
    probe_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "flags_probe.so")
    fork = hasattr(os, "fork")
    args = list(argv[1:])
    while args:
        flag = args.pop(0)
        if flag == "--log-dir" and args:
            log_dir = args.pop(0)
        elif flag == "--probe" and args:
            probe_path = args.pop(0)
        elif flag == "--no-fork":
            fork = False
        else:
            sys.stderr.write(
                "worker.py: unknown argument %r (known: --log-dir DIR, --probe PATH, --no-fork)\n"
                % flag
            )
            return 2
    # Replies go through a private copy of the real stdout; fd 1 then points at stderr, so a
    # stray print (ours or a library's) can never corrupt the protocol stream.
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    import_caffe()
    coverage = CoverageCounters()
    coverage.dump_on_abort()
    # The harness removes its log dir, so temporary net and solver files go there too.
    work_dir = log_dir or tempfile.mkdtemp(prefix="caffe-conformance-worker-")
    # Opened once, here: a fresh child must not truncate the log its dead sibling left for the
    # harness to read.
    capture = LogCapture(os.path.join(work_dir, STAGE_LOG))
    postmortem = Postmortem(work_dir)
    probe = FlagsProbe(probe_path)

    def serve_child():
        return serve(Channel(0, reply_fd), capture, postmortem, probe, work_dir, fork)

    if fork:
        # What importing Caffe ran (its layers' registration) is counted once, here; the warm-up
        # case is no case of the campaign's, so its counts are dropped before any child forks.
        coverage.dump()
        coverage.reset()
        warm_up(capture, postmortem, probe, work_dir)
        coverage.reset()
        return fork_server(serve_child, reply_fd, coverage)
    return serve_child()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
