"""Registry work of the control server: one thread with one connection, and an inline writer.

SQLite has one writer at a time anyway; one thread keeps the event loop free
while a transaction waits for the database (an apply holding the write lock)
and gives each operation one short transaction on a warm connection. The
message flushes, the hot path, are written by the event loop itself through a
second connection (``InlineWriter``) whenever the write lock is free at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.engine import Connection

from clawctl.errors import ClawctlError, DaemonUnavailable
from clawctl.registry.engine import Registry, translating

log = logging.getLogger("clawctl.daemon.control")

T = TypeVar("T")

RawWork = Callable[[Connection, "sqlite3.Connection | None"], T]
"""``fn(conn, raw)`` of ``post``: ``raw`` is SQLite's own connection when the transaction is open on
it (then only ``raw`` may be used), else None (use ``conn``)."""


CHECKPOINT_SECONDS = 1.0
"""How often the write-ahead log is copied into the database, off the request path."""


class Database:
    """Runs functions of a connection, each in its own transaction, one at a time.

    Its commits skip SQLite's WAL checkpoint (a few milliseconds of fsync every few
    hundred commits, which would land on some unlucky request); a background thread
    checkpoints every ``CHECKPOINT_SECONDS`` instead.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="clawctl-db")
        self._conn: Connection | None = None
        self._closing = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="clawctl-db-checkpoint",
                                              daemon=True)
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        while not self._closing.wait(CHECKPOINT_SECONDS):
            try:
                self.registry.checkpoint()
            except ClawctlError as exc:
                log.warning("WAL checkpoint failed: %s", exc.message)

    def _call(self, fn: Callable[[Connection], T]) -> T:
        if self._conn is None:
            self._conn = self.registry.row_connection(synchronous_normal=True)
        with self.registry.row_transaction(self._conn) as conn:
            return fn(conn)

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """``fn(conn)`` inside one transaction (committed when it returns, rolled back when it
        raises); its exception is re-raised here."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn)

    def submit(self, fn: Callable[[Connection], T]) -> asyncio.Future[T]:
        """Queue ``fn(conn)`` now (from the event loop) without waiting: it runs before anything
        queued later. The future holds its result or exception."""
        return asyncio.get_running_loop().run_in_executor(self._executor, self._call, fn)

    def post(self, fn: RawWork[T], done: Callable[[T | None, BaseException | None], None]) -> None:
        """Queue ``fn`` (from the event loop) to run in its own transaction after everything queued
        before; ``done(result, error)`` then runs on the event loop. Nothing is awaited: the hot
        path of messages uses it once per group commit. On SQLite the transaction is opened and
        committed on the driver connection itself (BEGIN IMMEDIATE … COMMIT), without SQLAlchemy's
        transaction machinery; it is as durable as every other commit of this connection."""
        loop = asyncio.get_running_loop()

        def work() -> None:
            try:
                result = self._call_raw(fn)
            except BaseException as exc:  # noqa: BLE001 - handed to done() on the loop
                loop.call_soon_threadsafe(done, None, exc)
                return
            loop.call_soon_threadsafe(done, result, None)

        try:
            self._executor.submit(work)
        except RuntimeError:  # shut down: the daemon is stopping
            loop.call_soon(done, None, DaemonUnavailable("the daemon is stopping"))

    def _call_raw(self, fn: RawWork[T]) -> T:
        if self._conn is None:
            self._conn = self.registry.row_connection(synchronous_normal=True)
        conn = self._conn
        if conn.dialect.name != "sqlite":
            with self.registry.row_transaction(conn) as inside:
                return fn(inside, None)
        raw: sqlite3.Connection = conn.connection.driver_connection  # type: ignore[assignment]
        with translating(self.registry.where, timeout=self.registry.timeout):
            raw.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn, raw)
            except BaseException:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raise
            raw.execute("COMMIT")
            return result

    def open_inline(self) -> InlineWriter | None:
        """A writer for the event loop thread itself (SQLite only; None otherwise)."""
        if self.registry.url.get_backend_name() != "sqlite":
            return None
        return InlineWriter(self.registry)

    def run_sync(self, fn: Callable[[Connection], T]) -> T:
        """Like ``run``, from a thread outside the event loop (startup, tests)."""
        return self._executor.submit(self._call, fn).result()

    def close(self) -> None:
        self._closing.set()
        self._checkpointer.join(timeout=10)

        def _close() -> Any:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        self._executor.submit(_close).result()
        self._executor.shutdown(wait=True)


class InlineWriter:
    """A second SQLite connection, for short writes made on the event loop thread itself.

    It never waits for SQLite's write lock: when another connection holds it (the database
    thread, the reconciler, an apply), ``try_run`` declines at once and the caller goes through
    ``Database.post``. When the lock is free it saves a write its two thread hand-overs (queue
    to the database thread, wake the event loop again), each a wake-up that waits its turn for
    a CPU and for the GIL. Commits are as durable as the database thread's (synchronous=NORMAL
    in WAL mode); like its, they leave the WAL checkpoint to the checkpoint thread.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._conn = registry.row_connection(synchronous_normal=True)
        self._raw: sqlite3.Connection = self._conn.connection.driver_connection  # type: ignore[assignment]
        self._raw.execute("PRAGMA busy_timeout = 0")

    def try_run(self, fn: Callable[[sqlite3.Connection], T]) -> tuple[bool, T | None]:
        """(True, ``fn(raw)``) run and committed in one transaction; (False, None) when another
        connection holds the write lock (nothing done). Errors are raised as RegistryError."""
        raw = self._raw
        with translating(self.registry.where, timeout=0.0):
            try:
                raw.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):  # and their variants
                    return False, None
                raise
            try:
                result = fn(raw)
                raw.execute("COMMIT")
            except BaseException:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raise
            return True, result

    def close(self) -> None:
        self._conn.close()
