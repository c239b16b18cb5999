"""Process identity: a pid plus its start time, so a reused pid is never taken for ours.

On Linux everything here is read from /proc directly, computed exactly as psutil
does; psutil is imported only where there is no /proc. The daemon then never
loads psutil (~1 MB of its RSS).
"""

from __future__ import annotations

import os
from pathlib import Path

from clawctl.runtime.host import ProcCgroup, parse_proc_cgroup

HAS_PROC = os.path.isdir("/proc/self")

CREATE_TIME_TOLERANCE = 0.01
"""psutil derives create_time from clock ticks (10 ms); values read the same way are
equal, the tolerance only absorbs float round trips through storage."""


ZOMBIE = "zombie"
RUNNING = "running"
"""psutil's STATUS_ZOMBIE and STATUS_RUNNING (the only states told apart here)."""


def create_time(pid: int) -> float | None:
    """psutil's create_time of ``pid``, or None when there is no such process."""
    if HAS_PROC:
        fast = _proc_stat(pid)
        return fast[1] if fast is not None else None
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_boot_time: float | None = None


def boot_time() -> float:
    """psutil's boot_time: the ``btime`` line of /proc/stat (read once per process)."""
    global _boot_time
    if _boot_time is None:
        with open("/proc/stat", "rb") as fh:
            _boot_time = next(float(line.split()[1]) for line in fh if line.startswith(b"btime"))
    return _boot_time


def stat_fields(pid: int) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name (field 3, the state, first), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2:].split()
    return fields if len(fields) >= 20 else None


def _proc_stat(pid: int) -> tuple[str, float] | None:
    """(state letter, create_time) from one read of /proc/PID/stat, computed exactly as psutil
    does (boot time + start ticks / CLK_TCK), or None when unavailable. The daemon checks
    every adopted agent each second: one file read instead of psutil's three."""
    fields = stat_fields(pid) if pid > 0 else None
    if fields is None:
        return None
    return fields[0].decode(), int(fields[19]) / CLOCK_TICKS + boot_time()


def _status(pid: int, expected: float) -> str | None:
    fast = _proc_stat(pid) if HAS_PROC else None
    if fast is not None:
        state, started = fast
        if abs(started - expected) > CREATE_TIME_TOLERANCE:
            return None
        return ZOMBIE if state in ("Z", "X") else RUNNING
    if HAS_PROC:
        return None
    import psutil

    try:
        process = psutil.Process(pid)
        with process.oneshot():
            if abs(process.create_time() - expected) > CREATE_TIME_TOLERANCE:
                return None
            return process.status()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def is_running(pid: int, expected_create_time: float) -> bool:
    """True when ``pid`` is the process started at ``expected_create_time`` and is not a zombie."""
    status = _status(pid, expected_create_time)
    return status is not None and status != ZOMBIE


def exists(pid: int, expected_create_time: float) -> bool:
    """True when ``pid`` is still that process, zombie or not (its pid is not reusable yet)."""
    return _status(pid, expected_create_time) is not None


def cgroup_entries(pid: int) -> tuple[ProcCgroup, ...]:
    """The parsed /proc/PID/cgroup of ``pid`` (empty when it is gone)."""
    try:
        return parse_proc_cgroup(Path(f"/proc/{pid}/cgroup").read_text())
    except OSError:
        return ()
