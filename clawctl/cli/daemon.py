"""``clawctl daemon run|start|stop|status``."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from clawctl.errors import ExitCode

daemon_app = typer.Typer(help="Run, start, stop or inspect the supervisor daemon.", no_args_is_help=True)


@daemon_app.command("run")
def run_command(
    detach: Annotated[bool, typer.Option("--detach", hidden=True, help="Fork into the background.")] = False,
) -> int:
    """Run the daemon in the foreground (for systemd or containers)."""
    import os

    # Replace this process (same pid, for service managers) by one without the CLI loaded.
    argv = [sys.executable, "-m", "clawctl.daemon", *(["--detach"] if detach else [])]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)
    return ExitCode.INTERNAL  # not reached


@daemon_app.command("start")
def start_command() -> int:
    """Start the daemon in the background unless one is running."""
    from clawctl.daemon.client import start_detached
    from clawctl.home import clawctl_home

    info = start_detached(clawctl_home())
    sys.stdout.write(f"daemon running (pid {info.pid})\n")
    return ExitCode.OK


@daemon_app.command("stop")
def stop_command(
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for it to exit.")] = 30.0,
) -> int:
    """Stop the daemon. Agents keep running; the next daemon re-adopts them."""
    from clawctl.daemon.client import stop
    from clawctl.home import clawctl_home

    info = stop(clawctl_home(), timeout=timeout)
    sys.stdout.write("no daemon was running\n" if info is None else f"daemon stopped (pid {info.pid})\n")
    return ExitCode.OK


@daemon_app.command("status")
def status_command() -> int:
    """Say whether a daemon runs for this CLAWCTL_HOME (exit 0) or not (exit 1)."""
    from clawctl.daemon.instance import read_info
    from clawctl.home import clawctl_home

    info = read_info(clawctl_home())
    if info is None:
        sys.stdout.write("daemon not running\n")
        return ExitCode.FAILED
    uptime = time.time() - info.started_at
    sys.stdout.write(f"daemon running (pid {info.pid}, version {info.version}, up {uptime:.0f}s)\n")
    return ExitCode.OK
