"""A campaign stopped by a signal: SIGTERM as Ctrl-C (the report is written, exit 130), and
SIGKILL of the harness leaves none of its shards running."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes import processes_in_session

RENAMED = "tests.harness.fake_engines:RenamedReference"
ROOT = Path(__file__).resolve().parents[2]


def _campaign(tmp_path, sigint_ignored: bool = False):
    argv = [
        sys.executable,
        "-m",
        "harness",
        "fuzz",
        "--engine",
        RENAMED,
        "--against",
        "reference",
        "--time",
        "5m",
        "--jobs",
        "2",
        "--seed",
        "1",
        "--report",
        str(tmp_path / "report"),
    ]
    if sigint_ignored:  # as a shell's & does; an ignored signal stays ignored across exec
        argv = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *argv]
    process = subprocess.Popen(
        argv,
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    deadline = time.monotonic() + 60
    while len(processes_in_session(process.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)  # the harness and its two shards
    time.sleep(3)  # some cases run
    return process


def test_sigterm_stops_a_campaign_as_ctrl_c_does(tmp_path):
    process = _campaign(tmp_path)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 130
    summary = json.loads((tmp_path / "report" / "report.json").read_text())["summary"]
    assert summary["interrupted"] and summary["cases"] > 0


def test_sigint_stops_a_campaign_that_inherited_it_ignored(tmp_path):
    """A command started with & from a script inherits SIGINT ignored, which Python keeps:
    kill -INT must still stop it with its report."""
    process = _campaign(tmp_path, sigint_ignored=True)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    assert json.loads((tmp_path / "report" / "report.json").read_text())["summary"]["interrupted"]


def test_sigkill_of_the_harness_leaves_no_shard_running(tmp_path):
    process = _campaign(tmp_path)
    session = process.pid
    assert len(processes_in_session(session)) >= 3
    process.kill()
    process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while processes_in_session(session) and time.monotonic() < deadline:
        time.sleep(0.2)
    survivors = processes_in_session(session)
    if survivors:
        for pid in survivors:
            os.kill(pid, signal.SIGKILL)
        pytest.fail(f"shards still running after the harness was killed: {survivors}")
