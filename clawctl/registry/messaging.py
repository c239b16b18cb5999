"""Durable agent messages and shared state: row-level reads and writes.

Each function works on one connection; the caller owns the transaction. Writes
of messages come in batches: the daemon groups the sends, deliveries and
acknowledgements of many requests into one transaction (``Writes``, stored by
``write``, or on SQLite by ``write_sqlite`` straight through the driver).

Message states: ``queued`` (stored, not delivered yet) → ``delivered`` (sent to
the recipient at least once) → ``acked`` (the recipient handled it), or ``dead``
(delivered the maximum number of times without an acknowledgement).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection

from clawctl.errors import Conflict
from clawctl.registry.tables import messages, shared_state

_m = messages.c
_st = shared_state.c


class MessageState(str, Enum):
    QUEUED = "queued"
    DELIVERED = "delivered"
    ACKED = "acked"
    DEAD = "dead"


PENDING = (MessageState.QUEUED.value, MessageState.DELIVERED.value)


@dataclass(frozen=True)
class MessageRow:
    """One message. ``sender`` and ``recipient`` are ``fleet/agent-id`` keys, or ``operator``."""

    id: str
    fleet_id: int
    sender: str
    target: str
    recipient: str
    payload: Any
    state: MessageState
    seq: int
    attempts: int
    client_id: str | None
    created_at: datetime
    delivered_at: datetime | None = None
    acked_at: datetime | None = None


@dataclass
class Writes:
    """The message writes of one group commit."""

    inserts: list[MessageRow] = field(default_factory=list)
    moved: list[tuple[str, str]] = field(default_factory=list)
    """(message id, new recipient) of pending messages re-placed in their pool."""
    delivered: list[tuple[str, int, datetime]] = field(default_factory=list)
    """(message id, deliveries so far, when) of redeliveries."""
    acked: list[tuple[str, datetime]] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.inserts or self.moved or self.delivered or self.acked or self.dead)


def _row(r: Any) -> MessageRow:
    return MessageRow(r["id"], r["fleet_id"], r["sender"], r["target"] or r["recipient"], r["recipient"],
                      r["payload"], MessageState(r["state"]), r["seq"] or 0, r["attempts"], r["client_id"],
                      r["created_at"], r["delivered_at"], r["acked_at"])


_IS_PENDING = sa.or_(*(_m.state == sa.literal_column(f"'{state}'") for state in PENDING))
"""Pending, written without bound parameters: statements run with executemany cannot expand an IN list."""
_INSERT = sa.insert(messages)
_DELIVERED = (sa.update(messages).where(_m.id == sa.bindparam("m_id"), _IS_PENDING)
              .values(state=MessageState.DELIVERED.value, attempts=sa.bindparam("m_attempts"),
                      delivered_at=sa.bindparam("m_at")))
_ACKED = (sa.update(messages).where(_m.id == sa.bindparam("m_id"), _IS_PENDING)
          .values(state=MessageState.ACKED.value, acked_at=sa.bindparam("m_at")))
_DEAD = (sa.update(messages).where(_m.id == sa.bindparam("m_id"), _IS_PENDING)
         .values(state=MessageState.DEAD.value))
_MOVED = (sa.update(messages).where(_m.id == sa.bindparam("m_id"), _IS_PENDING)
          .values(recipient=sa.bindparam("m_recipient")))


def max_seq(conn: Connection) -> int:
    """The highest ``seq`` stored (0 when none): the daemon continues from it."""
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(_m.seq), 0))).scalar_one())


def by_client_ids(conn: Connection, fleet_id: int, sender: str, client_ids: Sequence[str]) -> dict[str, MessageRow]:
    """Messages ``sender`` already stored under these client ids (a unique index serves it)."""
    if not client_ids:
        return {}
    query = sa.select(messages).where(_m.fleet_id == fleet_id, _m.sender == sender, _m.client_id.in_(client_ids))
    return {r["client_id"]: _row(r) for r in conn.execute(query).mappings()}


def write(conn: Connection, writes: Writes) -> set[str]:
    """Store one flush in the caller's transaction: inserts first, then re-placements, deliveries,
    acknowledgements and dead letters (acked or dead messages are left alone). Returns the ids of
    new messages refused because their (sender, client id) is taken; all the others are stored."""
    if _fast(conn):
        return write_sqlite(conn.connection.driver_connection, writes)  # type: ignore[arg-type]
    refused: set[str] = set()
    try:
        with conn.begin_nested():
            insert(conn, writes.inserts)
    except Conflict:  # a rare race of two retries with one id: store the others one by one
        for row in writes.inserts:
            try:
                with conn.begin_nested():
                    insert(conn, [row])
            except Conflict:
                refused.add(row.id)
    move(conn, writes.moved)
    mark_delivered(conn, writes.delivered)
    mark_acked(conn, writes.acked)
    mark_dead(conn, writes.dead)
    return refused


# The hot path of durable messaging, on SQLite, goes to the driver directly (SQLAlchemy's per-row
# bind processing and statement machinery cost more than SQLite's own work at thousands of
# messages per second). The values are stored exactly as the SQLAlchemy types store them
# (UTCDateTime: naive UTC text; JSON: json.dumps), so every other reader sees the same rows; other
# databases take the SQLAlchemy path.
_SQLITE_INSERT_HEAD = ("INSERT INTO messages (id, fleet_id, kind, sender, recipient, target, topic, session_id, "
                       "payload, state, attempts, created_at, seq, client_id) VALUES")
_SQLITE_ROW = "(?, ?, 'direct', ?, ?, ?, NULL, NULL, ?, ?, ?, ?, ?, ?)"
_SQLITE_SKIP_TAKEN = " ON CONFLICT (fleet_id, sender, client_id) DO NOTHING"
_SQLITE_CHUNK = 500
"""Rows per statement (11 parameters each, well under SQLite's 32,766)."""
_SQLITE_PENDING = "state IN ('queued', 'delivered')"
_SQLITE_DELIVERED = (f"UPDATE messages SET state = 'delivered', attempts = ?, delivered_at = ? WHERE id = ? "
                     f"AND {_SQLITE_PENDING}")
_SQLITE_MOVED = f"UPDATE messages SET recipient = ? WHERE id = ? AND {_SQLITE_PENDING}"
_SQLITE_DEAD = f"UPDATE messages SET state = 'dead' WHERE id = ? AND {_SQLITE_PENDING}"


def _sqlite_time(value: datetime) -> str:
    """A UTC time as SQLAlchemy's SQLite DateTime stores it."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def _fast(conn: Connection) -> bool:
    return conn.dialect.name == "sqlite"


def _sqlite_insert(db: sqlite3.Connection, rows: Sequence[MessageRow], *, skip_taken: bool) -> set[str]:
    """Insert ``rows`` with one multi-row statement per chunk: a single step of SQLite (executemany
    would step, and release and re-take the GIL, once per row). ``skip_taken``: a row whose
    (sender, client id) is taken is left out and its id returned; otherwise IntegrityError."""
    refused: set[str] = set()
    tail = _SQLITE_SKIP_TAKEN if skip_taken else ""
    times: dict[datetime, str] = {}  # the messages of one request share their time: format it once

    def stamp(at: datetime) -> str:
        text = times.get(at)
        if text is None:
            text = times[at] = _sqlite_time(at)
        return text

    for start in range(0, len(rows), _SQLITE_CHUNK):
        chunk = rows[start:start + _SQLITE_CHUNK]
        cursor = db.execute(f"{_SQLITE_INSERT_HEAD} {', '.join([_SQLITE_ROW] * len(chunk))}{tail}", [
            value for r in chunk for value in (
                r.id, r.fleet_id, r.sender, r.recipient, r.target, json.dumps(r.payload), r.state.value,
                r.attempts, stamp(r.created_at), r.seq, r.client_id)])
        if cursor.rowcount < len(chunk):  # some were skipped: which ones (rare: a retry raced in)
            ids = [r.id for r in chunk]
            stored = {i for (i,) in db.execute(f"SELECT id FROM messages WHERE id IN ({', '.join('?' * len(ids))})",
                                               ids)}
            refused.update(i for i in ids if i not in stored)
    return refused


def _sqlite_acked(db: sqlite3.Connection, items: Sequence[tuple[str, datetime]]) -> None:
    """One statement per chunk, stamped with the newest acknowledgement time of the chunk."""
    for start in range(0, len(items), _SQLITE_CHUNK):
        chunk = items[start:start + _SQLITE_CHUNK]
        db.execute(f"UPDATE messages SET state = 'acked', acked_at = ? WHERE id IN ({', '.join('?' * len(chunk))}) "
                   f"AND {_SQLITE_PENDING}", (_sqlite_time(max(at for _, at in chunk)), *(i for i, _ in chunk)))


def write_sqlite(db: sqlite3.Connection, writes: Writes) -> set[str]:
    """``write`` on SQLite's own driver connection, in the transaction the caller opened on it."""
    refused = _sqlite_insert(db, writes.inserts, skip_taken=True) if writes.inserts else set()
    if writes.moved:
        db.executemany(_SQLITE_MOVED, [(r, i) for i, r in writes.moved])
    if writes.delivered:
        db.executemany(_SQLITE_DELIVERED, [(n, _sqlite_time(at), i) for i, n, at in writes.delivered])
    if writes.acked:
        _sqlite_acked(db, writes.acked)
    if writes.dead:
        db.executemany(_SQLITE_DEAD, [(i,) for i in writes.dead])
    return refused


def insert(conn: Connection, rows: Sequence[MessageRow]) -> None:
    """Store new messages. Conflict (and none stored) when a (sender, client id) is taken."""
    if not rows:
        return
    try:
        if _fast(conn):
            _sqlite_insert(conn.connection.driver_connection, rows, skip_taken=False)  # type: ignore[arg-type]
            return
        conn.execute(_INSERT, [
            {"id": r.id, "fleet_id": r.fleet_id, "kind": "direct", "sender": r.sender, "recipient": r.recipient,
             "target": r.target, "topic": None, "session_id": None, "payload": r.payload, "state": r.state.value,
             "attempts": r.attempts, "created_at": r.created_at, "seq": r.seq, "client_id": r.client_id}
            for r in rows])
    except (exc.IntegrityError, sqlite3.IntegrityError) as err:
        raise Conflict("a message with this sender's id is stored already") from err


def mark_delivered(conn: Connection, items: Iterable[tuple[str, int, datetime]]) -> None:
    """(message id, attempts so far, when) for each delivery; acked or dead messages are left alone."""
    params = [{"m_id": i, "m_attempts": n, "m_at": at} for i, n, at in items]
    if params:
        conn.execute(_DELIVERED, params)


def mark_acked(conn: Connection, items: Iterable[tuple[str, datetime]]) -> None:
    params = [{"m_id": i, "m_at": at} for i, at in items]
    if params:
        conn.execute(_ACKED, params)


def mark_dead(conn: Connection, ids: Iterable[str]) -> None:
    params = [{"m_id": i} for i in ids]
    if params:
        conn.execute(_DEAD, params)


def move(conn: Connection, items: Iterable[tuple[str, str]]) -> None:
    """(message id, new recipient) for pending messages re-placed in their pool."""
    params = [{"m_id": i, "m_recipient": r} for i, r in items]
    if params:
        conn.execute(_MOVED, params)


def pending(conn: Connection, *, limit: int = 1_000_000) -> list[MessageRow]:
    """Every queued or delivered message, in ``seq`` order (the daemon's start)."""
    rows: list[MessageRow] = []
    for state in PENDING:
        query = sa.select(messages).where(_m.state == state).order_by(_m.seq).limit(limit)
        rows += [_row(r) for r in conn.execute(query).mappings()]
    rows.sort(key=lambda r: r.seq)
    return rows


def listing(conn: Connection, *, state: MessageState | None = None, recipient: str | None = None,
            fleet_id: int | None = None, limit: int = 100) -> list[MessageRow]:
    """Messages, newest first (by ``seq``), filtered."""
    query = sa.select(messages)
    if state is not None:
        query = query.where(_m.state == state.value)
    if recipient is not None:
        query = query.where(_m.recipient == recipient)
    if fleet_id is not None:
        query = query.where(_m.fleet_id == fleet_id)
    return [_row(r) for r in conn.execute(query.order_by(_m.seq.desc()).limit(limit)).mappings()]


# --- shared state ------------------------------------------------------------------------------


def state_get(conn: Connection, fleet_id: int, key: str) -> tuple[Any, int]:
    """(value, version) of ``key``; (None, 0) when it was never written."""
    found = conn.execute(sa.select(_st.value, _st.version).where(_st.fleet_id == fleet_id, _st.key == key)).first()
    return (found.value, found.version) if found is not None else (None, 0)


def state_set(conn: Connection, fleet_id: int, key: str, value: Any, *, expected_version: int, by: str,
              at: datetime) -> int:
    """Write ``key`` if its version is still ``expected_version`` (0: it must not exist); returns the
    new version. Conflict for a stale version: a write is refused, never lost silently."""
    if expected_version == 0:
        try:
            with conn.begin_nested():
                conn.execute(sa.insert(shared_state).values(fleet_id=fleet_id, key=key, value=value, version=1,
                                                            updated_at=at, updated_by=by))
        except exc.IntegrityError as err:
            raise _stale(conn, fleet_id, key, expected_version) from err
        return 1
    result = conn.execute(sa.update(shared_state)
                          .where(_st.fleet_id == fleet_id, _st.key == key, _st.version == expected_version)
                          .values(value=value, version=expected_version + 1, updated_at=at, updated_by=by))
    if not result.rowcount:
        raise _stale(conn, fleet_id, key, expected_version)
    return expected_version + 1


def _stale(conn: Connection, fleet_id: int, key: str, expected: int) -> Conflict:
    _, version = state_get(conn, fleet_id, key)
    return Conflict(f"state key {key!r} is at version {version}, not {expected}: someone wrote it meanwhile",
                    hint="read it again (state.get) and retry the write with the version you read")
