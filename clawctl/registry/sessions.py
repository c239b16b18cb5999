"""The session store: row-level, indexed reads and writes of sessions and their history.

Each function works on one connection; the caller owns the transaction. No
function reads or rewrites more than the rows it names (or a ``limit`` of them):
every query is an index lookup or an index range, and each operation issues a
small, fixed number of statements (tests/registry/test_sessions.py counts them
over 10,000 sessions and checks SQLite's query plans).

Guarantees:

- ``last_activity_at`` moves only in ``touch_interaction`` (a real message or
  reply), never on state writes, history appends, moves or closes.
- ``set_state`` is compare-and-set on ``version``: a stale version raises Conflict.
- ``prune_closed`` deletes only Closed sessions, with their history.
- Functions taking ``owner`` act only if that agent owns the session, checked in
  the same statement that acts: PolicyDenied for another agent's session.
- Unknown sessions raise NotFound; a change the session's state forbids
  (e.g. writing to a Closed session) raises Conflict.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection

from clawctl.errors import Conflict, NotFound, PolicyDenied, RegistryError
from clawctl.policies.session_lifecycle import ACTIVE, CloseReason, SessionState
from clawctl.registry.records import (
    DueSession,
    HistoryEntry,
    HistoryRole,
    SessionCursor,
    SessionData,
    SessionFilter,
    SessionPage,
    SessionRow,
)
from clawctl.registry.tables import UTCDateTime, agents, session_history, sessions

__all__ = [
    "append_history", "assign_agent", "begin_close", "claim_unclaimed", "close", "count_open_by_agent",
    "count_unclaimed_by_agent", "create_session", "record_interaction",
    "due_for_expiry", "get_session", "get_state", "hold", "list_sessions", "prune_closed", "read_history",
    "require_owner", "set_state", "touch_interaction",
]

OCCUPYING = (SessionState.OPEN, SessionState.CLOSING)
"""States that hold a place on their agent (least-connections counts them)."""

_ALL_STATES = tuple(SessionState)
_s = sessions.c
_META = [c for c in sessions.c if c.name != "data"]
"""Every column but the state blob: listings never read state."""


def _states(values: Iterable[SessionState]) -> list[str]:
    return [SessionState(v).value for v in values]


def _row(r: Mapping[Any, Any]) -> SessionRow:
    return SessionRow(
        id=r["id"], fleet_id=r["fleet_id"], pool=r["pool"], agent_id=r["agent_id"], key=r["key"],
        state=SessionState(r["state"]), version=r["version"], state_size=r["state_size"],
        history_len=r["history_len"], created_at=r["created_at"], last_activity_at=r["last_activity_at"],
        closing_deadline=r["closing_deadline"],
        close_reason=CloseReason(r["close_reason"]) if r["close_reason"] else None,
        closed_at=r["closed_at"], parent_id=r["parent_id"], opened_by=r["opened_by"], claimed=bool(r["claimed"]),
    )


def _size(data: Any) -> int:
    if data is None:
        return 0
    return len(json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())


def _by_id(session_id: str, owner: str | None) -> sa.ColumnElement[bool]:
    clause = _s.id == session_id
    return clause if owner is None else sa.and_(clause, _s.agent_id == owner)


def _missed(conn: Connection, session_id: str, owner: str | None, allowed: Sequence[SessionState],
            doing: str) -> Exception:
    """Why a guarded statement matched no row (runs only on that failure path)."""
    found = conn.execute(sa.select(_s.agent_id, _s.state).where(_s.id == session_id)).first()
    if found is None:
        return NotFound(f"session {session_id} does not exist", hint="clawctl sessions list shows the sessions")
    if owner is not None and found.agent_id != owner:
        return PolicyDenied(f"agent {owner} does not own session {session_id}",
                            hint="an agent may read and write only its own sessions")
    if found.state not in _states(allowed):
        return Conflict(f"cannot {doing} session {session_id}: it is {found.state}")
    return Conflict(f"cannot {doing} session {session_id}: it changed meanwhile")


# --- create and read ---------------------------------------------------------------------------


def create_session(conn: Connection, *, fleet_id: int, pool: str, agent_id: str | None, now: datetime,
                   key: str | None = None, data: Any = None, parent_id: str | None = None,
                   session_id: str | None = None, state: SessionState = SessionState.OPEN,
                   opened_by: str | None = None, claimed: bool = True) -> SessionRow:
    """Insert one session (id: a new random one unless given) and return it.

    ``last_activity_at`` starts at ``now``: idleness counts from the opening until
    the first real interaction. Raises Conflict for an id in use, NotFound for an
    unknown fleet or agent (either leaves the caller's transaction to be rolled back).
    """
    row = {
        "id": session_id or uuid.uuid4().hex, "fleet_id": fleet_id, "pool": pool, "agent_id": agent_id,
        "key": key, "state": SessionState(state).value, "data": data, "version": 0, "state_size": _size(data),
        "history_len": 0, "created_at": now, "last_activity_at": now, "closing_deadline": None,
        "close_reason": None, "closed_at": None, "parent_id": parent_id, "opened_by": opened_by,
        "claimed": claimed,
    }
    try:
        conn.execute(sa.insert(sessions).values(**row))
    except exc.IntegrityError as err:
        text = str(err.orig).lower()
        if "unique" in text or "duplicate" in text:
            raise Conflict(f"session {row['id']} already exists") from err
        if "foreign key" in text:
            raise NotFound(f"cannot open a session on fleet {fleet_id}, agent {agent_id}: no such fleet or agent",
                           hint="clawctl status shows the fleet's agents") from err
        raise RegistryError(f"the registry refused session {row['id']}: {err.orig}") from err
    del row["data"]
    return _row(row)


def get_session(conn: Connection, session_id: str, *, owner: str | None = None) -> SessionRow:
    """One session without its state (one primary-key lookup). NotFound, or PolicyDenied for a non-owner."""
    found = conn.execute(sa.select(*_META).where(_s.id == session_id)).mappings().first()
    if found is None:
        raise NotFound(f"session {session_id} does not exist", hint="clawctl sessions list shows the sessions")
    if owner is not None and found["agent_id"] != owner:
        raise PolicyDenied(f"agent {owner} does not own session {session_id}",
                           hint="an agent may read and write only its own sessions")
    return _row(found)


def require_owner(conn: Connection, session_id: str, agent_id: str) -> SessionRow:
    """The session if ``agent_id`` owns it; NotFound or PolicyDenied otherwise."""
    return get_session(conn, session_id, owner=agent_id)


def get_state(conn: Connection, session_id: str, *, owner: str | None = None) -> SessionData:
    """A session's state and its version (one primary-key lookup)."""
    found = conn.execute(
        sa.select(_s.data, _s.version, _s.agent_id).where(_s.id == session_id)).first()
    if found is None:
        raise NotFound(f"session {session_id} does not exist", hint="clawctl sessions list shows the sessions")
    if owner is not None and found.agent_id != owner:
        raise PolicyDenied(f"agent {owner} does not own session {session_id}",
                           hint="an agent may read and write only its own sessions")
    return SessionData(found.data, found.version)


def _listing(f: SessionFilter) -> tuple[list[sa.ColumnElement[bool]], bool]:
    """Conditions of a filter but its states, and whether a per-state index range serves it."""
    where: list[sa.ColumnElement[bool]] = []
    if f.fleet_id is not None:
        where.append(_s.fleet_id == f.fleet_id)
    if f.pool is not None:
        where.append(_s.pool == f.pool)
    if f.agent_id is not None:
        where.append(_s.agent_id == f.agent_id)
    if f.key is not None:
        where.append(_s.key == f.key)
    if f.parent_id is not None:
        where.append(_s.parent_id == f.parent_id)
    return where, f.key is None and f.parent_id is None


def list_sessions(conn: Connection, filters: SessionFilter = SessionFilter(), *, limit: int = 100,
                  after: SessionCursor | None = None, newest_first: bool = True) -> SessionPage:
    """One page of sessions (without state), ordered by (created_at, id), newest first by default.

    Keyset pagination: pass the page's ``next`` as ``after``. One statement per
    state asked for (at most four), each an index range of at most ``limit + 1`` rows.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    where, _ = _listing(filters)
    order = (_s.created_at.desc(), _s.id.desc()) if newest_first else (_s.created_at.asc(), _s.id.asc())
    if after is not None:
        if newest_first:
            where.append(sa.and_(_s.created_at <= after.created_at,
                                 sa.or_(_s.created_at < after.created_at, _s.id < after.id)))
        else:
            where.append(sa.and_(_s.created_at >= after.created_at,
                                 sa.or_(_s.created_at > after.created_at, _s.id > after.id)))
    found: list[SessionRow] = []
    # One range per state keeps each query in index order (an IN list would sort every match).
    for state in _states(filters.states or _ALL_STATES):
        query = sa.select(*_META).where(_s.state == state, *where).order_by(*order).limit(limit + 1)
        found += [_row(r) for r in conn.execute(query).mappings()]
    found.sort(key=lambda r: (r.created_at, r.id), reverse=newest_first)
    page = tuple(found[:limit])
    more = len(found) > limit
    return SessionPage(page, SessionCursor(page[-1].created_at, page[-1].id) if more else None)


def count_open_by_agent(conn: Connection, fleet_id: int, pool: str) -> dict[str, int]:
    """Open + Closing sessions per agent of the pool, every agent listed (0 included).

    Reads the pool's agents and an index-only count of their sessions: for
    least-connections placement.
    """
    joined = agents.outerjoin(sessions, sa.and_(_s.agent_id == agents.c.id, _s.state.in_(_states(OCCUPYING))))
    query = (sa.select(agents.c.id, sa.func.count(_s.agent_id)).select_from(joined)
             .where(agents.c.fleet_id == fleet_id, agents.c.pool == pool).group_by(agents.c.id))
    return {agent_id: int(n) for agent_id, n in conn.execute(query)}


def claim_unclaimed(conn: Connection, agent_id: str, *, key: str | None, opened_by: str | None) -> SessionRow | None:
    """Hand out one Open session that ``creation: eager`` pre-opened on ``agent_id`` (oldest
    first), now carrying ``key``; None when the agent has none waiting."""
    candidate = conn.execute(
        sa.select(_s.id).where(_s.agent_id == agent_id, _s.state == SessionState.OPEN.value, _s.claimed.is_(False))
        .order_by(_s.created_at, _s.id).limit(1)).scalar()
    if candidate is None:
        return None
    result = conn.execute(sa.update(sessions).where(_s.id == candidate, _s.claimed.is_(False))
                          .values(claimed=True, key=key, opened_by=opened_by))
    return get_session(conn, candidate) if result.rowcount else None


def count_unclaimed_by_agent(conn: Connection, fleet_id: int, pool: str) -> dict[str, int]:
    """Open, not yet handed out (eager) sessions per agent of the pool; agents without any are absent."""
    query = (sa.select(_s.agent_id, sa.func.count()).where(
        _s.fleet_id == fleet_id, _s.pool == pool, _s.state == SessionState.OPEN.value, _s.claimed.is_(False))
        .group_by(_s.agent_id))
    return {agent_id: int(n) for agent_id, n in conn.execute(query) if agent_id is not None}


# --- owner, activity and state -------------------------------------------------------------------


def assign_agent(conn: Connection, session_id: str, agent_id: str, *, from_agent: str | None = None,
                 pool: str | None = None) -> None:
    """Place an Open or Orphaned session on ``agent_id`` (it becomes Open), keeping state and history.

    For failover and drain. Not an interaction: ``last_activity_at`` stays. With
    ``from_agent``, only if the session is still on that agent (Conflict otherwise).
    With ``pool``, the session also moves to that pool (a drained pool's fallbackPool).
    """
    allowed = (SessionState.OPEN, SessionState.ORPHANED)
    where = [_s.id == session_id, _s.state.in_(_states(allowed))]
    if from_agent is not None:
        where.append(_s.agent_id == from_agent)
    values: dict[str, Any] = {"agent_id": agent_id, "state": SessionState.OPEN.value}
    if pool is not None:
        values["pool"] = pool
    result = conn.execute(sa.update(sessions).where(*where).values(**values))
    if not result.rowcount:
        raise _missed(conn, session_id, None, allowed, "move")


def hold(conn: Connection, session_id: str) -> None:
    """Make an Open session Orphaned: nobody owns it, its state waits for the operator."""
    result = conn.execute(sa.update(sessions).where(_s.id == session_id, _s.state == SessionState.OPEN.value)
                          .values(agent_id=None, state=SessionState.ORPHANED.value))
    if not result.rowcount:
        raise _missed(conn, session_id, None, (SessionState.OPEN,), "hold")


def touch_interaction(conn: Connection, session_id: str, *, at: datetime, owner: str | None = None) -> None:
    """Record a real interaction (a message reached the agent, or it replied) at ``at``.

    The only function that moves ``last_activity_at``; it never moves it back.
    Open or Closing sessions only.
    """
    allowed = (SessionState.OPEN, SessionState.CLOSING)
    at_param = sa.bindparam("touch_at", at, type_=UTCDateTime())
    newest = sa.case((_s.last_activity_at < at_param, at_param), else_=_s.last_activity_at)
    result = conn.execute(sa.update(sessions).where(_by_id(session_id, owner), _s.state.in_(_states(allowed)))
                          .values(last_activity_at=newest))
    if not result.rowcount:
        raise _missed(conn, session_id, owner, allowed, "talk to")


def set_state(conn: Connection, session_id: str, data: Any, *, expected_version: int,
              owner: str | None = None) -> int:
    """Replace the state if its version is still ``expected_version``; returns the new version.

    One statement. Conflict for a stale version or a Closed session. Not an interaction.
    """
    result = conn.execute(
        sa.update(sessions)
        .where(_by_id(session_id, owner), _s.version == expected_version, _s.state.in_(_states(ACTIVE)))
        .values(data=data, version=_s.version + 1, state_size=_size(data)))
    if not result.rowcount:
        error = _missed(conn, session_id, owner, tuple(ACTIVE), "write the state of")
        if isinstance(error, Conflict) and "changed meanwhile" in error.message:
            error = Conflict(f"the state of session {session_id} is no longer version {expected_version}",
                             hint="read it again and retry")
        raise error
    return expected_version + 1


def append_history(conn: Connection, session_id: str, role: HistoryRole, content: Any, *, at: datetime,
                   owner: str | None = None) -> HistoryEntry:
    """Append one entry to an active session's history (one row; the session's counter gives its seq).

    Not an interaction by itself: the caller also calls ``touch_interaction`` for a
    message or reply. Two statements (three where UPDATE … RETURNING is missing).
    """
    bump = (sa.update(sessions).where(_by_id(session_id, owner), _s.state.in_(_states(ACTIVE)))
            .values(history_len=_s.history_len + 1))
    if conn.dialect.update_returning:
        seq = conn.execute(bump.returning(_s.history_len)).scalar()
    else:
        seq = conn.execute(sa.select(_s.history_len).where(_s.id == session_id)).scalar() \
            if conn.execute(bump).rowcount else None
    if seq is None:
        raise _missed(conn, session_id, owner, tuple(ACTIVE), "append to")
    entry = HistoryEntry(session_id, int(seq), at, HistoryRole(role), content)
    conn.execute(sa.insert(session_history).values(session_id=session_id, seq=entry.seq, at=at,
                                                   role=entry.role.value, content=content))
    return entry


def _interaction_statement(open_only: bool, check_opener: bool) -> Any:
    """UPDATE that counts one history entry and moves ``last_activity_at`` (never back), built
    once per variant: this is the hot path of every message and reply."""
    at = sa.bindparam("i_at", type_=UTCDateTime())
    where = [_s.id == sa.bindparam("i_id")]
    where.append(_s.state == SessionState.OPEN.value if open_only else _s.state.in_(_states(ACTIVE)))
    if open_only:
        where.append(_s.agent_id.is_not(None))
    if check_opener:
        where.append(_s.opened_by == sa.bindparam("i_opener"))
    return (sa.update(sessions).where(*where)
            .values(history_len=_s.history_len + 1,
                    last_activity_at=sa.case((_s.last_activity_at < at, at), else_=_s.last_activity_at)))


_INTERACTIONS = {(o, c): _interaction_statement(o, c) for o in (False, True) for c in (False, True)}
_INSERT_ENTRY = sa.insert(session_history)
_OWNER_AND_SEQ = sa.select(_s.agent_id, _s.history_len).where(_s.id == sa.bindparam("i_id"))


def record_interaction(conn: Connection, session_id: str, role: HistoryRole, content: Any, *, at: datetime,
                       open_only: bool = False, opener: str | None = None) -> tuple[str | None, int]:
    """A message to, or a reply from, a session's agent: appends ``content`` to its history and
    moves ``last_activity_at`` to ``at``, in two statements (three without UPDATE … RETURNING).

    ``open_only``: only an Open session with an owner (a new message); otherwise any active
    one (a reply may land while it closes). ``opener``: only if that agent opened it (None:
    no such check, for the operator). Returns (owner agent id, the entry's seq); NotFound,
    PolicyDenied or Conflict when the session does not qualify.
    """
    check_opener = opener is not None
    params: dict[str, Any] = {"i_id": session_id, "i_at": at}
    if check_opener:
        params["i_opener"] = opener
    bump = _INTERACTIONS[(open_only, check_opener)]
    if conn.dialect.update_returning:
        found = conn.execute(bump.returning(_s.agent_id, _s.history_len), params).first()
    else:
        found = conn.execute(_OWNER_AND_SEQ, {"i_id": session_id}).first() \
            if conn.execute(bump, params).rowcount else None
    if found is None:
        row = get_session(conn, session_id)
        if check_opener and row.opened_by != opener:
            raise PolicyDenied(f"agent {opener} may not send to session {session_id}",
                               hint="an agent may send only to sessions it opened")
        raise Conflict(f"session {session_id} is {row.state.value}, it takes no messages", hint="open a new session")
    owner, seq = found
    conn.execute(_INSERT_ENTRY, {"session_id": session_id, "seq": int(seq), "at": at,
                                 "role": HistoryRole(role).value, "content": content})
    return owner, int(seq)


def read_history(conn: Connection, session_id: str, *, limit: int = 100, after: int | None = None,
                 before: int | None = None, owner: str | None = None) -> tuple[HistoryEntry, ...]:
    """A page of history, oldest first: the first ``limit`` entries after seq ``after``, else
    the latest ``limit`` before seq ``before`` (or the latest overall). An index range."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if owner is not None:
        require_owner(conn, session_id, owner)
    h = session_history.c
    query = sa.select(session_history).where(h.session_id == session_id).limit(limit)
    if after is not None:
        query = query.where(h.seq > after).order_by(h.seq)
    else:
        if before is not None:
            query = query.where(h.seq < before)
        query = query.order_by(h.seq.desc())
    rows = [HistoryEntry(r["session_id"], r["seq"], r["at"], HistoryRole(r["role"]), r["content"])
            for r in conn.execute(query).mappings()]
    return tuple(rows if after is not None else reversed(rows))


# --- closing, expiry and pruning -----------------------------------------------------------------


def begin_close(conn: Connection, session_id: str, *, reason: CloseReason, deadline: datetime,
                owner: str | None = None) -> None:
    """Open → Closing with ``reason`` until ``deadline`` (graceful cleanup). Conflict unless Open."""
    result = conn.execute(
        sa.update(sessions).where(_by_id(session_id, owner), _s.state == SessionState.OPEN.value)
        .values(state=SessionState.CLOSING.value, closing_deadline=deadline,
                close_reason=CloseReason(reason).value))
    if not result.rowcount:
        raise _missed(conn, session_id, owner, (SessionState.OPEN,), "begin closing")


def close(conn: Connection, session_id: str, *, reason: CloseReason, at: datetime, drop_state: bool = False,
          owner: str | None = None) -> bool:
    """Close an active session at ``at``; False (and no change) if it was Closed already.

    The record stays for inspection until pruned. ``drop_state`` (ephemeral
    retention) also deletes its state and history.
    """
    values: dict[str, Any] = {"state": SessionState.CLOSED.value, "closed_at": at,
                              "close_reason": CloseReason(reason).value}
    if drop_state:
        values.update(data=None, state_size=0, history_len=0)
    result = conn.execute(sa.update(sessions).where(_by_id(session_id, owner), _s.state.in_(_states(ACTIVE)))
                          .values(**values))
    if not result.rowcount:
        error = _missed(conn, session_id, owner, tuple(ACTIVE), "close")
        if isinstance(error, Conflict):
            return False
        raise error
    if drop_state:
        conn.execute(sa.delete(session_history).where(session_history.c.session_id == session_id))
    return True


def _limit(seconds: float | None) -> timedelta | None:
    return timedelta(seconds=seconds) if seconds is not None and seconds > 0 else None


def due_for_expiry(conn: Connection, fleet_id: int, pool: str, *, idle_timeout: float | None,
                   max_lifetime: float | None, now: datetime, limit: int = 500) -> tuple[DueSession, ...]:
    """The pool's sessions due at ``now`` (at most ``limit``, earliest deadline first, ties by id).

    Exactly what ``session_lifecycle.due_sessions`` decides for the same rows:
    Open ends at the earlier of idle and lifetime deadline (max-lifetime on a
    tie), Orphaned only by lifetime, Closing at its ``closing_deadline``; the
    deadline instant counts as due; a limit of None or ≤ 0 is off. At most four
    index ranges of ``limit`` rows each.
    """
    idle, lifetime = _limit(idle_timeout), _limit(max_lifetime)
    base = (_s.fleet_id == fleet_id, _s.pool == pool)
    cols = (_s.id, _s.state, _s.created_at, _s.last_activity_at, _s.closing_deadline)
    queries = []
    if idle is not None:
        queries.append(sa.select(*cols).where(*base, _s.state == SessionState.OPEN.value,
                                              _s.last_activity_at <= now - idle)
                       .order_by(_s.last_activity_at, _s.id).limit(limit))
    if lifetime is not None:
        for state in (SessionState.OPEN, SessionState.ORPHANED):
            queries.append(sa.select(*cols).where(*base, _s.state == state.value, _s.created_at <= now - lifetime)
                           .order_by(_s.created_at, _s.id).limit(limit))
    queries.append(sa.select(*cols).where(*base, _s.state == SessionState.CLOSING.value,
                                          _s.closing_deadline <= now)
                   .order_by(_s.closing_deadline, _s.id).limit(limit))
    due: dict[str, DueSession] = {}
    for query in queries:
        for r in conn.execute(query):
            found = _deadline(SessionState(r.state), r.created_at, r.last_activity_at, r.closing_deadline,
                              idle, lifetime)
            if found is not None and found[0] <= now:
                due[r.id] = DueSession(r.id, found[1], found[0])
    return tuple(sorted(due.values(), key=lambda d: (d.at, d.session_id))[:limit])


def _deadline(state: SessionState, created: datetime, last: datetime, closing: datetime | None,
              idle: timedelta | None, lifetime: timedelta | None) -> tuple[datetime, CloseReason] | None:
    if state is SessionState.CLOSING:
        return None if closing is None else (closing, CloseReason.GRACE_EXPIRED)
    found: list[tuple[datetime, CloseReason]] = []
    if lifetime is not None:
        found.append((created + lifetime, CloseReason.MAX_LIFETIME))
    if idle is not None and state is SessionState.OPEN:
        found.append((last + idle, CloseReason.IDLE_TIMEOUT))
    return min(found, key=lambda d: d[0]) if found else None


def prune_closed(conn: Connection, *, max_age: float | None, max_count: int | None, now: datetime,
                 limit: int = 1000) -> tuple[str, ...]:
    """Delete Closed sessions (and their history) closed more than ``max_age`` seconds ago,
    then the oldest beyond the newest ``max_count``; at most ``limit`` per call, oldest first.

    Returns the ids deleted; call again while it returns ``limit`` ids. Never
    touches an active session. As ``session_lifecycle.prune`` decides, except that
    a Closed row without ``closed_at`` is neither pruned nor counted.
    """
    closed = (_s.state == SessionState.CLOSED.value, _s.closed_at.is_not(None))
    # Everything to delete sorts before one bound in (closed_at, id) order: the
    # later of the age bound and the newest row beyond max_count.
    bounds: list[tuple[datetime, str]] = []
    if max_age is not None:
        bounds.append((now - timedelta(seconds=max_age), ""))  # every id sorts after ""
    if max_count is not None and max_count > 0:
        kept = conn.execute(sa.select(_s.closed_at, _s.id).where(*closed)
                            .order_by(_s.closed_at.desc(), _s.id.desc()).offset(max_count - 1).limit(1)).first()
        if kept is not None:
            bounds.append((kept.closed_at, kept.id))
    query = sa.select(_s.id).where(*closed).order_by(_s.closed_at, _s.id).limit(limit)
    if max_count is None or max_count > 0:
        if not bounds:
            return ()
        at, last_id = max(bounds)
        query = query.where(_s.closed_at <= at,
                            sa.or_(_s.closed_at < at, _s.id < last_id) if last_id else _s.closed_at < at)
    # Locked until the transaction ends (PostgreSQL; a SQLite writer excludes every other),
    # so none of them can be reopened or moved before it is deleted by id alone (a state
    # term there would make SQLite walk the state index instead of the primary key).
    ids = tuple(conn.execute(query.with_for_update()).scalars())
    if ids:
        conn.execute(sa.delete(session_history).where(session_history.c.session_id.in_(ids)))
        conn.execute(sa.delete(sessions).where(_s.id.in_(ids)))
    return ids
