"""Schema revisions: the scripts match the code, and a newer clawctl upgrades an older registry
in place without losing data."""

from __future__ import annotations

import json
import zlib
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from clawctl.config.normalize import canonical_json, content_hash, fleet_to_documents
from clawctl.registry import apply as service
from clawctl.registry import migrate
from clawctl.registry.engine import Registry
from clawctl.registry.history import history
from clawctl.registry.records import RevisionKind
from clawctl.registry.status import desired_status
from clawctl.registry.tables import metadata
from tests.builders import fleet_docs
from tests.registry.fleets import count_writes, load, meta


def test_known_revisions_match_the_migration_scripts() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", "clawctl.registry:migrations")
    config.set_main_option("path_separator", "os")
    scripts = ScriptDirectory.from_config(config)
    chain = [s.revision for s in reversed(list(scripts.walk_revisions()))]
    assert tuple(chain) == migrate.REVISIONS
    assert scripts.get_current_head() == migrate.HEAD


def test_migrated_schema_equals_the_tables_in_code(registry: Registry) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with registry.writing():
        pass
    with registry.engine().connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": migrate.VERSION_TABLE})
        differences = [d for d in compare_metadata(context, metadata) if d[0] != "remove_table"
                       or d[1].name != migrate.VERSION_TABLE]
    assert differences == []


def _registry_at_0001(registry: Registry) -> None:
    """A registry as the first clawctl release would have left it, with one applied fleet."""
    docs = fleet_to_documents(load(fleet_docs(2)))
    now = "2024-01-02 03:04:05.000000"  # as the SQLite dialect stores UTC
    engine = registry.engine()
    if registry.sqlite_path is not None:
        with engine.connect() as conn:
            conn.connection.driver_connection.execute("PRAGMA journal_mode=WAL")  # type: ignore[union-attr]
    with engine.connect() as raw:
        conn = raw.execution_options(clawctl_write=True)
        with conn.begin():
            migrate.upgrade(conn, "0001")
            conn.execute(sa.text(
                "INSERT INTO fleets (id, name, spec, revision, content_hash, created_at, updated_at) "
                "VALUES (1, 'demo', :spec, 1, :hash, :now, :now)"),
                {"spec": json.dumps(docs[0]), "hash": content_hash(docs), "now": now})
            conn.execute(sa.text(
                "INSERT INTO revisions (number, fleet_id, created_at, applied_by, message, content_hash, documents,"
                " summary, source, clawctl_version) VALUES (1, 1, :now, 'old-clawctl', 'first', :hash, :docs,"
                " :summary, '[]', '0.0.1')"),
                {"now": now, "hash": content_hash(docs),
                 "docs": zlib.compress(canonical_json(docs).encode()), "summary": json.dumps(
                     {"create": len(docs), "update": 0, "delete": 0})})
            for doc in docs[1:]:
                table = "pools" if doc["kind"] == "AgentPool" else "policies"
                columns = "fleet_id, name, spec, revision" + (", replicas" if table == "pools" else "")
                values = "1, :name, :spec, 1" + (", :replicas" if table == "pools" else "")
                conn.execute(sa.text(f"INSERT INTO {table} ({columns}) VALUES ({values})"),
                             {"name": doc["metadata"]["name"], "spec": json.dumps(doc),
                              "replicas": doc["spec"].get("replicas")})
    registry.close()


def test_older_registry_is_upgraded_in_place_without_losing_data(registry: Registry, registry_url: str,
                                                                  clawctl_home: Path) -> None:
    _registry_at_0001(registry)
    with Registry(registry_url, home=clawctl_home) as reg:
        with reg.engine().connect() as conn:
            assert migrate.schema_state(conn, where="test") == (migrate.SchemaState.OLDER, "0001")
        revisions = history(reg)  # a read upgrades first
        assert [(r.number, r.fleet, r.kind, r.applied_by, r.message) for r in revisions] == [
            (1, "demo", RevisionKind.APPLY, "old-clawctl", "first")]
        assert revisions[0].created_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        with reg.engine().connect() as conn:
            assert migrate.schema_state(conn, where="test") == (migrate.SchemaState.CURRENT, migrate.HEAD)
            tables = set(sa.inspect(conn).get_table_names())
        assert {"agents", "sessions", "messages", "audit"} <= tables
        [fleet] = desired_status(reg)
        assert [p.name for p in fleet.pools] == ["pool-1", "pool-2"] and fleet.policies == ("traffic",)
        # the upgraded registry recognizes its own content and keeps working
        assert not service.plan_fleet(reg, load(fleet_docs(2))).changed
        outcome = service.record(reg, service.plan_fleet(reg, load(fleet_docs(3))), meta=meta())
        assert outcome.revision == 2


def test_current_registry_is_opened_without_writes(registry: Registry, registry_url: str,
                                                   clawctl_home: Path) -> None:
    service.record(registry, service.plan_fleet(registry, load(fleet_docs(2))), meta=meta())
    registry.close()
    with Registry(registry_url, home=clawctl_home) as reg, count_writes(reg) as writes:
        history(reg)
        desired_status(reg)
        service.plan_fleet(reg, load(fleet_docs(2)))
    assert writes == []
