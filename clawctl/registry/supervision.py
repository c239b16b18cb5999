"""Registry reads and writes of the daemon: desired pools, agent rows, events, commands.

Each function works on one connection; the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clawctl.registry.tables import agents, commands, cordons, events, fleets, pools


@dataclass(frozen=True)
class FleetHead:
    fleet_id: int
    name: str
    revision: int | None


@dataclass(frozen=True)
class AgentRow:
    """An ``agents`` row as plain data."""

    fleet: str
    fleet_id: int
    agent_id: str
    pool: str
    slot: int
    state: str
    pid: int | None
    process_started: float | None
    spec_hash: str | None
    restarts: int
    last_exit_code: int | None
    last_exit_reason: str | None
    started_at: float | None
    next_start_at: float | None
    message: str | None
    enforcement: dict[str, str] | None
    updated_at: datetime | None = None
    token_digest: str | None = None
    role: str = "primary"
    drain_deadline: float | None = None


@dataclass(frozen=True)
class Command:
    id: int
    verb: str
    target: str
    actor: str
    args: dict[str, Any] | None = None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def fleet_heads(conn: Connection) -> list[FleetHead]:
    """Every fleet that is not deleted, with its newest revision number (a cheap change check)."""
    rows = conn.execute(
        sa.select(fleets.c.id, fleets.c.name, fleets.c.revision).where(fleets.c.deleted_at.is_(None))
    ).all()
    return [FleetHead(r.id, r.name, r.revision) for r in rows]


def pool_documents(conn: Connection, fleet_id: int) -> list[dict[str, Any]]:
    """The normalized AgentPool documents of one fleet."""
    rows = conn.execute(sa.select(pools.c.spec).where(pools.c.fleet_id == fleet_id).order_by(pools.c.name)).all()
    return [dict(r.spec) for r in rows]


def agent_key(fleet: str, agent_id: str) -> str:
    """Primary key of an agent row: agent ids are unique within a fleet."""
    return f"{fleet}/{agent_id}"


def load_agents(conn: Connection, *, fleet: str | None = None) -> list[AgentRow]:
    """Every agent row (of ``fleet`` only, when given), with its fleet's name."""
    query = sa.select(agents, fleets.c.name.label("fleet_name")).join(fleets, fleets.c.id == agents.c.fleet_id)
    if fleet is not None:
        query = query.where(fleets.c.name == fleet)
    out = []
    for r in conn.execute(query).mappings():
        out.append(AgentRow(
            fleet=r["fleet_name"], fleet_id=r["fleet_id"], agent_id=r["id"].split("/", 1)[-1], pool=r["pool"],
            slot=r["ordinal"], state=r["state"], pid=r["pid"], process_started=r["process_started"],
            spec_hash=r["spec_hash"], restarts=r["restarts"], last_exit_code=r["last_exit_code"],
            last_exit_reason=r["last_exit_reason"], started_at=r["started_at"], next_start_at=r["next_start_at"],
            message=r["message"], enforcement=r["enforcement"], updated_at=r["updated_at"],
            token_digest=r["token_digest"], role=r["role"] or "primary", drain_deadline=r["drain_deadline"],
        ))
    return out


def save_agents(conn: Connection, rows: Sequence[AgentRow], removed: Iterable[str] = ()) -> None:
    """Insert or update ``rows`` and delete the rows keyed ``fleet/agent`` in ``removed``."""
    now = _now()
    gone = list(removed)
    if gone:
        conn.execute(sa.delete(agents).where(agents.c.id.in_(gone)))
    if not rows:
        return
    keys = [agent_key(r.fleet, r.agent_id) for r in rows]
    existing = set(conn.execute(sa.select(agents.c.id).where(agents.c.id.in_(keys))).scalars())
    for key, r in zip(keys, rows):
        values = {
            "fleet_id": r.fleet_id, "pool": r.pool, "ordinal": r.slot, "state": r.state, "pid": r.pid,
            "process_started": r.process_started, "spec_hash": r.spec_hash, "restarts": r.restarts,
            "last_exit_code": r.last_exit_code, "last_exit_reason": r.last_exit_reason,
            "started_at": r.started_at, "next_start_at": r.next_start_at, "message": r.message,
            "enforcement": r.enforcement, "updated_at": now, "token_digest": r.token_digest,
            "role": None if r.role == "primary" else r.role, "drain_deadline": r.drain_deadline,
        }
        if key in existing:
            conn.execute(sa.update(agents).where(agents.c.id == key).values(**values))
        else:
            conn.execute(sa.insert(agents).values(id=key, created_at=now, **values))


def append_events(conn: Connection, items: Iterable[tuple[float, str, str, str, str, str]]) -> None:
    """Record events given as (at epoch seconds, fleet, target, reason, level, message)."""
    rows = [
        {"at": datetime.fromtimestamp(at, timezone.utc), "fleet": fleet, "target": target, "reason": reason,
         "level": level, "message": message}
        for at, fleet, target, reason, level, message in items
    ]
    if rows:
        conn.execute(sa.insert(events), rows)


def prune_events(conn: Connection, *, keep: int) -> int:
    """Delete all but the newest ``keep`` events; returns how many went."""
    newest = conn.execute(sa.select(sa.func.max(events.c.id))).scalar()
    if newest is None or newest <= keep:
        return 0
    result = conn.execute(sa.delete(events).where(events.c.id <= newest - keep))
    return int(result.rowcount or 0)


def recent_events(conn: Connection, *, fleet: str | None = None, target: str | None = None,
                  limit: int = 100) -> list[dict[str, Any]]:
    """The newest ``limit`` events, oldest first."""
    query = sa.select(events).order_by(events.c.id.desc()).limit(limit)
    if fleet:
        query = query.where(events.c.fleet == fleet)
    if target:
        query = query.where(events.c.target == target)
    return [dict(r) for r in reversed(conn.execute(query).mappings().all())]


def enqueue_command(conn: Connection, *, verb: str, target: str, actor: str,
                    args: dict[str, Any] | None = None) -> int:
    """Queue an operator command for the daemon; returns its id."""
    result = conn.execute(sa.insert(commands).values(created_at=_now(), actor=actor, verb=verb, target=target,
                                                     args=args))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def pending_commands(conn: Connection) -> list[Command]:
    rows = conn.execute(sa.select(commands).where(commands.c.done_at.is_(None)).order_by(commands.c.id)).mappings()
    return [Command(r["id"], r["verb"], r["target"], r["actor"], r["args"]) for r in rows]


def complete_command(conn: Connection, command_id: int, result: str) -> None:
    conn.execute(sa.update(commands).where(commands.c.id == command_id).values(done_at=_now(), result=result))


def command_result(conn: Connection, command_id: int) -> str | None:
    """What the daemon answered to a queued command, or None while it is pending."""
    row = conn.execute(sa.select(commands.c.done_at, commands.c.result).where(commands.c.id == command_id)).first()
    return None if row is None or row.done_at is None else (row.result or "")


FLEET_WIDE = "*"
"""The ``cordons.pool`` of a whole-fleet cordon."""


def load_cordons(conn: Connection) -> set[tuple[int, str]]:
    """Every cordon as (fleet id, pool name or ``*``)."""
    return {(r.fleet_id, r.pool) for r in conn.execute(sa.select(cordons.c.fleet_id, cordons.c.pool))}


def add_cordon(conn: Connection, fleet_id: int, pool: str, *, actor: str) -> bool:
    """Cordon ``pool`` (``*``: the whole fleet); False when it already was."""
    exists = conn.execute(sa.select(cordons.c.pool).where(cordons.c.fleet_id == fleet_id,
                                                          cordons.c.pool == pool)).first()
    if exists is not None:
        return False
    conn.execute(sa.insert(cordons).values(fleet_id=fleet_id, pool=pool, created_at=_now(), actor=actor))
    return True


def remove_cordons(conn: Connection, fleet_id: int, pool: str | None = None) -> int:
    """Lift the cordon of ``pool`` (``*``: the fleet-wide one; None: every cordon of the fleet)."""
    query = sa.delete(cordons).where(cordons.c.fleet_id == fleet_id)
    if pool is not None:
        query = query.where(cordons.c.pool == pool)
    return int(conn.execute(query).rowcount or 0)
