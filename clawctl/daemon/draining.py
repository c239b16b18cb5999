"""``clawctl drain --timeout``: watch the registry until a drain is done, or time out.

Done means: for ``agent/ID``, the process that was drained has ended and its slot
runs again (the agent was replaced, so ``replicas`` holds); for ``pool/NAME`` and
``fleet/NAME``, no agent of the target has a process any more. Sessions moved
before each stop; those that could not move are counted in what is left.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa

from clawctl.daemon.targets import target_matches
from clawctl.errors import ClawctlError
from clawctl.policies.session_lifecycle import SessionState
from clawctl.policies.supervision import ACTIVE, AgentState
from clawctl.registry import supervision as store
from clawctl.registry.engine import Registry
from clawctl.registry.tables import sessions

POLL_SECONDS = 0.1
_ACTIVE_NAMES = frozenset(s.value for s in ACTIVE)


@dataclass(frozen=True)
class DrainProgress:
    done: bool
    left: tuple[str, ...]
    """What the drain still waits for, one phrase per agent (``web-1 Draining, 2 sessions``)."""


def drain_progress(target: str, started: Mapping[str, int | None], rows: Iterable[store.AgentRow],
                   open_sessions: Mapping[str, int]) -> DrainProgress:
    """Progress of draining ``target``; ``started`` maps each matched agent key to its pid when the
    drain was asked for. Pure: rows and session counts are read by the caller."""
    kind = target.partition("/")[0]
    matched = [r for r in rows if target_matches(target, fleet=r.fleet, pool=r.pool, agent_id=r.agent_id)]
    left = []
    for row in matched:
        key = f"{row.fleet}/{row.agent_id}"
        sessions_left = open_sessions.get(key, 0)
        if kind == "agent":
            replaced = row.pid != started.get(key) and row.state == AgentState.RUNNING.value
            if key in started and not replaced:
                left.append(_phrase(row, sessions_left))
        elif row.state in _ACTIVE_NAMES:
            left.append(_phrase(row, sessions_left))
    return DrainProgress(not left, tuple(left))


def _phrase(row: store.AgentRow, sessions_left: int) -> str:
    return f"{row.agent_id} {row.state}" + (f", {sessions_left} session(s)" if sessions_left else "")


def snapshot(registry: Registry) -> tuple[list[store.AgentRow], dict[str, int]]:
    """Every agent row and the Open sessions per agent key."""
    with registry.reading() as conn:
        if conn is None:
            return [], {}
        rows = store.load_agents(conn)
        counts = conn.execute(sa.select(sessions.c.agent_id, sa.func.count()).where(
            sessions.c.state == SessionState.OPEN.value, sessions.c.agent_id.is_not(None))
            .group_by(sessions.c.agent_id)).all()
    return rows, {agent: int(n) for agent, n in counts}


def wait_drained(registry: Registry, target: str, started: Mapping[str, int | None], *, timeout: float,
                 on_progress: Callable[[DrainProgress], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
    """Return once ``target`` is drained; raise naming what is left after ``timeout``."""
    deadline = clock() + timeout
    while True:
        rows, counts = snapshot(registry)
        progress = drain_progress(target, started, rows, counts)
        if on_progress is not None:
            on_progress(progress)
        if progress.done:
            return
        if clock() >= deadline:
            raise ClawctlError(f"{target} is not drained after {timeout:g}s: {'; '.join(progress.left)}",
                               hint="the drain goes on in the background; see `clawctl status` and "
                                    "`clawctl events`")
        sleep(POLL_SECONDS)


def wait_command(registry: Registry, command_id: int, *, timeout: float,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> str:
    """The daemon's answer to a queued command; raise if it gives none within ``timeout``."""
    deadline = clock() + timeout
    while True:
        with registry.reading() as conn:
            result = store.command_result(conn, command_id) if conn is not None else None
        if result is not None:
            return result
        if clock() >= deadline:
            raise ClawctlError(f"the daemon did not take the command within {timeout:g}s",
                               hint="is it running? `clawctl daemon status`")
        sleep(POLL_SECONDS)
