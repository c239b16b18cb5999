"""The audit log: who did what to what, and whether it was allowed. Append-only.

Each function works on one connection; the caller owns the transaction, so an
operator action and its audit row commit or roll back together. Nothing here
updates or deletes a row, and no control-socket method reaches this module
except the daemon's own appends.

Reads are newest-first over the index on ``at`` (``ORDER BY at DESC LIMIT n``,
``WHERE at >= since``); the other filters narrow that walk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clawctl.registry.tables import audit

ALLOWED = "allowed"
DENIED = "denied"


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    """``user NAME`` (the CLI, on the registry), ``operator (pid N, uid U)``, ``agent fleet/agent-id``,
    or ``pid N`` for a refused peer."""
    action: str
    """What was attempted: ``apply``, ``rollback``, ``delete``, ``retry``, ``hello``, ``sessions.open``…"""
    target: str
    outcome: str
    """``allowed`` or ``denied``."""
    detail: Mapping[str, Any] | None = None


def user_actor(user: str) -> str:
    """The actor of an action the CLI records on the registry for login ``user``: ``user NAME``."""
    return f"user {user}"


def operator_entry(user: str, action: str, target: str, detail: Mapping[str, Any] | None = None, *,
                   at: datetime | None = None) -> AuditEntry:
    """An allowed operator action done by the CLI on the registry (``at`` defaults to now)."""
    return AuditEntry(at or datetime.now(timezone.utc), user_actor(user), action, target, ALLOWED, detail)


def record(conn: Connection, entries: list[AuditEntry]) -> None:
    """Append ``entries`` (one statement)."""
    if entries:
        conn.execute(sa.insert(audit), [
            {"at": e.at, "actor": e.actor[:255], "action": e.action[:64], "target": e.target[:255],
             "outcome": e.outcome[:16], "detail": dict(e.detail) if e.detail is not None else None}
            for e in entries])


def recent(conn: Connection, *, limit: int = 100, since: datetime | None = None, action: str | None = None,
           outcome: str | None = None, actor: str | None = None) -> list[AuditEntry]:
    """The newest ``limit`` entries, oldest first; each filter given narrows them (AND).

    ``since``: at or after this time; ``action`` and ``outcome``: exactly these;
    ``actor``: actors containing this text, ignoring case.
    """
    query = sa.select(audit).order_by(audit.c.at.desc(), audit.c.id.desc()).limit(limit)
    if since is not None:
        query = query.where(audit.c.at >= since)
    if action is not None:
        query = query.where(audit.c.action == action)
    if outcome is not None:
        query = query.where(audit.c.outcome == outcome)
    if actor:
        query = query.where(audit.c.actor.icontains(actor, autoescape=True))
    rows = conn.execute(query).mappings().all()
    return [AuditEntry(r["at"], r["actor"], r["action"], r["target"], r["outcome"], r["detail"])
            for r in reversed(rows)]
