"""The message flush paths of the control server's database layer: the event loop's inline writer
(never waits for the write lock) and the database thread's raw transactions."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from clawctl.daemon.control.db import Database, InlineWriter
from clawctl.errors import RegistryError
from clawctl.registry import messaging as store
from clawctl.registry.engine import Registry
from clawctl.registry.messaging import MessageRow, MessageState, Writes
from clawctl.registry.tables import fleets

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def registry(clawctl_home: Path) -> Registry:
    reg = Registry(home=clawctl_home)
    with reg.writing() as conn:
        conn.execute(sa.insert(fleets).values(id=1, name="t", spec={}, created_at=T0, updated_at=T0))
    return reg


def _row(n: int, client_id: str | None = None) -> MessageRow:
    return MessageRow(f"{n:016x}", 1, "t/a-0", "pool/b", "t/b-0", {"n": n}, MessageState.QUEUED, n, 0, client_id, T0)


def _stored(registry: Registry) -> dict[str, str]:
    assert registry.sqlite_path is not None
    with sqlite3.connect(registry.sqlite_path) as db:
        return dict(db.execute("select id, state from messages"))


def test_the_inline_writer_commits_and_declines_at_once_when_the_lock_is_taken(registry: Registry) -> None:
    writer = InlineWriter(registry)
    try:
        ran, refused = writer.try_run(lambda raw: store.write_sqlite(raw, Writes(inserts=[_row(1, "c1")])))
        assert (ran, refused) == (True, set())
        assert _stored(registry) == {f"{1:016x}": "queued"}  # committed: another connection sees it

        assert registry.sqlite_path is not None
        other = sqlite3.connect(registry.sqlite_path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        started = time.monotonic()
        assert writer.try_run(lambda raw: store.write_sqlite(raw, Writes(inserts=[_row(2)]))) == (False, None)
        assert time.monotonic() - started < 0.5  # declined at once, not after the busy timeout
        other.execute("COMMIT")
        other.close()

        # A retry of a sender's id is left out and named; the rest of the flush is stored.
        writes = Writes(inserts=[_row(3, "c1"), _row(4, "c4")], acked=[(f"{1:016x}", T0)])
        assert writer.try_run(lambda raw: store.write_sqlite(raw, writes)) == (True, {f"{3:016x}"})
        assert _stored(registry) == {f"{1:016x}": "acked", f"{4:016x}": "queued"}

        def fails(raw: sqlite3.Connection) -> None:
            store.write_sqlite(raw, Writes(inserts=[_row(5)]))
            raw.execute("insert into no_such_table values (1)")

        with pytest.raises(RegistryError):
            writer.try_run(fails)
        assert f"{5:016x}" not in _stored(registry)  # rolled back
        assert writer.try_run(lambda raw: store.write_sqlite(raw, Writes(inserts=[_row(5)])))[0]
    finally:
        writer.close()


def test_a_posted_flush_waits_for_the_lock_and_answers_on_the_loop(registry: Registry) -> None:
    db = Database(registry)
    assert registry.sqlite_path is not None
    other = sqlite3.connect(registry.sqlite_path, isolation_level=None, check_same_thread=False)

    async def main() -> tuple[set[str] | None, BaseException | None, float]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[set[str] | None, BaseException | None]] = loop.create_future()
        other.execute("BEGIN IMMEDIATE")
        loop.call_later(0.3, lambda: other.execute("COMMIT"))
        started = time.monotonic()
        db.post(lambda conn, raw: store.write_sqlite(raw, Writes(inserts=[_row(1)])) if raw is not None
                else store.write(conn, Writes(inserts=[_row(1)])),
                lambda result, error: done.set_result((result, error)))
        result, error = await done
        return result, error, time.monotonic() - started

    try:
        refused, error, waited = asyncio.run(main())
    finally:
        other.close()
        db.close()
    assert (refused, error) == (set(), None) and waited >= 0.25
    assert _stored(registry) == {f"{1:016x}": "queued"}
