"""``clawctl drain TARGET`` and ``clawctl uncordon TARGET``."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from clawctl.errors import ExitCode

COMMAND_TIMEOUT = 30.0
"""Seconds to wait for the daemon to take a queued command."""


def _seconds(text: str | None, option: str) -> float | None:
    from clawctl.config.units import parse_duration
    from clawctl.errors import UsageError

    if text is None:
        return None
    try:
        return float(text) if text.replace(".", "", 1).isdigit() else parse_duration(text)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a duration", hint="write e.g. 30s, 2m or 90") from None


def _queue(verb: str, target: str, args: dict[str, float] | None = None) -> tuple[int, dict[str, int | None]]:
    """Make sure a daemon runs (started unless autostart is off), queue ``verb target`` with its audit
    row (one transaction) and wake the daemon. Returns the command id and the pid of each agent the
    target names now."""
    from clawctl.cli.supervise import autostart_enabled
    from clawctl.daemon.client import start_detached, wake
    from clawctl.daemon.instance import read_info
    from clawctl.daemon.targets import target_matches
    from clawctl.errors import DaemonUnavailable
    from clawctl.home import clawctl_home
    from clawctl.registry import audit
    from clawctl.registry import supervision as store
    from clawctl.registry.engine import Registry
    from clawctl.registry.provenance import current_user

    home = clawctl_home()
    if autostart_enabled():
        start_detached(home)
    elif read_info(home) is None:  # nothing queued: it would run by surprise whenever a daemon starts
        raise DaemonUnavailable(f"no daemon is running to {verb} {target}", hint="start one: clawctl daemon start")
    user = current_user()
    with Registry() as registry, registry.writing() as conn:
        rows = store.load_agents(conn)
        started = {f"{r.fleet}/{r.agent_id}": r.pid for r in rows
                   if target_matches(target, fleet=r.fleet, pool=r.pool, agent_id=r.agent_id)}
        command = store.enqueue_command(conn, verb=verb, target=target, actor=user, args=args)
        audit.record(conn, [audit.operator_entry(user, verb, target, {"command": command, **(args or {})})])
    wake(home)
    return command, started


def drain_command(
    target: Annotated[str, typer.Argument(help="agent/ID, pool/NAME or fleet/NAME.")],
    grace_period: Annotated[Optional[str], typer.Option(
        "--grace-period", help="How long sessions and in-flight work get to move before the stop "
                               "(default: the pool's drain.gracePeriod).")] = None,
    timeout: Annotated[str, typer.Option("--timeout", help="How long to wait for the drain to finish.")] = "5m",
) -> int:
    """Cordon TARGET, move its sessions (with their state) to peers — or to the pool's fallbackPool —
    and stop it gracefully. A drained agent is replaced; a drained pool or fleet keeps no agents
    until `clawctl uncordon`. Exit 0 drained, 1 timed out or failed."""
    from clawctl.cli.targets import parse_target
    from clawctl.daemon.draining import DrainProgress, wait_command, wait_drained
    from clawctl.errors import NotFound
    from clawctl.registry.engine import Registry

    kind, name = parse_target(target)
    grace = _seconds(grace_period, "--grace-period")
    limit = _seconds(timeout, "--timeout")
    assert limit is not None
    command, started = _queue("drain", f"{kind}/{name}", {"grace_period": grace} if grace is not None else None)
    live = sys.stdout.isatty()
    last = [""]

    def show(progress: DrainProgress) -> None:
        line = f"draining {kind}/{name}: " + ("; ".join(progress.left) or "done")
        if live and line != last[0]:
            sys.stdout.write("\r\x1b[2K" + line[:200])
            sys.stdout.flush()
            last[0] = line

    with Registry() as registry:
        answer = wait_command(registry, command, timeout=COMMAND_TIMEOUT)
        if answer.startswith("error: "):
            raise NotFound(answer.removeprefix("error: "), hint="clawctl status lists pools and agents")
        try:
            wait_drained(registry, f"{kind}/{name}", started, timeout=limit, on_progress=show)
        finally:
            if live and last[0]:
                sys.stdout.write("\r\x1b[2K")
    what = "replaced" if kind == "agent" else "stopped; it stays cordoned until `clawctl uncordon`"
    sys.stdout.write(f"{kind}/{name} drained: sessions moved, {what}\n")
    return ExitCode.OK


def uncordon_command(
    target: Annotated[str, typer.Argument(help="agent/ID, pool/NAME or fleet/NAME.")],
) -> int:
    """Lift a drain: a pool or fleet gets its agents again; an agent still draining serves again.
    Exit 0 done, 1 when TARGET was not cordoned."""
    from clawctl.cli.targets import parse_target
    from clawctl.daemon.draining import wait_command
    from clawctl.errors import NotFound
    from clawctl.registry.engine import Registry

    kind, name = parse_target(target)
    command, _ = _queue("uncordon", f"{kind}/{name}")
    with Registry() as registry:
        answer = wait_command(registry, command, timeout=COMMAND_TIMEOUT)
    if answer.startswith("error: "):
        raise NotFound(answer.removeprefix("error: "), hint="clawctl status shows what is drained")
    sys.stdout.write(answer + "\n")
    return ExitCode.OK
