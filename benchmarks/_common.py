"""Helpers shared by the benchmark scripts: timing commands and finding executables."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def bench_env(home: Path) -> dict[str, str]:
    """Environment for timed runs: a private CLAWCTL_HOME and bytecode caching on (as users have it)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["CLAWCTL_HOME"] = str(home)
    return env


def executable(name: str) -> str:
    """The console script installed beside this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise SystemExit(f"{name} is not installed; pip install -e '.[bench]'")
    return found


def time_runs(cmd: list[str], *, env: dict[str, str], runs: int, ok_codes: tuple[int, ...] = (0,)) -> list[float]:
    """Wall-clock seconds of ``runs`` executions of ``cmd``; fails loudly on an unexpected exit code."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - start)
        if proc.returncode not in ok_codes:
            raise SystemExit(f"{' '.join(cmd[:4])} … exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return times


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linearly interpolated."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def children_of(pid: int) -> set[int]:
    """Pids of the direct children of ``pid`` (every thread's), from /proc/PID/task/*/children.

    Reads a few small files instead of scanning all of /proc, so it can be polled every
    millisecond on a busy host. Empty when the process is gone.
    """
    found: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                found.update(int(p) for p in f.read().split())
        except OSError:
            continue
    return found


def cmdline(pid: int) -> tuple[str, ...]:
    """The argv of ``pid`` (empty when it is gone or a zombie)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return ()
    return tuple(part.decode(errors="replace") for part in raw.split(b"\0")[:-1])


class ProcessLedger:
    """Every process a benchmark started (pid + start time), so that whatever is left at the
    end can be killed by pid without ever hitting a reused pid."""

    def __init__(self) -> None:
        self.known: dict[int, float] = {}

    def record(self, pid: int) -> None:
        import psutil

        try:
            self.known.setdefault(pid, psutil.Process(pid).create_time())
        except psutil.Error:
            pass

    def alive(self) -> list[int]:
        """Recorded pids that still are the recorded process (zombies count as gone)."""
        import psutil

        out = []
        for pid, started in self.known.items():
            try:
                proc = psutil.Process(pid)
                if abs(proc.create_time() - started) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE:
                    out.append(pid)
            except psutil.Error:
                continue
        return out

    def wait_gone(self, timeout: float) -> list[int]:
        """Wait up to ``timeout`` seconds for every recorded process to end; returns those left."""
        deadline = time.monotonic() + timeout
        left = self.alive()
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = self.alive()
        return left

    def kill_survivors(self) -> list[int]:
        """SIGKILL recorded processes that are still the recorded ones; returns their pids."""
        import signal

        left = self.alive()
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return left
