"""The session store: each function on SQLite (and PostgreSQL when configured), agreement with
the pure lifecycle decisions, ownership, the 0004 migration, and row-level work at 10,000 sessions."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clawctl.config.model import Sessions
from clawctl.errors import Conflict, NotFound, PolicyDenied
from clawctl.policies import session_lifecycle as lifecycle
from clawctl.policies.session_lifecycle import CloseReason, SessionState, SessionTimes
from clawctl.registry import migrate
from clawctl.registry import sessions as store
from clawctl.registry.engine import Registry
from clawctl.registry.records import HistoryRole, SessionCursor, SessionFilter
from clawctl.registry.tables import agents, fleets, messages, session_history, sessions

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
POOL = "support"
A0, A1, A2 = (f"demo/{POOL}-{i}" for i in range(3))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def seed(conn: Connection, *, n_agents: int = 3) -> int:
    """A fleet ``demo`` with agents demo/support-0… in pool ``support``; returns the fleet id."""
    fleet_id = conn.execute(sa.insert(fleets).values(name="demo", spec={}, created_at=T0, updated_at=T0)
                            ).inserted_primary_key[0]  # type: ignore[index]
    conn.execute(sa.insert(agents), [
        {"id": f"demo/{POOL}-{i}", "fleet_id": fleet_id, "pool": POOL, "ordinal": i, "state": "Running",
         "created_at": T0, "updated_at": T0} for i in range(n_agents)])
    return int(fleet_id)


@pytest.fixture
def conn(registry: Registry) -> Iterator[Connection]:
    """A write transaction on a registry holding the seeded fleet (rolled back at the end)."""
    with registry.writing() as c:
        c.info["fleet_id"] = seed(c)
        yield c


def fid(conn: Connection) -> int:
    return int(conn.info["fleet_id"])


def new(conn: Connection, sid: str, agent: str | None = A0, *, t: float = 0, **kwargs: Any) -> None:
    store.create_session(conn, session_id=sid, fleet_id=fid(conn), pool=POOL, agent_id=agent, now=at(t), **kwargs)


# --- correctness ---------------------------------------------------------------------------------


def test_create_and_get(conn: Connection) -> None:
    row = store.create_session(conn, fleet_id=fid(conn), pool=POOL, agent_id=A0, now=T0, key="k", data={"a": 1})
    assert store.get_session(conn, row.id) == row
    assert (row.state, row.version, row.state_size, row.history_len) == (SessionState.OPEN, 0, 7, 0)
    assert row.last_activity_at == row.created_at == T0 and row.closed_at is None
    assert store.get_state(conn, row.id).data == {"a": 1}
    with pytest.raises(NotFound):
        store.get_session(conn, "nope")


def test_duplicate_id_is_a_conflict(registry: Registry) -> None:
    with registry.writing() as c:
        c.info["fleet_id"] = seed(c)
        new(c, "s1")
    with pytest.raises(Conflict), registry.writing() as c:
        store.create_session(c, session_id="s1", fleet_id=1, pool=POOL, agent_id=A0, now=T0)


def test_unknown_agent_is_not_found(registry: Registry) -> None:
    with pytest.raises(NotFound), registry.writing() as c:
        seed(c)
        store.create_session(c, session_id="s1", fleet_id=1, pool=POOL, agent_id="demo/ghost", now=T0)


def test_an_agent_reaches_only_its_own_sessions(conn: Connection) -> None:
    new(conn, "mine", A0, data={"secret": 1})
    before = store.get_session(conn, "mine")
    attempts = [
        lambda: store.get_session(conn, "mine", owner=A1),
        lambda: store.require_owner(conn, "mine", A1),
        lambda: store.get_state(conn, "mine", owner=A1),
        lambda: store.set_state(conn, "mine", {"stolen": 1}, expected_version=0, owner=A1),
        lambda: store.touch_interaction(conn, "mine", at=at(5), owner=A1),
        lambda: store.append_history(conn, "mine", HistoryRole.AGENT, "x", at=at(5), owner=A1),
        lambda: store.read_history(conn, "mine", owner=A1),
        lambda: store.begin_close(conn, "mine", reason=CloseReason.REQUESTED, deadline=at(9), owner=A1),
        lambda: store.close(conn, "mine", reason=CloseReason.REQUESTED, at=at(9), owner=A1),
    ]
    for attempt in attempts:
        with pytest.raises(PolicyDenied):
            attempt()
    assert store.get_session(conn, "mine") == before
    assert store.get_state(conn, "mine").data == {"secret": 1}
    assert store.require_owner(conn, "mine", A0) == before
    with pytest.raises(NotFound):
        store.require_owner(conn, "other", A0)
    assert store.list_sessions(conn, SessionFilter(agent_id=A1)).rows == ()


def test_set_state_is_compare_and_set(conn: Connection) -> None:
    new(conn, "s")
    assert store.set_state(conn, "s", {"n": 1}, expected_version=0, owner=A0) == 1
    with pytest.raises(Conflict, match="no longer version 0"):
        store.set_state(conn, "s", {"n": 2}, expected_version=0)
    assert store.get_state(conn, "s") == store.SessionData({"n": 1}, 1)
    assert store.get_session(conn, "s").state_size == len('{"n":1}')
    store.close(conn, "s", reason=CloseReason.REQUESTED, at=at(1))
    with pytest.raises(Conflict, match="Closed"):
        store.set_state(conn, "s", {"n": 3}, expected_version=1)
    with pytest.raises(NotFound):
        store.set_state(conn, "nope", {}, expected_version=0)


def test_only_real_interactions_move_last_activity(conn: Connection) -> None:
    new(conn, "s")
    store.set_state(conn, "s", {"n": 1}, expected_version=0)
    store.append_history(conn, "s", HistoryRole.SYSTEM, "note", at=at(10))
    store.hold(conn, "s")
    store.assign_agent(conn, "s", A1)
    store.begin_close(conn, "s", reason=CloseReason.IDLE_TIMEOUT, deadline=at(99))
    assert store.get_session(conn, "s").last_activity_at == T0
    store.touch_interaction(conn, "s", at=at(20), owner=A1)  # a message during the grace period
    store.touch_interaction(conn, "s", at=at(15))  # late, out of order: never moves back
    assert store.get_session(conn, "s").last_activity_at == at(20)
    store.close(conn, "s", reason=CloseReason.GRACE_EXPIRED, at=at(99))
    with pytest.raises(Conflict):
        store.touch_interaction(conn, "s", at=at(100))


def test_history_appends_rows_and_pages_both_ways(conn: Connection) -> None:
    new(conn, "s")
    new(conn, "t")
    for i in range(1, 8):
        entry = store.append_history(conn, "s", HistoryRole.USER if i % 2 else HistoryRole.AGENT, {"i": i},
                                     at=at(i), owner=A0)
        assert entry.seq == i
    store.append_history(conn, "t", HistoryRole.USER, "other", at=at(1))
    seqs = lambda entries: [e.seq for e in entries]  # noqa: E731
    assert seqs(store.read_history(conn, "s", limit=3)) == [5, 6, 7]
    assert seqs(store.read_history(conn, "s", limit=3, before=5)) == [2, 3, 4]
    assert seqs(store.read_history(conn, "s", limit=3, after=0)) == [1, 2, 3]
    assert seqs(store.read_history(conn, "s", limit=3, after=6)) == [7]
    first = store.read_history(conn, "s", limit=1, after=0, owner=A0)[0]
    assert (first.role, first.content, first.at) == (HistoryRole.USER, {"i": 1}, at(1))
    assert store.get_session(conn, "s").history_len == 7
    store.close(conn, "s", reason=CloseReason.REQUESTED, at=at(9))
    with pytest.raises(Conflict):
        store.append_history(conn, "s", HistoryRole.USER, "late", at=at(10))


def test_failover_moves_a_session_with_its_state(conn: Connection) -> None:
    new(conn, "s", A0, data={"keep": True})
    store.append_history(conn, "s", HistoryRole.USER, "hi", at=at(1))
    store.hold(conn, "s")
    held = store.get_session(conn, "s")
    assert (held.state, held.agent_id) == (SessionState.ORPHANED, None)
    with pytest.raises(Conflict):
        store.assign_agent(conn, "s", A2, from_agent=A0)
    store.assign_agent(conn, "s", A2)
    moved = store.get_session(conn, "s")
    assert (moved.state, moved.agent_id, moved.version, moved.history_len) == (SessionState.OPEN, A2, 0, 1)
    assert store.get_state(conn, "s").data == {"keep": True}
    store.assign_agent(conn, "s", A1, from_agent=A2)
    store.close(conn, "s", reason=CloseReason.REQUESTED, at=at(2))
    with pytest.raises(Conflict):
        store.assign_agent(conn, "s", A0)
    with pytest.raises(NotFound):
        store.assign_agent(conn, "nope", A0)


def test_count_open_by_agent_counts_sessions_that_occupy_an_agent(conn: Connection) -> None:
    for i, agent in enumerate([A0, A0, A0, A1]):
        new(conn, f"s{i}", agent)
    store.begin_close(conn, "s1", reason=CloseReason.REQUESTED, deadline=at(5))
    store.close(conn, "s2", reason=CloseReason.REQUESTED, at=at(5))
    assert store.count_open_by_agent(conn, fid(conn), POOL) == {A0: 2, A1: 1, A2: 0}
    assert store.count_open_by_agent(conn, fid(conn), "other") == {}


def test_close_keeps_the_record_and_drops_state_on_request(conn: Connection) -> None:
    new(conn, "keep", data={"x": 1})
    new(conn, "drop", data={"x": 1})
    for sid in ("keep", "drop"):
        store.append_history(conn, sid, HistoryRole.USER, "hi", at=at(1))
    store.begin_close(conn, "keep", reason=CloseReason.IDLE_TIMEOUT, deadline=at(30), owner=A0)
    with pytest.raises(Conflict):
        store.begin_close(conn, "keep", reason=CloseReason.IDLE_TIMEOUT, deadline=at(30))
    assert store.close(conn, "keep", reason=CloseReason.GRACE_EXPIRED, at=at(30)) is True
    assert store.close(conn, "keep", reason=CloseReason.REQUESTED, at=at(40)) is False
    assert store.close(conn, "drop", reason=CloseReason.AGENT_LOST, at=at(2), drop_state=True) is True
    kept, dropped = store.get_session(conn, "keep"), store.get_session(conn, "drop")
    assert (kept.state, kept.closed_at, kept.close_reason, kept.closing_deadline) == (
        SessionState.CLOSED, at(30), CloseReason.GRACE_EXPIRED, at(30))
    assert len(store.read_history(conn, "keep")) == 1 and store.get_state(conn, "keep").data == {"x": 1}
    assert (dropped.state, dropped.close_reason, dropped.history_len, dropped.state_size) == (
        SessionState.CLOSED, CloseReason.AGENT_LOST, 0, 0)
    assert store.read_history(conn, "drop") == () and store.get_state(conn, "drop").data is None
    with pytest.raises(NotFound):
        store.close(conn, "nope", reason=CloseReason.REQUESTED, at=at(1))


def test_list_sessions_pages_by_keyset_with_ties(conn: Connection) -> None:
    ids = [f"s{i:02d}" for i in range(23)]
    for i, sid in enumerate(ids):
        new(conn, sid, [A0, A1][i % 2], t=i // 3, key=f"k{i % 4}")  # three sessions per instant
    for sid in ids[:5]:
        store.close(conn, sid, reason=CloseReason.REQUESTED, at=at(50))
    expected = sorted(((store.get_session(conn, s).created_at, s) for s in ids), reverse=True)

    def walk(f: SessionFilter, newest_first: bool = True) -> list[str]:
        seen: list[str] = []
        cursor: SessionCursor | None = None
        while True:
            page = store.list_sessions(conn, f, limit=4, after=cursor, newest_first=newest_first)
            seen += [r.id for r in page.rows]
            if page.next is None:
                return seen
            cursor = page.next

    assert walk(SessionFilter(fleet_id=fid(conn), pool=POOL)) == [s for _, s in expected]
    assert walk(SessionFilter(), newest_first=False) == [s for _, s in reversed(expected)]
    assert walk(SessionFilter(fleet_id=fid(conn), pool=POOL, states=(SessionState.CLOSED,))) == ids[4::-1]
    assert walk(SessionFilter(agent_id=A1, states=(SessionState.OPEN,))) == [
        s for _, s in expected if int(s[1:]) % 2 and int(s[1:]) >= 5]
    assert set(walk(SessionFilter(fleet_id=fid(conn), pool=POOL, key="k1"))) == {s for s in ids if int(s[1:]) % 4 == 1}
    assert store.list_sessions(conn, SessionFilter(pool="other")).rows == ()


POLICY = Sessions(idle_timeout=100.0, max_lifetime=1000.0)


def _times(conn: Connection) -> list[SessionTimes]:
    out = []
    for r in conn.execute(sa.select(sessions)).mappings():
        out.append(SessionTimes(r["id"], SessionState(r["state"]), (r["created_at"] - T0).total_seconds(),
                                (r["last_activity_at"] - T0).total_seconds(),
                                None if r["closing_deadline"] is None else (r["closing_deadline"] - T0).total_seconds(),
                                None if r["closed_at"] is None else (r["closed_at"] - T0).total_seconds()))
    return out


def _random_sessions(conn: Connection, rng: random.Random, n: int) -> None:
    for i in range(n):
        sid = f"r{i:03d}"
        new(conn, sid, rng.choice([A0, A1, A2]), t=rng.choice([0, 100, 200, 500, 900, 1000]))
        created = store.get_session(conn, sid).created_at
        if rng.random() < 0.6:
            store.touch_interaction(conn, sid, at=created + timedelta(seconds=rng.choice([0, 50, 100, 400, 1000])))
        roll = rng.random()
        if roll < 0.15:
            store.hold(conn, sid)
        elif roll < 0.3:
            store.begin_close(conn, sid, reason=CloseReason.REQUESTED,
                              deadline=created + timedelta(seconds=rng.choice([10, 600, 2000])))
        elif roll < 0.45:
            store.close(conn, sid, reason=CloseReason.REQUESTED,
                        at=created + timedelta(seconds=rng.choice([1, 300, 1500])))


@pytest.mark.parametrize("limits", [(100.0, 1000.0), (None, 1000.0), (100.0, None), (0, -1)])
def test_due_for_expiry_decides_as_the_lifecycle_policy(conn: Connection, limits: tuple[Any, Any]) -> None:
    _random_sessions(conn, random.Random(5), 120)
    policy = Sessions(idle_timeout=limits[0], max_lifetime=limits[1])
    for now in (0.0, 100.0, 650.0, 1000.0, 1500.0, 5000.0):
        expected = lifecycle.due_sessions(_times(conn), policy, now)
        got = store.due_for_expiry(conn, fid(conn), POOL, idle_timeout=policy.idle_timeout,
                                   max_lifetime=policy.max_lifetime, now=at(now), limit=1000)
        assert [(d.session_id, d.reason, at(d.at)) for d in expected] == [
            (d.session_id, d.reason, d.at) for d in got]
        limited = store.due_for_expiry(conn, fid(conn), POOL, idle_timeout=policy.idle_timeout,
                                       max_lifetime=policy.max_lifetime, now=at(now), limit=7)
        assert limited == got[:7]
    assert store.due_for_expiry(conn, fid(conn), "other", idle_timeout=1, max_lifetime=1, now=at(1e6)) == ()


@pytest.mark.parametrize("rule", [(None, None), (600.0, None), (None, 5), (600.0, 5), (None, 0), (1e9, 1000)])
def test_prune_closed_decides_as_the_lifecycle_policy(conn: Connection, rule: tuple[Any, Any]) -> None:
    _random_sessions(conn, random.Random(7), 120)
    max_age, max_count = rule
    now = 2500.0
    before = _times(conn)
    expected = lifecycle.prune(before, max_age=max_age, max_count=max_count, now=now)
    pruned: tuple[str, ...] = ()
    while True:  # in batches, as the daemon would
        batch = store.prune_closed(conn, max_age=max_age, max_count=max_count, now=at(now), limit=4)
        pruned += batch
        if len(batch) < 4:
            break
    assert pruned == expected
    after = {s.session_id for s in _times(conn)}
    assert after == {s.session_id for s in before} - set(expected)
    assert all(s.session_id in after for s in before if s.state in lifecycle.ACTIVE)
    assert conn.execute(sa.select(sa.func.count()).select_from(session_history)
                        .where(session_history.c.session_id.in_(expected))).scalar() == 0


# --- migration ---------------------------------------------------------------------------------


def _alembic(conn: Connection, verb: str, target: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "clawctl.registry:migrations")
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = conn
    getattr(command, verb)(config, target)


@contextmanager
def _raw(registry: Registry) -> Iterator[Connection]:
    engine = registry.engine()
    if registry.sqlite_path is not None:
        with engine.connect() as c:
            c.connection.driver_connection.execute("PRAGMA journal_mode=WAL")  # type: ignore[union-attr]
    with engine.connect() as raw:
        c = raw.execution_options(clawctl_write=True)
        with c.begin():
            yield c


def test_sessions_written_at_0003_survive_the_upgrade_and_the_downgrade(
        registry: Registry, registry_url: str, clawctl_home: Path) -> None:
    with _raw(registry) as c:
        migrate.upgrade(c, "0003")
        seed(c)
        c.execute(sa.insert(sessions), [
            {"id": "old1", "fleet_id": 1, "pool": POOL, "agent_id": A0, "key": "k", "state": "Open",
             "data": {"notes": "ü"}, "created_at": T0, "last_activity_at": at(5), "closed_at": None},
            {"id": "old2", "fleet_id": 1, "pool": POOL, "agent_id": None, "key": None, "state": "Closed",
             "data": None, "created_at": T0, "last_activity_at": T0, "closed_at": at(9)}])
        c.execute(sa.insert(messages).values(id="m1", fleet_id=1, kind="direct", sender="op", recipient=A0,
                                             session_id="old1", payload={"hi": 1}, state="acked", created_at=T0))
    registry.close()
    with Registry(registry_url, home=clawctl_home) as reg:
        with reg.writing() as c:  # upgrades first
            assert migrate.schema_state(c, where="test") == (migrate.SchemaState.CURRENT, migrate.HEAD)
            old1 = store.get_session(c, "old1")
            assert (old1.agent_id, old1.key, old1.state, old1.last_activity_at, old1.version, old1.history_len) == (
                A0, "k", SessionState.OPEN, at(5), 0, 0)
            assert old1.state_size >= len('{"notes":"ü"}'.encode())  # the stored JSON's bytes
            assert store.get_state(c, "old1").data == {"notes": "ü"}
            assert store.get_session(c, "old2").closed_at == at(9)
            store.append_history(c, "old1", HistoryRole.USER, "new", at=at(6))
            store.set_state(c, "old1", {"notes": "v1"}, expected_version=0)
        with _raw(reg) as c:
            _alembic(c, "downgrade", "0003")
        with reg.engine().connect() as c:
            assert "session_history" not in sa.inspect(c).get_table_names()
            assert "version" not in {col["name"] for col in sa.inspect(c).get_columns("sessions")}
            assert c.execute(sa.text("SELECT id, data FROM sessions ORDER BY id")).all()[0][0] == "old1"
            assert c.execute(sa.text("SELECT session_id FROM messages")).scalar() == "old1"


# --- scale: row-level work at 10,000 sessions ------------------------------------------------------

N = 10_000


@dataclass
class Captured:
    statement: str
    parameters: Any


@contextmanager
def capture(registry: Registry) -> Iterator[list[Captured]]:
    """Every statement executed through ``registry``'s engine inside the block."""
    seen: list[Captured] = []

    def listener(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        seen.append(Captured(statement, parameters))

    engine = registry.engine()
    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)


_BAD_PLAN = re.compile(r"^SCAN (?!CONSTANT ROW)|TEMP B-TREE FOR (ORDER BY|DISTINCT)"
                       r"|^SEARCH sessions (?!.*\(id=\?\)).*<- (UPDATE|DELETE) ")
"""A full scan, a full sort, or a session update/delete that does not go by primary key."""


def _plans(conn: Connection, statements: list[Captured]) -> list[str]:
    """SQLite's plan lines for every statement but INSERTs."""
    lines = []
    for s in statements:
        if s.statement.lstrip().upper().startswith("INSERT"):
            continue
        for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + s.statement, s.parameters):
            lines.append(f"{row[-1]}    <- {s.statement.split()[0]} {s.statement[:90]!r}")
    return lines


def _bulk(conn: Connection, fleet_id: int) -> None:
    rng = random.Random(1)
    rows = []
    for i in range(N):
        state = rng.choice(["Open"] * 6 + ["Closing", "Orphaned", "Closed", "Closed"])
        created = at(i)
        rows.append({
            "id": f"bulk{i:05d}", "fleet_id": fleet_id, "pool": POOL if i % 5 else "other",
            "agent_id": None if state == "Orphaned" else rng.choice([A0, A1, A2]), "key": f"key{i}",
            "state": state, "data": {"i": i}, "version": 0, "state_size": 8, "history_len": 3,
            "created_at": created, "last_activity_at": created + timedelta(seconds=rng.randrange(0, 5000)),
            "closing_deadline": created + timedelta(seconds=60) if state == "Closing" else None,
            "close_reason": "requested" if state == "Closed" else None,
            "closed_at": created + timedelta(seconds=30) if state == "Closed" else None, "parent_id": None})
    conn.execute(sa.insert(sessions), rows)
    conn.execute(sa.insert(session_history), [
        {"session_id": r["id"], "seq": seq, "at": r["created_at"], "role": "user", "content": {"n": seq}}
        for r in rows for seq in (1, 2, 3)])


def test_operations_stay_row_level_at_10000_sessions(registry: Registry) -> None:
    with registry.writing() as conn:
        fleet_id = seed(conn)
        _bulk(conn, fleet_id)
        fleet_filter = SessionFilter(fleet_id=fleet_id, pool=POOL)
        cursor = store.list_sessions(conn, fleet_filter, limit=50).next
        operations: dict[str, tuple[int, Any]] = {
            # name: (most statements allowed, the call)
            "create": (1, lambda: store.create_session(conn, session_id="fresh", fleet_id=fleet_id, pool=POOL,
                                                       agent_id=A1, now=at(N))),
            "get": (1, lambda: store.get_session(conn, "bulk00007")),
            "get owned": (1, lambda: store.require_owner(conn, "fresh", A1)),
            "get state": (1, lambda: store.get_state(conn, "fresh", owner=A1)),
            "list pool": (4, lambda: store.list_sessions(conn, fleet_filter, limit=50)),
            "list pool page 2": (4, lambda: store.list_sessions(conn, fleet_filter, limit=50, after=cursor)),
            "list pool open": (1, lambda: store.list_sessions(
                conn, SessionFilter(fleet_id=fleet_id, pool=POOL, states=(SessionState.OPEN,)), limit=50)),
            "list agent": (2, lambda: store.list_sessions(
                conn, SessionFilter(agent_id=A1, states=(SessionState.OPEN, SessionState.CLOSING)), limit=50)),
            "list closed": (1, lambda: store.list_sessions(
                conn, SessionFilter(states=(SessionState.CLOSED,)), limit=50, newest_first=False)),
            "count open by agent": (1, lambda: store.count_open_by_agent(conn, fleet_id, POOL)),
            "touch": (1, lambda: store.touch_interaction(conn, "fresh", at=at(N + 1), owner=A1)),
            "set state": (1, lambda: store.set_state(conn, "fresh", {"n": 1}, expected_version=0, owner=A1)),
            "append history": (3, lambda: store.append_history(conn, "fresh", HistoryRole.USER, "hi",
                                                               at=at(N + 2), owner=A1)),
            "read history": (1, lambda: store.read_history(conn, "bulk00007", limit=2)),
            "read history owned": (2, lambda: store.read_history(conn, "fresh", limit=2, after=0, owner=A1)),
            "hold": (1, lambda: store.hold(conn, "fresh")),
            "assign": (1, lambda: store.assign_agent(conn, "fresh", A2)),
            "begin close": (1, lambda: store.begin_close(conn, "fresh", reason=CloseReason.REQUESTED,
                                                         deadline=at(N + 60))),
            "close dropping state": (2, lambda: store.close(conn, "fresh", reason=CloseReason.REQUESTED,
                                                            at=at(N + 3), drop_state=True)),
            "due for expiry": (4, lambda: store.due_for_expiry(conn, fleet_id, POOL, idle_timeout=600,
                                                               max_lifetime=3600, now=at(N), limit=100)),
            "prune": (4, lambda: store.prune_closed(conn, max_age=3600, max_count=1000, now=at(N), limit=100)),
        }
        bad: list[str] = []
        for name, (most, call) in operations.items():
            with capture(registry) as statements:
                result = call()
            assert 1 <= len(statements) <= most, (name, [s.statement for s in statements])
            if conn.dialect.name == "sqlite":
                bad += [f"{name}: {line}" for line in _plans(conn, statements) if _BAD_PLAN.search(line)]
            if name == "due for expiry":
                assert len(result) == 100
            if name == "prune":
                assert len(result) == 100
        assert bad == []
        # the failure paths stay row-level too
        with capture(registry) as statements, pytest.raises(Conflict):
            store.set_state(conn, "bulk00007", {}, expected_version=99)
        assert len(statements) == 2
