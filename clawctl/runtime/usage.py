"""Measuring an agent: memory and CPU of its whole tree, disk use of its workdir."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from clawctl.runtime import cgroups, identity, tree
from clawctl.runtime.records import AgentProcess

MAX_DISK_ENTRIES = 200_000
"""A workdir walk stops after this many entries (the result is then a lower bound):
measuring must stay cheap even for an agent that fills its workdir with files."""


def tree_pids(proc: AgentProcess) -> set[int]:
    """The agent's processes: its cgroup members, or where it has no cgroup (or the
    cgroup is empty) the leader and its descendants while the leader is still that
    process. Empty once the agent is gone."""
    found = cgroups.members(proc.cgroups)
    if not found and identity.exists(proc.pid, proc.create_time):
        found = {proc.pid, *tree.descendants(proc.pid)}
    return found


PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def measure(pids: Iterable[int]) -> tuple[int, float, int]:
    """(RSS bytes, user+system CPU seconds, live process count) summed over ``pids``;
    zombies and vanished processes count for nothing. The values are psutil's
    (``memory_info().rss``, ``cpu_times()``), read from /proc without it where there is one."""
    if not identity.HAS_PROC:
        return _measure_with_psutil(pids)
    rss, cpu, count = 0, 0.0, 0
    for pid in pids:
        fields = identity.stat_fields(pid)
        if fields is None or fields[0] in (b"Z", b"X"):
            continue
        try:
            with open(f"/proc/{pid}/statm", "rb") as fh:
                resident = int(fh.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        rss += resident * PAGE_SIZE
        cpu += (int(fields[11]) + int(fields[12])) / identity.CLOCK_TICKS  # utime, stime
        count += 1
    return rss, cpu, count


def _measure_with_psutil(pids: Iterable[int]) -> tuple[int, float, int]:
    import psutil

    rss, cpu, count = 0, 0.0, 0
    for pid in pids:
        try:
            process = psutil.Process(pid)
            with process.oneshot():
                if process.status() == psutil.STATUS_ZOMBIE:
                    continue
                rss += process.memory_info().rss
                times = process.cpu_times()
                cpu += times.user + times.system
                count += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return rss, cpu, count


def disk_usage(path: Path, *, max_entries: int = MAX_DISK_ENTRIES) -> int:
    """Bytes allocated under ``path`` (like ``du -s``: blocks, hard links once,
    symlinks not followed). 0 when ``path`` does not exist."""
    total, seen, visited = 0, set(), 0
    stack = [str(path)]
    while stack and visited < max_entries:
        directory = stack.pop()
        try:
            entries = os.scandir(directory)
        except OSError:
            continue
        with entries:
            for entry in entries:
                visited += 1
                if visited > max_entries:
                    break
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if info.st_nlink > 1:
                    if (info.st_dev, info.st_ino) in seen:
                        continue
                    seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
                if stat.S_ISDIR(info.st_mode):
                    stack.append(entry.path)
    return total
