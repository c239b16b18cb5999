"""After a change to the desired state: make sure the daemon runs, wake it, optionally wait."""

from __future__ import annotations

import os
import sys
from typing import TextIO

from clawctl.daemon.convergence import PoolProgress

AUTOSTART_ENV = "CLAWCTL_AUTOSTART"
"""Set to 0 to record desired state without starting a daemon (e.g. a CI job that only applies)."""


def autostart_enabled() -> bool:
    return os.environ.get(AUTOSTART_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def prestart_daemon() -> None:
    """Begin starting the daemon (when autostart is on) so its start-up overlaps the command's
    own work; ``notify_daemon`` later waits for it."""
    if autostart_enabled():
        from clawctl.daemon.client import launch_detached
        from clawctl.home import clawctl_home

        launch_detached(clawctl_home())


def notify_daemon() -> bool:
    """Start the daemon if needed (unless autostart is off) and wake it. True when one runs."""
    from clawctl.daemon.client import start_detached, wake
    from clawctl.home import clawctl_home

    home = clawctl_home()
    if autostart_enabled():
        start_detached(home)
        wake(home)
        return True
    if wake(home):
        return True
    sys.stderr.write(f"note: no daemon is running ({AUTOSTART_ENV}=0); start one with `clawctl daemon start`\n")
    return False


def wait_for_fleet(fleet: str, *, timeout: float, out: TextIO) -> None:
    """Block until ``fleet`` is converged, showing progress on a terminal; raise on timeout."""
    from clawctl.daemon.waiting import wait_converged
    from clawctl.registry.engine import Registry

    live = out.isatty()
    last = [""]

    def show(progress: list[PoolProgress]) -> None:
        if not live:
            return
        line = "  ".join(f"{p.pool} {p.ready}/{p.desired}" + (f"+{p.standbys_ready}/{p.standbys_desired}s"
                                                               if p.standbys_desired else "")
                         for p in progress)
        line = f"waiting: {line}"[:200]
        if line != last[0]:
            out.write("\r\x1b[2K" + line)
            out.flush()
            last[0] = line

    with Registry() as registry:
        try:
            wait_converged(registry, fleet, timeout=timeout, on_progress=show)
        finally:
            if live and last[0]:
                out.write("\r\x1b[2K")
    out.write(f"fleet {fleet} converged: every pool is ready\n")
