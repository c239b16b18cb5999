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
