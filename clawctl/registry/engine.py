"""Open the registry: pick the URL, check what the database is, upgrade it, translate errors.

A database is checked before its first use and is never written unless it is
empty or a clawctl registry at an older schema revision: a foreign file, a
registry from a newer clawctl, an unreadable or locked database each raise one
``RegistryError`` and leave the file as it was.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Connection, Engine

from clawctl.errors import ClawctlError, RegistryError
from clawctl.home import clawctl_home
from clawctl.registry import migrate
from clawctl.registry.migrate import SchemaState

DEFAULT_TIMEOUT = 10.0
"""Seconds to wait for a locked registry (SQLite busy timeout, the apply lock) before giving up."""

REGISTRY_FILE = "registry.db"
LOCK_FILE = "registry.lock"
_SQLITE_HEADER = b"SQLite format 3\x00"
_PG_LOCK_KEY = 0x636C6177
"""Key of the PostgreSQL advisory lock that serializes writers across hosts."""


def registry_url(home: Path | None = None) -> str:
    """$CLAWCTL_REGISTRY, else a SQLite file ``registry.db`` in the clawctl home."""
    return os.environ.get("CLAWCTL_REGISTRY") or f"sqlite:///{(home or clawctl_home()) / REGISTRY_FILE}"


def timeout_from_env() -> float:
    """$CLAWCTL_REGISTRY_TIMEOUT in seconds, else DEFAULT_TIMEOUT."""
    raw = os.environ.get("CLAWCTL_REGISTRY_TIMEOUT")
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise RegistryError(f"CLAWCTL_REGISTRY_TIMEOUT={raw!r} is not a positive number of seconds",
                            hint="e.g. CLAWCTL_REGISTRY_TIMEOUT=30")
    return value


class Registry:
    """One registry database, opened lazily. Use as a context manager, or call ``close()``.

    ``reading()`` yields a connection (or None while no registry exists yet) and
    never creates one; ``writing()`` creates or upgrades the schema first and
    yields a connection inside one serialized write transaction.
    """

    def __init__(self, url: str | None = None, *, home: Path | None = None, timeout: float | None = None) -> None:
        self.home = home or clawctl_home()
        self.timeout = timeout if timeout is not None else timeout_from_env()
        self._url_text = url or registry_url(self.home)
        self._default = url is None and not os.environ.get("CLAWCTL_REGISTRY")
        self._engine: Engine | None = None
        self._checked = False
        with translating(self._url_text, timeout=self.timeout):
            self.url: URL = driver_url(sa.make_url(self._url_text))

    @property
    def where(self) -> str:
        """The registry as users should see it: a file path, or the URL without its password."""
        path = self.sqlite_path
        if path is not None:
            return str(path)
        return self.url.render_as_string(hide_password=True)

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file, or None for other backends and in-memory SQLite."""
        if self.url.get_backend_name() != "sqlite" or self.url.database in (None, "", ":memory:"):
            return None
        return Path(self.url.database).expanduser()

    def close(self) -> None:
        """Release every pooled connection."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def exists(self) -> bool:
        """False when the registry is a SQLite file that does not exist yet (checks nothing else)."""
        path = self.sqlite_path
        return path is None or path.exists()

    @contextmanager
    def reading(self) -> Iterator[Connection | None]:
        """A connection for consistent reads, or None when no registry exists yet.

        An older registry is upgraded first; anything else that is wrong raises RegistryError.
        """
        with translating(self.where, timeout=self.timeout):
            if not self.exists():
                yield None
                return
            state = self._check()
            if state is SchemaState.EMPTY:
                yield None
                return
            if state is SchemaState.OLDER:
                with self._apply_lock():
                    self._ensure_schema()
            with self.engine().connect() as conn:
                yield conn

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A connection inside one write transaction, serialized against every other writer.

        Serialized by a lock file in CLAWCTL_HOME (processes on this host) and by the
        database (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL). Commits
        when the block ends, rolls back everything when it raises.
        """
        with translating(self.where, timeout=self.timeout):
            with self._apply_lock():
                self._ensure_schema()
                with self.engine().connect() as raw:
                    conn = raw.execution_options(clawctl_write=True)
                    with conn.begin():
                        _lock_writers(conn)
                        yield conn

    def row_connection(self, *, synchronous_normal: bool = False) -> Connection:
        """A long-lived connection for many small row-level transactions (``row_transaction``).

        The schema is created or upgraded first. Unlike ``writing()`` these transactions
        skip the lock file: they never change the desired state that apply serializes,
        and the database still orders them (BEGIN IMMEDIATE on SQLite, row locks elsewhere).
        ``synchronous_normal`` (SQLite): commits do not wait for fsync; a commit survives
        the process being killed, not a power loss (WAL mode, SQLite's documented trade).
        Its commits also skip the WAL checkpoint: call ``checkpoint`` from another thread.
        """
        with translating(self.where, timeout=self.timeout):
            with self._apply_lock():
                self._ensure_schema()
            conn = self.engine().connect()
            if synchronous_normal and conn.dialect.name == "sqlite":
                driver = conn.connection.driver_connection
                driver.execute("PRAGMA synchronous=NORMAL")  # type: ignore[union-attr]
                # Its commits never run the WAL checkpoint (an fsync of a few ms); ``checkpoint``
                # does that on another thread.
                driver.execute("PRAGMA wal_autocheckpoint=0")  # type: ignore[union-attr]
            return conn.execution_options(clawctl_write=True)

    def checkpoint(self) -> None:
        """Copy the SQLite write-ahead log into the database (PASSIVE: never waits for, nor
        blocks, readers and writers). For connections that turned auto-checkpoints off."""
        if self.url.get_backend_name() != "sqlite":
            return
        with translating(self.where, timeout=self.timeout):
            with self.engine().connect() as conn:
                conn.connection.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")  # type: ignore[union-attr]

    @contextmanager
    def row_transaction(self, conn: Connection) -> Iterator[Connection]:
        """One write transaction on a ``row_connection``: commits at the end, rolls back on error,
        database errors become ``RegistryError``."""
        with translating(self.where, timeout=self.timeout):
            with conn.begin():
                yield conn

    def engine(self) -> Engine:
        """The SQLAlchemy engine (created on first use, with clawctl's connection settings)."""
        if self._engine is None:
            self._engine = _create_engine(self.url, self.timeout)
        return self._engine

    def _check(self) -> SchemaState:
        if self._checked:
            return SchemaState.CURRENT
        path = self.sqlite_path
        if path is not None and path not in _HEADERS_CHECKED:
            _check_sqlite_file(path)
            _HEADERS_CHECKED.add(path)
        with self.engine().connect() as conn:
            state, _ = migrate.schema_state(conn, where=self.where)
        self._checked = state is SchemaState.CURRENT
        return state

    def _ensure_schema(self) -> None:
        """Create or upgrade the schema (one transaction), unless it is current already."""
        path = self.sqlite_path
        if path is not None and self._default:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        created = not self.exists()
        if not created and self._check() is SchemaState.CURRENT:
            return
        engine = self.engine()
        if path is not None:
            # WAL cannot be switched on inside a transaction; the file is new or ours.
            with engine.connect() as conn:  # no statement yet, so no transaction either
                conn.connection.driver_connection.execute("PRAGMA journal_mode=WAL")  # type: ignore[union-attr]
        with engine.connect() as raw:
            conn = raw.execution_options(clawctl_write=True)
            with conn.begin():
                _lock_writers(conn)
                state, _ = migrate.schema_state(conn, where=self.where)
                if state is not SchemaState.CURRENT:
                    migrate.upgrade(conn)
        if created and path is not None:
            os.chmod(path, 0o600)
        self._checked = True

    @contextmanager
    def _apply_lock(self) -> Iterator[None]:
        from filelock import FileLock, Timeout

        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = FileLock(str(self.home / LOCK_FILE), timeout=self.timeout)
        try:
            lock.acquire()
        except Timeout as err:
            raise RegistryError(
                f"another clawctl has been changing the registry for more than {self.timeout:g}s "
                f"(lock {self.home / LOCK_FILE})",
                hint="wait for it to finish and try again; CLAWCTL_REGISTRY_TIMEOUT sets how long to wait") from err
        try:
            yield
        finally:
            lock.release()


def driver_url(url: URL) -> URL:
    """``postgresql://`` means psycopg (3) when psycopg2 is not installed."""
    if url.drivername == "postgresql":
        import importlib.util

        if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is not None:
            return url.set(drivername="postgresql+psycopg")
    return url


_HEADERS_CHECKED: set[Path] = set()
"""SQLite files whose header this process has read. Read once per process, before any of its
connections exist: closing any descriptor of a file drops every POSIX lock the process holds on
it, including those of open SQLite connections; another process may then take itself for the
last user, checkpoint and delete the WAL, and this process would go on reading a stale snapshot."""


def _check_sqlite_file(path: Path) -> None:
    """Refuse a file that is not SQLite at all, before SQLite itself touches it."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(len(_SQLITE_HEADER))
    except IsADirectoryError as err:
        raise RegistryError(f"the registry {path} is a directory, not a file",
                            hint="point CLAWCTL_REGISTRY at a file, e.g. sqlite:////path/to/registry.db") from err
    except OSError as err:
        raise RegistryError(f"cannot read the registry {path}: {err.strerror or err}",
                            hint="check the file's owner and permissions") from err
    if header and header != _SQLITE_HEADER:
        raise migrate._foreign(str(path))


def _create_engine(url: URL, timeout: float) -> Engine:
    if url.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": timeout})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.get_backend_name() == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": max(1, int(timeout))}
    return sa.create_engine(url, **kwargs)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN itself (the pysqlite driver's own
    # transaction handling defers it and cannot take the write lock up front).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # A writer takes SQLite's write lock at BEGIN, so its reads and writes form one
    # serial unit and it waits (busy timeout) instead of failing halfway.
    write = conn.get_execution_options().get("clawctl_write")
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _lock_writers(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


@contextmanager
def translating(where: str, *, timeout: float = DEFAULT_TIMEOUT) -> Iterator[None]:
    """Turn SQLAlchemy and driver exceptions raised inside the block into RegistryError."""
    try:
        yield
    except ClawctlError:
        raise
    except (exc.NoSuchModuleError, ModuleNotFoundError) as err:
        raise RegistryError(f"no database driver for the registry {where}: {err}",
                            hint="for PostgreSQL: pip install 'clawctl[postgres]'") from err
    except exc.ArgumentError as err:
        raise RegistryError(f"the registry URL {where!r} is not a valid SQLAlchemy URL",
                            hint="e.g. sqlite:////var/lib/clawctl/registry.db or "
                                 "postgresql+psycopg://user@host/clawctl") from err
    except exc.DBAPIError as err:
        raise _dbapi_error(err, where, timeout) from err
    except sqlite3.Error as err:  # raised by the few calls made on the driver connection itself
        raise _dbapi_error(err, where, timeout) from err
    except exc.SQLAlchemyError as err:
        raise RegistryError(f"the registry {where} failed: {_first_line(err)}") from err


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "orig", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _dbapi_error(err: exc.DBAPIError | sqlite3.Error, where: str, timeout: float) -> RegistryError:
    detail = _first_line(err)
    lowered = detail.lower()
    if "locked" in lowered or "lock timeout" in lowered:
        return RegistryError(f"the registry {where} stayed locked by another process for more than {timeout:g}s",
                             hint="wait for the other clawctl or daemon to finish; "
                                  "CLAWCTL_REGISTRY_TIMEOUT sets how long to wait")
    if "file is not a database" in lowered or "file is encrypted" in lowered:
        return migrate._foreign(where)
    if "unable to open database" in lowered or "readonly database" in lowered or "read-only" in lowered:
        return RegistryError(f"cannot open the registry {where} for this operation ({detail})",
                             hint="check that the file and its directory exist and are readable and writable")
    if "malformed" in lowered or "corrupt" in lowered:
        return RegistryError(f"the registry {where} is damaged ({detail})",
                             hint="restore it from a backup; `sqlite3 FILE .recover` may save its content")
    if isinstance(err, (exc.IntegrityError, sqlite3.IntegrityError)):
        return RegistryError(f"the registry {where} refused the change: {detail}")
    if isinstance(err, (exc.OperationalError, sqlite3.OperationalError)):
        return RegistryError(f"cannot use the registry {where}: {detail}",
                             hint="check that the database server is running and the URL is right")
    return RegistryError(f"the registry {where} failed: {detail}")
