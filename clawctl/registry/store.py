"""Reads and writes of the desired state over one connection (the caller owns the transaction)."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

import clawctl
from clawctl.config.normalize import Document, canonical_json
from clawctl.plan import Action, FleetSnapshot, Op, Plan
from clawctl.registry.records import (
    FleetStatus,
    GitInfo,
    PoolStatus,
    RevisionInfo,
    RevisionKind,
    RevisionMeta,
)
from clawctl.registry.tables import fleets, policies, pools, revisions

_TABLES = {"AgentPool": pools, "CommunicationPolicy": policies}


def pack_documents(documents: Sequence[Document]) -> bytes:
    """Documents as stored in ``revisions.documents``: zlib-compressed canonical JSON."""
    return zlib.compress(canonical_json(list(documents)).encode("utf-8"), 6)


def unpack_documents(blob: bytes) -> list[Document]:
    """The inverse of ``pack_documents``."""
    return list(json.loads(zlib.decompress(blob).decode("utf-8")))


def fleet_snapshot(conn: Connection, name: str) -> FleetSnapshot | None:
    """The head of fleet ``name`` (None when the registry does not hold it, or it was deleted)."""
    row = conn.execute(sa.select(fleets).where(fleets.c.name == name)).first()
    if row is None or row.deleted_at is not None or row.revision is None:
        return None
    docs: list[Document] = [row.spec]
    for table in (pools, policies):
        query = sa.select(table.c.spec).where(table.c.fleet_id == row.id).order_by(table.c.name)
        docs += [spec for (spec,) in conn.execute(query)]
    return FleetSnapshot(name=name, revision=row.revision, content_hash=row.content_hash, documents=tuple(docs))


def fleet_head(conn: Connection, name: str) -> tuple[int, str] | None:
    """(revision, content hash) of fleet ``name``'s head, or None; reads one row."""
    row = conn.execute(sa.select(fleets.c.revision, fleets.c.content_hash, fleets.c.deleted_at)
                       .where(fleets.c.name == name)).first()
    if row is None or row.deleted_at is not None or row.revision is None:
        return None
    return row.revision, row.content_hash


def write_plan(conn: Connection, plan: Plan, *, meta: RevisionMeta, now: datetime) -> int:
    """Record ``plan`` as a new revision and make the desired-state tables match it.

    Returns the new revision number. Everything happens on ``conn``; the caller's
    transaction makes it all-or-nothing.
    """
    fleet_id = _fleet_id(conn, plan, now)
    number = int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(revisions.c.number), 0))).scalar_one()) + 1
    _insert_revision(conn, fleet_id, number, plan, meta, now)
    _write_objects(conn, fleet_id, number, plan.actions)
    values: dict[str, Any] = {"revision": number, "content_hash": plan.content_hash, "updated_at": now,
                              "deleted_at": now if plan.deletes_fleet else None}
    if not plan.deletes_fleet:
        values["spec"] = plan.documents[0]
    conn.execute(sa.update(fleets).where(fleets.c.id == fleet_id).values(**values))
    return number


def _fleet_id(conn: Connection, plan: Plan, now: datetime) -> int:
    found = conn.execute(sa.select(fleets.c.id).where(fleets.c.name == plan.fleet)).scalar()
    if found is not None:
        return int(found)
    result = conn.execute(sa.insert(fleets).values(name=plan.fleet, spec=plan.documents[0], revision=None,
                                                   content_hash=None, created_at=now, updated_at=now))
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _insert_revision(conn: Connection, fleet_id: int, number: int, plan: Plan, meta: RevisionMeta,
                     now: datetime) -> None:
    git = meta.git
    conn.execute(sa.insert(revisions).values(
        number=number, fleet_id=fleet_id, kind=meta.kind.value, created_at=now, applied_by=meta.applied_by,
        message=meta.message, content_hash=plan.content_hash, documents=pack_documents(plan.documents),
        summary=plan.counts(), source=list(meta.source),
        git_root=git.root if git else None, git_commit=git.commit if git else None,
        git_dirty=git.dirty if git else None, clawctl_version=clawctl.__version__, rollback_of=meta.rollback_of,
    ))


def _write_objects(conn: Connection, fleet_id: int, number: int, actions: Sequence[Action]) -> None:
    """Insert, update and delete pool and policy rows; bulk statements where they can be."""
    for kind, table in _TABLES.items():
        mine = [a for a in actions if a.kind == kind]
        created = [_row(fleet_id, number, kind, a.document) for a in mine if a.op is Op.CREATE]
        if created:
            conn.execute(sa.insert(table), created)
        for action in (a for a in mine if a.op is Op.UPDATE):
            row = _row(fleet_id, number, kind, action.document)
            conn.execute(sa.update(table).where(table.c.fleet_id == fleet_id, table.c.name == action.name)
                         .values(**{k: v for k, v in row.items() if k not in ("fleet_id", "name")}))
        deleted = [a.name for a in mine if a.op is Op.DELETE]
        if deleted:
            conn.execute(sa.delete(table).where(table.c.fleet_id == fleet_id, table.c.name.in_(deleted)))


def _row(fleet_id: int, number: int, kind: str, document: Document | None) -> dict[str, Any]:
    assert document is not None
    row: dict[str, Any] = {"fleet_id": fleet_id, "name": document["metadata"]["name"], "spec": document,
                           "revision": number}
    if kind == "AgentPool":
        row["replicas"] = int(document["spec"]["replicas"])
    return row


_REVISION_COLUMNS = [c for c in revisions.c if c.name != "documents"]


def _revision_info(row: Row[Any]) -> RevisionInfo:
    git = GitInfo(root=row.git_root, commit=row.git_commit, dirty=bool(row.git_dirty)) if row.git_root else None
    return RevisionInfo(
        number=row.number, fleet=row.fleet, kind=RevisionKind(row.kind), created_at=row.created_at,
        applied_by=row.applied_by, message=row.message, content_hash=row.content_hash,
        summary=dict(row.summary), source=tuple(row.source), git=git, clawctl_version=row.clawctl_version,
        rollback_of=row.rollback_of,
    )


def _revision_query() -> sa.Select[Any]:
    return sa.select(*_REVISION_COLUMNS, fleets.c.name.label("fleet")).join(fleets, fleets.c.id == revisions.c.fleet_id)


def list_revisions(conn: Connection, fleet: str | None = None) -> list[RevisionInfo]:
    """Every revision (of ``fleet``, or of all fleets), oldest first."""
    query = _revision_query().order_by(revisions.c.number)
    if fleet is not None:
        query = query.where(fleets.c.name == fleet)
    return [_revision_info(row) for row in conn.execute(query)]


def get_revision(conn: Connection, number: int) -> tuple[RevisionInfo, list[Document]] | None:
    """Revision ``number`` and its documents, or None."""
    row = conn.execute(_revision_query().add_columns(revisions.c.documents)
                       .where(revisions.c.number == number)).first()
    if row is None:
        return None
    return _revision_info(row), unpack_documents(row.documents)


def fleet_names(conn: Connection, *, deleted: bool = False) -> list[str]:
    """Names of the fleets in the registry (with ``deleted``: also those deleted since)."""
    query = sa.select(fleets.c.name).order_by(fleets.c.name)
    if not deleted:
        query = query.where(fleets.c.deleted_at.is_(None), fleets.c.revision.is_not(None))
    return [name for (name,) in conn.execute(query)]


def desired_status(conn: Connection) -> list[FleetStatus]:
    """Every live fleet with its pools and policy names, by name."""
    heads = conn.execute(
        sa.select(fleets, revisions.c.applied_by)
        .join(revisions, revisions.c.number == fleets.c.revision)
        .where(fleets.c.deleted_at.is_(None))
        .order_by(fleets.c.name)
    ).all()
    pool_rows: dict[int, list[PoolStatus]] = {}
    for row in conn.execute(sa.select(pools).order_by(pools.c.name)):
        pool_rows.setdefault(row.fleet_id, []).append(
            PoolStatus(name=row.name, replicas=row.replicas, revision=row.revision, document=row.spec))
    policy_rows: dict[int, list[str]] = {}
    for fleet_id, name in conn.execute(sa.select(policies.c.fleet_id, policies.c.name).order_by(policies.c.name)):
        policy_rows.setdefault(fleet_id, []).append(name)
    return [
        FleetStatus(name=row.name, revision=row.revision, content_hash=row.content_hash, updated_at=row.updated_at,
                    applied_by=row.applied_by, description=row.spec.get("spec", {}).get("description", ""),
                    pools=tuple(pool_rows.get(row.id, ())), policies=tuple(policy_rows.get(row.id, ())))
        for row in heads
    ]
