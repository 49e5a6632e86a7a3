"""A fake engine command speaking the worker protocol (docs/protocol.md), for testing the
protocol client (harness/engines/command.py, CommandEngine) without Caffe. It claims nothing
about Caffe.

    python fake_worker.py [--formats npz|raw,npz] [--fork]

It answers a case by echoing its arrays: ``input/<blob>`` comes back as ``data/<blob>``,
``param/<layer>/<i>`` as ``param_diff/<layer>/<i>``. The case's net text picks a behaviour:
``DIE`` aborts at the "net" step after writing a glog-style fatal line (so the harness reports
a refusal); ``HANG`` sleeps at the "forward" step; anything else is answered. ``--formats``
lists the array encodings offered in the hello (``npz`` alone: an engine written to the simple
form, which never hears of raw). ``--fork`` serves from a forked child and reports a child's
death with a "died" frame, as harness/engines/worker.py does; without it, a death ends the process.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time

import numpy as np


def read_frame(stream):
    line = stream.readline()
    if not line:
        return None, {}
    header = json.loads(line)
    if "arrays" in header:
        payload = stream.read(header["raw_bytes"])
        arrays, offset = {}, 0
        for spec in header["arrays"]:
            dtype = np.dtype(spec["dtype"])
            chunk = payload[offset : offset + spec["bytes"]]
            arrays[spec["name"]] = np.frombuffer(chunk, dtype).reshape(spec["shape"])
            offset += spec["bytes"]
        return header, arrays
    size = header.get("npz_bytes", 0)
    if not size:
        return header, {}
    with np.load(io.BytesIO(stream.read(size)), allow_pickle=False) as archive:
        return header, {k: archive[k] for k in archive.files}


def write_frame(stream, header, arrays=None, raw=False):
    arrays = arrays or {}
    if raw:
        specs = [
            {"name": k, "dtype": a.dtype.str, "shape": list(a.shape), "bytes": a.nbytes}
            for k, a in arrays.items()
        ]
        header = dict(header, arrays=specs, raw_bytes=sum(a.nbytes for a in arrays.values()))
        payload = b"".join(a.tobytes() for a in arrays.values())  # tobytes: C order
    else:
        buffer = io.BytesIO()
        if arrays:
            np.savez(buffer, **arrays)
        payload = buffer.getvalue()
        header = dict(header, npz_bytes=len(payload))
    stream.write(json.dumps(header).encode() + b"\n" + payload)
    stream.flush()


def echo(arrays):
    out = {}
    for key, value in arrays.items():
        kind, rest = key.split("/", 1)
        out[("data/" if kind == "input" else "param_diff/") + rest] = value
    return out


def serve(stdin, stdout, formats, fork):
    while True:
        header, arrays = read_frame(stdin)
        if header is None:
            return 0
        if header["op"] == "hello":
            hello = {"op": "hello", "protocol": 1, "engine": "fake", "fork_server": fork}
            if formats != ["npz"]:
                hello["array_formats"] = formats
            write_frame(stdout, hello)
            continue
        raw = "arrays" in header
        if raw and "raw" not in formats:
            raise SystemExit("fake_worker: a raw request, but raw was not offered")
        write_frame(stdout, {"op": "stage", "stage": "init", "step": "net"})
        if header["net"] == "DIE":
            sys.stderr.write("F0101 00:00:00.000000 1 fake.cpp:1] Check failed: fake refusal\n")
            sys.stderr.flush()
            os.abort()
        write_frame(stdout, {"op": "stage", "stage": "forward", "step": "forward"})
        if header["net"] == "HANG":
            time.sleep(3600)
        result = {"op": "result", "engine": "fake", "outcome": "ok", "info": {"pid": os.getpid()}}
        write_frame(stdout, result, echo(arrays), raw=raw)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--formats", default="npz")
    parser.add_argument("--fork", action="store_true")
    args = parser.parse_args()
    formats = args.formats.split(",")
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    if not args.fork:
        return serve(stdin, stdout, formats, fork=False)
    while True:
        pid = os.fork()
        if pid == 0:
            os._exit(serve(stdin, stdout, formats, fork=True))
        _, status = os.waitpid(pid, 0)
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            return 0
        died = {
            "op": "died",
            "status": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        }
        stdout.write(json.dumps(died).encode() + b"\n")
        stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
