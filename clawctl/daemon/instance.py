"""One daemon per CLAWCTL_HOME: an exclusive lock held for the daemon's lifetime, and an
info file that tells clients which process it is (pid plus start time, so a reused
pid is never mistaken for the daemon)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from clawctl.errors import Conflict

LOCK_FILE = "daemon.lock"
INFO_FILE = "daemon.json"
LOG_FILE = "daemon.log"
FAILED_FILE = "daemon.failed"
"""Written by a detached daemon that could not start: its error, for the waiting client."""


@dataclass(frozen=True)
class DaemonInfo:
    pid: int
    create_time: float
    started_at: float
    version: str

    def alive(self) -> bool:
        """The recorded process still runs (same pid and same start time)."""
        from clawctl.runtime.identity import is_running

        return is_running(self.pid, self.create_time)


def logs_dir(home: Path) -> Path:
    return home / "logs"


def read_info(home: Path) -> DaemonInfo | None:
    """The running daemon of ``home``, or None (no info file, unreadable, or that process is gone)."""
    try:
        raw = json.loads((home / INFO_FILE).read_text(encoding="utf-8"))
        info = DaemonInfo(int(raw["pid"]), float(raw["create_time"]), float(raw["started_at"]), str(raw["version"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if info.alive() else None


class InstanceLock:
    """Held by the running daemon; a second daemon for the same home refuses to start."""

    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        self._lock = FileLock(str(home / LOCK_FILE))

    def acquire(self) -> None:
        """Take the lock. Raises Conflict if another daemon holds it."""
        try:
            self._lock.acquire(timeout=0)
        except Timeout as exc:
            other = read_info(self.home)
            who = f" (pid {other.pid})" if other else ""
            raise Conflict(f"a daemon is already running for {self.home}{who}",
                           hint="use `clawctl daemon status`, or `clawctl daemon stop` first") from exc

    def publish(self) -> DaemonInfo:
        """Announce this process as the daemon (clients wait for this: call it once ready)."""
        from clawctl import __version__
        from clawctl.runtime.identity import create_time  # psutil's value, without loading psutil

        started = create_time(os.getpid())
        assert started is not None  # this process exists
        info = DaemonInfo(os.getpid(), started, time.time(), __version__)
        tmp = self.home / f"{INFO_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(asdict(info)), encoding="utf-8")
        tmp.replace(self.home / INFO_FILE)
        return info

    def release(self) -> None:
        try:
            info_path = self.home / INFO_FILE
            raw = json.loads(info_path.read_text(encoding="utf-8"))
            if raw.get("pid") == os.getpid():
                info_path.unlink()
        except (OSError, ValueError):
            pass
        self._lock.release()
