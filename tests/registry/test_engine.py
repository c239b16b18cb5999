"""Opening the registry: where it lives, its settings, and every way it can be unusable.

Whatever is wrong, the answer is one RegistryError and the file is left as it was.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from clawctl.errors import RegistryError
from clawctl.registry import apply as service
from clawctl.registry.engine import Registry, registry_url, timeout_from_env
from tests.builders import fleet_docs
from tests.registry.fleets import load, meta


def apply(reg: Registry, pools: int = 2) -> int | None:
    return service.record(reg, service.plan_fleet(reg, load(fleet_docs(pools))), meta=meta()).revision


def fingerprint(path: Path) -> tuple[bytes, int, list[str]]:
    siblings = sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name))
    return path.read_bytes(), path.stat().st_mtime_ns, siblings


def test_default_registry_is_a_sqlite_file_in_clawctl_home(clawctl_home: Path) -> None:
    assert registry_url() == f"sqlite:///{clawctl_home / 'registry.db'}"


def test_clawctl_registry_env_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLAWCTL_REGISTRY", f"sqlite:///{tmp_path / 'other.db'}")
    with Registry() as reg:
        assert reg.sqlite_path == tmp_path / "other.db"
        apply(reg)
    assert (tmp_path / "other.db").exists()


def test_reading_never_creates_a_registry(sqlite_registry: Registry, clawctl_home: Path) -> None:
    with sqlite_registry.reading() as conn:
        assert conn is None
    assert service.plan_fleet(sqlite_registry, load(fleet_docs(1))).changed
    assert not (clawctl_home / "registry.db").exists()


def test_sqlite_settings(sqlite_registry: Registry, clawctl_home: Path) -> None:
    apply(sqlite_registry)
    with sqlite_registry.reading() as conn:
        assert conn is not None
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    assert (clawctl_home / "registry.db").stat().st_mode & 0o777 == 0o600


def test_garbage_file_is_refused_and_left_alone(clawctl_home: Path) -> None:
    path = clawctl_home / "registry.db"
    path.write_bytes(os.urandom(4096))
    before = fingerprint(path)
    with Registry(home=clawctl_home) as reg:
        for action in (lambda: apply(reg), lambda: service.plan_fleet(reg, load(fleet_docs(1)))):
            with pytest.raises(RegistryError, match="is not a clawctl registry"):
                action()
    assert fingerprint(path) == before


def test_foreign_sqlite_database_is_refused_and_left_alone(clawctl_home: Path) -> None:
    path = clawctl_home / "registry.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO notes (body) VALUES ('mine')")
    db.close()
    before = fingerprint(path)
    with Registry(home=clawctl_home) as reg:
        with pytest.raises(RegistryError, match="is not a clawctl registry") as info:
            apply(reg)
        assert info.value.hint and "never modifies" in info.value.hint
    assert fingerprint(path) == before


def test_sqlite_file_of_another_application_is_refused(clawctl_home: Path) -> None:
    path = clawctl_home / "registry.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA application_id = 1234")
    db.commit()
    db.close()
    before = fingerprint(path)
    with Registry(home=clawctl_home) as reg, pytest.raises(RegistryError, match="not a clawctl registry"):
        apply(reg)
    assert fingerprint(path) == before


def test_registry_from_a_newer_clawctl_is_refused_and_left_alone(registry: Registry, registry_url: str,
                                                                 clawctl_home: Path) -> None:
    apply(registry)
    with registry.writing() as conn:
        conn.exec_driver_sql("UPDATE clawctl_schema SET version_num = '9999'")
    registry.close()
    path = registry.sqlite_path
    before = fingerprint(path) if path else None
    with Registry(registry_url, home=clawctl_home) as reg:
        for action in (lambda: apply(reg, 3), lambda: service.plan_fleet(reg, load(fleet_docs(1)))):
            with pytest.raises(RegistryError, match="newer clawctl") as info:
                action()
            assert info.value.hint and "upgrade clawctl" in info.value.hint
    if path:
        assert fingerprint(path) == before


def test_database_with_other_tables_is_refused(registry_url: str, clawctl_home: Path) -> None:
    import sqlalchemy as sa

    from clawctl.registry.engine import driver_url

    engine = sa.create_engine(driver_url(sa.make_url(registry_url)))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    engine.dispose()
    with Registry(registry_url, home=clawctl_home) as reg, pytest.raises(RegistryError, match="not a clawctl"):
        apply(reg)


def test_directory_instead_of_a_file(clawctl_home: Path) -> None:
    (clawctl_home / "registry.db").mkdir()
    with Registry(home=clawctl_home) as reg, pytest.raises(RegistryError, match="is a directory"):
        service.plan_fleet(reg, load(fleet_docs(1)))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(sqlite_registry: Registry, clawctl_home: Path) -> None:
    apply(sqlite_registry)
    sqlite_registry.close()
    path = clawctl_home / "registry.db"
    path.chmod(0)
    try:
        with Registry(home=clawctl_home) as reg, pytest.raises(RegistryError, match="cannot read"):
            service.plan_fleet(reg, load(fleet_docs(1)))
    finally:
        path.chmod(0o600)


def test_registry_locked_too_long(sqlite_registry: Registry, clawctl_home: Path) -> None:
    apply(sqlite_registry)
    sqlite_registry.close()
    holder = sqlite3.connect(clawctl_home / "registry.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with Registry(home=clawctl_home, timeout=0.2) as reg:
            change = service.plan_fleet(reg, load(fleet_docs(3)))  # readers are not blocked (WAL)
            with pytest.raises(RegistryError, match="locked by another process") as info:
                service.record(reg, change, meta=meta())
            assert info.value.hint and "CLAWCTL_REGISTRY_TIMEOUT" in info.value.hint
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_apply_lock_held_too_long(sqlite_registry: Registry, clawctl_home: Path) -> None:
    from filelock import FileLock

    with FileLock(str(clawctl_home / "registry.lock")):
        with Registry(home=clawctl_home, timeout=0.2) as reg, \
                pytest.raises(RegistryError, match="another clawctl has been changing"):
            apply(reg)


@pytest.mark.parametrize(("url", "match"), [
    ("not a url", "not a valid SQLAlchemy URL"),
    ("nosuchdb://x/y", "no database driver"),
    ("sqlite:////nonexistent-dir/deeper/registry.db", "cannot open the registry"),
])
def test_bad_urls(url: str, match: str, clawctl_home: Path) -> None:
    with pytest.raises(RegistryError, match=match):
        with Registry(url, home=clawctl_home) as reg:
            apply(reg)


def test_timeout_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAWCTL_REGISTRY_TIMEOUT", "2.5")
    assert timeout_from_env() == 2.5
    monkeypatch.setenv("CLAWCTL_REGISTRY_TIMEOUT", "soon")
    with pytest.raises(RegistryError, match="CLAWCTL_REGISTRY_TIMEOUT"):
        timeout_from_env()


def test_where_hides_the_password(clawctl_home: Path) -> None:
    reg = Registry("postgresql+psycopg://user:secret@db.example/clawctl", home=clawctl_home)
    assert "secret" not in reg.where and "db.example" in reg.where


@pytest.mark.parametrize(("raised", "match"), [
    (sqlite3.OperationalError("database is locked"), "stayed locked by another process for more than 3s"),
    (sqlite3.DatabaseError("file is not a database"), "is not a clawctl registry"),
    (sqlite3.OperationalError("attempt to write a readonly database"), "cannot open the registry"),
    (sqlite3.DatabaseError("database disk image is malformed"), "is damaged"),
])
def test_driver_errors_are_translated(raised: Exception, match: str) -> None:
    from clawctl.registry.engine import translating

    with pytest.raises(RegistryError, match=match) as info:
        with translating("reg.db", timeout=3.0):
            raise raised
    assert info.value.__cause__ is raised
