"""The worker protocol's client (harness/engines/command.py) against a fake engine command
(fake_worker.py): the array encodings, a fork server's child deaths, and the timeout's kill.
Nothing here claims anything about Caffe."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.case import Case, Outcome, dump_raw, load_raw
from harness.engines.command import CommandEngine
from harness.errors import HarnessError
from tests.processes import processes_in_session

FAKE = Path(__file__).resolve().parent / "fake_worker.py"

# Every numeric dtype, by type code (float32 above all in practice; others from other engines).
TYPECODES = "?" + np.typecodes["AllInteger"] + np.typecodes["AllFloat"]


def sample_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for code in TYPECODES:
        out[f"input/type_{code}"] = (rng.standard_normal((2, 3, 4)) * 100).astype(code)
    out["input/scalar"] = np.array(3.5, np.float32)
    out["input/empty"] = np.zeros((0, 3), np.float32)
    out["input/transposed"] = np.arange(12, dtype=np.float32).reshape(3, 4).T  # not C-contiguous
    out["input/big_endian"] = np.arange(5, dtype=">f8")
    out["param/ip/0"] = rng.standard_normal((4, 5)).astype(np.float32)
    out["param/name/with/slashes/1"] = np.ones(3, np.float64)
    return out


def raw_payload(arrays):
    specs, chunks = dump_raw(arrays)
    return specs, b"".join(chunk.tobytes() for chunk in chunks)


def assert_same_arrays(actual, expected):
    assert list(actual) == list(expected)
    for key, value in expected.items():
        assert actual[key].dtype == value.dtype, key
        assert actual[key].shape == value.shape, key
        np.testing.assert_array_equal(actual[key], value, err_msg=key)


def test_raw_encoding_round_trips_every_dtype():
    arrays = sample_arrays()
    specs, payload = raw_payload(arrays)
    assert_same_arrays(load_raw(specs, bytearray(payload)), arrays)


def test_raw_decoding_shares_a_bytearray_and_keeps_bytes_read_only():
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3)}
    specs, payload = raw_payload(arrays)
    buffer = bytearray(payload)
    decoded = load_raw(specs, buffer)["a"]
    decoded[0, 0] = 42.0  # writable, and no copy: the bytearray sees the write
    assert np.frombuffer(buffer, np.float32)[0] == 42.0
    assert not load_raw(specs, payload)["a"].flags.writeable
    as_array = np.frombuffer(payload, np.uint8).copy()  # the harness reads payloads into these
    assert load_raw(specs, as_array)["a"].flags.writeable


def test_raw_decoding_copies_a_misaligned_array():
    arrays = {"byte": np.ones(1, np.uint8), "wide": np.arange(3, dtype=np.float64)}
    specs, payload = raw_payload(arrays)
    decoded = load_raw(specs, bytearray(payload))
    assert decoded["wide"].flags.aligned
    np.testing.assert_array_equal(decoded["wide"], arrays["wide"])


def test_raw_encoding_refuses_objects_and_a_short_payload():
    with pytest.raises(HarnessError, match="cannot travel raw"):
        dump_raw({"o": np.array([None, 1], dtype=object)})
    specs, payload = raw_payload({"a": np.arange(4, dtype=np.float32)})
    with pytest.raises(HarnessError, match="needs bytes 0..16"):
        load_raw(specs, payload[:-1])


def fake(*options: str, timeout_s: float = 30.0) -> CommandEngine:
    return CommandEngine([sys.executable, str(FAKE), *options], timeout_s=timeout_s, memory_mb=None)


def echo_case(net: str = "echo") -> Case:
    arrays = sample_arrays()
    inputs = {k[len("input/") :]: v for k, v in arrays.items() if k.startswith("input/")}
    params = {
        "ip": (arrays["param/ip/0"],),
        "name/with/slashes": (np.zeros(1), arrays["param/name/with/slashes/1"]),
    }
    return Case(net=net, inputs=inputs, params=params)


@pytest.mark.parametrize(("formats", "expected"), [("npz", "npz"), ("raw,npz", "raw")])
def test_arrays_travel_in_the_form_the_engine_offers(formats, expected):
    case = echo_case()
    with fake("--formats", formats) as engine:
        result = engine.run(case)
    assert result.outcome == Outcome.OK, result.message
    assert result.info["array_format"] == expected
    assert_same_arrays(result.blob_data, case.inputs)
    assert set(result.param_diff) == set(case.params)
    for layer, blobs in case.params.items():
        for got, sent in zip(result.param_diff[layer], blobs, strict=True):
            np.testing.assert_array_equal(got, sent)


def test_fork_server_death_is_answered_without_a_restart():
    with fake("--formats", "raw,npz", "--fork") as engine:
        first = engine.run(echo_case())
        refused = engine.run(echo_case("DIE"))
        after = engine.run(echo_case())
    assert refused.outcome == Outcome.REFUSED, refused.message
    assert refused.message == "Check failed: fake refusal"
    assert refused.info["signal"] == "SIGABRT"
    assert after.outcome == Outcome.OK, after.message
    assert after.info["worker_starts"] == 1
    assert after.info["child_restarts"] == 1
    assert after.info["pid"] != first.info["pid"]  # a fresh child served it


def test_death_without_a_fork_server_restarts_the_engine():
    with fake("--formats", "npz") as engine:
        refused = engine.run(echo_case("DIE"))
        after = engine.run(echo_case())
    assert refused.outcome == Outcome.REFUSED, refused.message
    assert refused.message == "Check failed: fake refusal"
    assert after.outcome == Outcome.OK, after.message
    assert after.info["worker_starts"] == 2
    assert after.info["child_restarts"] == 0


def test_timeout_kills_the_whole_process_tree():
    with fake("--formats", "raw,npz", "--fork", timeout_s=1.0) as engine:
        engine.run(echo_case())
        server = engine.process.pid
        assert len(processes_in_session(server)) == 2  # the fork server and its child
        hung = engine.run(echo_case("HANG"))
        assert hung.outcome == Outcome.TIMEOUT
        assert hung.stage == "forward"
        assert processes_in_session(server, settle_s=5.0) == []
        assert engine.run(echo_case()).outcome == Outcome.OK
        assert os.getsid(engine.process.pid) == engine.process.pid  # a session of its own
