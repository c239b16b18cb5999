"""What the CLI does to the daemon process: start it detached, wake it, stop it.

Wake-ups are SIGUSR1 to the daemon's pid, verified by its start time; the
daemon answers them with an immediate reconcile pass.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from clawctl.daemon.instance import FAILED_FILE, LOCK_FILE, LOG_FILE, DaemonInfo, logs_dir, read_info
from clawctl.errors import ClawctlError, DaemonUnavailable

if TYPE_CHECKING:
    from clawctl.protocol.connection import Connection

START_TIMEOUT = 15.0


def start_detached(home: Path, *, timeout: float = START_TIMEOUT) -> DaemonInfo:
    """Start the daemon in the background for ``home`` (unless one runs or is starting) and
    wait until it has published itself. Its output goes to ``logs/daemon.log``."""
    running = read_info(home)
    if running is not None:
        return running
    launch_detached(home)
    started = _poll(lambda: read_info(home) or _failure(home) or _launcher_failure(home), timeout)
    if isinstance(started, DaemonUnavailable):
        raise started
    if started is None:
        raise DaemonUnavailable(f"the daemon did not start within {timeout:g}s",
                                hint=f"see {logs_dir(home) / LOG_FILE}")
    _launcher_failure(home)  # reap the launcher (it exited as soon as it had forked the daemon)
    return started


_LAUNCHERS: dict[Path, subprocess.Popen[bytes]] = {}
"""Launcher processes this command started and has not reaped yet, by home."""


def launch_detached(home: Path) -> None:
    """Begin starting the daemon without waiting for it (``start_detached`` waits): lets a
    command overlap the daemon's start-up with its own work. No-op when one runs or starts."""
    if home in _LAUNCHERS or read_info(home) is not None or _instance_locked(home):
        return
    log_dir = logs_dir(home)
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CLAWCTL_HOME=str(home))
    # `python -m clawctl.daemon --detach` forks once and its parent exits at once, so the daemon is not
    # our child: it outlives this command. The launcher itself is reaped by `_launcher_failure`
    # (or by init once this command exits); not waiting for it here keeps its start-up off our path.
    (home / FAILED_FILE).unlink(missing_ok=True)
    with open(log_dir / LOG_FILE, "ab") as log:
        _LAUNCHERS[home] = subprocess.Popen(
            [sys.executable, "-m", "clawctl.daemon", "--detach"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True,
        )


def _launcher_failure(home: Path) -> DaemonUnavailable | None:
    """The error of a launcher that exited unsuccessfully (reaping it), else None."""
    launcher = _LAUNCHERS.get(home)
    if launcher is None or launcher.poll() is None:
        return None
    del _LAUNCHERS[home]
    if launcher.returncode == 0:
        return None
    return DaemonUnavailable(f"the daemon could not be started (exit {launcher.returncode})",
                             hint=f"see {logs_dir(home) / LOG_FILE}")


def _instance_locked(home: Path) -> bool:
    """A daemon holds the instance lock (it may still be starting, not yet published)."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(home / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


def _failure(home: Path) -> DaemonUnavailable | None:
    """The error a detached daemon left when it could not start, if any."""
    try:
        raw = json.loads((home / FAILED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    hint = raw.get("hint") or f"see {logs_dir(home) / LOG_FILE}"
    return DaemonUnavailable(f"the daemon could not start: {raw.get('message')}", hint=hint)


def _signal_daemon(home: Path, sig: int) -> DaemonInfo | None:
    """Send ``sig`` to the running daemon (verified by pid and start time); its info, or None."""
    info = read_info(home)
    if info is None:
        return None
    try:
        os.kill(info.pid, sig)
    except ProcessLookupError:
        return None
    return info


def wake(home: Path) -> bool:
    """Ask the daemon for an immediate reconcile pass; False when no daemon runs."""
    return _signal_daemon(home, signal.SIGUSR1) is not None


def stop(home: Path, *, timeout: float = 30.0) -> DaemonInfo | None:
    """Stop the daemon (agents keep running and are re-adopted by the next daemon).

    Returns the stopped daemon's info, or None if none was running. Raises when it
    does not exit within ``timeout``.
    """
    info = _signal_daemon(home, signal.SIGTERM)
    if info is None:
        return None
    if _poll(lambda: not info.alive(), timeout):
        return info
    raise ClawctlError(f"the daemon (pid {info.pid}) did not stop within {timeout:g}s",
                       hint=f"see {logs_dir(home) / LOG_FILE}; it can be killed by pid")


T = TypeVar("T")


def _poll(check: Callable[[], T], timeout: float, interval: float = 0.02) -> T | None:
    """The first truthy result of ``check`` within ``timeout`` seconds, else None."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def operator_connection(home: Path, *, timeout: float = 10.0) -> Connection:
    """A connection to the daemon of ``home`` that said hello as the operator.

    ``DaemonUnavailable`` when no daemon listens; ``Unauthenticated`` when run from
    inside an agent or as another user.
    """
    import clawctl
    from clawctl.daemon.paths import control_socket
    from clawctl.protocol.connection import Connection

    conn = Connection.connect(control_socket(home), timeout=timeout)
    try:
        conn.hello(client=f"clawctl-cli/{clawctl.__version__}", timeout=timeout)
    except BaseException:
        conn.close()
        raise
    return conn
