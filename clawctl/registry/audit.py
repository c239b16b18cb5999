"""The audit log: who did what to what, and whether it was allowed. Append-only.

Each function works on one connection; the caller owns the transaction. Nothing
here updates or deletes a row, and no control-socket method reaches this module
except to append.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clawctl.registry.tables import audit


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    """``operator (pid N, uid U)``, ``agent fleet/agent-id``, or ``pid N`` for a refused peer."""
    action: str
    """What was attempted: ``hello``, ``sessions.open``, ``sessions.close``…"""
    target: str
    outcome: str
    """``allowed`` or ``denied``."""
    detail: Mapping[str, Any] | None = None


def record(conn: Connection, entries: list[AuditEntry]) -> None:
    """Append ``entries`` (one statement)."""
    if entries:
        conn.execute(sa.insert(audit), [
            {"at": e.at, "actor": e.actor[:255], "action": e.action[:64], "target": e.target[:255],
             "outcome": e.outcome[:16], "detail": dict(e.detail) if e.detail is not None else None}
            for e in entries])


def recent(conn: Connection, *, limit: int = 100, since: datetime | None = None) -> list[AuditEntry]:
    """The newest ``limit`` entries (at or after ``since``), oldest first."""
    query = sa.select(audit).order_by(audit.c.at.desc(), audit.c.id.desc()).limit(limit)
    if since is not None:
        query = query.where(audit.c.at >= since)
    rows = conn.execute(query).mappings().all()
    return [AuditEntry(r["at"], r["actor"], r["action"], r["target"], r["outcome"], r["detail"])
            for r in reversed(rows)]
