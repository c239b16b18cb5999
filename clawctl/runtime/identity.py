"""Process identity: a pid plus its start time, so a reused pid is never taken for ours."""

from __future__ import annotations

from pathlib import Path

import psutil

from clawctl.runtime.host import ProcCgroup, parse_proc_cgroup

CREATE_TIME_TOLERANCE = 0.01
"""psutil derives create_time from clock ticks (10 ms); values read the same way are
equal, the tolerance only absorbs float round trips through storage."""


def create_time(pid: int) -> float | None:
    """psutil's create_time of ``pid``, or None when there is no such process."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def _status(pid: int, expected: float) -> str | None:
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
    return status is not None and status != psutil.STATUS_ZOMBIE


def exists(pid: int, expected_create_time: float) -> bool:
    """True when ``pid`` is still that process, zombie or not (its pid is not reusable yet)."""
    return _status(pid, expected_create_time) is not None


def cgroup_entries(pid: int) -> tuple[ProcCgroup, ...]:
    """The parsed /proc/PID/cgroup of ``pid`` (empty when it is gone)."""
    try:
        return parse_proc_cgroup(Path(f"/proc/{pid}/cgroup").read_text())
    except OSError:
        return ()
