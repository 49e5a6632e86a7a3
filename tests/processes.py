"""Which processes are alive in a session: for tests that a timeout kills a worker's whole tree."""

from __future__ import annotations

import time
from pathlib import Path


def processes_in_session(sid: int, settle_s: float = 0.0) -> list[int]:
    """Live processes whose session id is sid (field 6 of /proc/PID/stat). With settle_s, wait
    up to that long for them to go: a SIGKILLed process takes a moment to release its memory."""
    deadline = time.monotonic() + settle_s
    while True:
        found = _processes_in_session(sid)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


def _processes_in_session(sid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue  # it ended while we looked
        fields = stat[stat.rindex(")") + 2 :].split() if stat else ()
        if fields and int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(entry.name))
    return found
