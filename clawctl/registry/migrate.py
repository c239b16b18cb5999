"""Schema revisions of the registry: find where a database stands, and upgrade it.

The revision ids are listed here so that every command can tell "current",
"older" and "newer" from one query without importing alembic; alembic is
loaded only when a registry must actually be created or upgraded, and runs
programmatically on clawctl's own connection (no alembic.ini on disk).
"""

from __future__ import annotations

from enum import Enum

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clawctl.errors import RegistryError

VERSION_TABLE = "clawctl_schema"
"""Alembic's version table, under a name no other application uses."""

REVISIONS = ("0001", "0002", "0003", "0004", "0005", "0006")
"""Every schema revision this clawctl knows, oldest first (a test checks it against the scripts)."""

HEAD = REVISIONS[-1]

SQLITE_APPLICATION_ID = 0x636C6177
"""Stored in the SQLite header (``PRAGMA application_id``): 'claw'."""


class SchemaState(str, Enum):
    EMPTY = "empty"
    """No tables at all: a new registry to create."""
    OLDER = "older"
    """A clawctl registry at an older revision: upgrade it in place."""
    CURRENT = "current"


def schema_state(conn: Connection, *, where: str) -> tuple[SchemaState, str | None]:
    """Where the database behind ``conn`` stands, without writing to it.

    Raises RegistryError for a database that holds other tables but no clawctl
    schema, for an unknown (newer) revision, and for a damaged version table.
    """
    names = set(sa.inspect(conn).get_table_names())
    app_id = _application_id(conn)
    if VERSION_TABLE not in names:
        if not names and app_id in (0, SQLITE_APPLICATION_ID, None):
            return SchemaState.EMPTY, None
        raise _foreign(where)
    if app_id not in (SQLITE_APPLICATION_ID, None):
        raise _foreign(where)
    versions = [row[0] for row in conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}"))]
    if len(versions) != 1:
        raise RegistryError(f"the registry {where} has a damaged schema version table ({len(versions)} rows)",
                            hint="restore it from a backup, or point CLAWCTL_REGISTRY at a new registry")
    version = versions[0]
    if version not in REVISIONS:
        raise RegistryError(
            f"the registry {where} was written by a newer clawctl (schema revision {version}; "
            f"this clawctl knows up to {HEAD})",
            hint="upgrade clawctl (pip install -U clawctl), or point CLAWCTL_REGISTRY at another registry")
    return (SchemaState.CURRENT if version == HEAD else SchemaState.OLDER), version


def _application_id(conn: Connection) -> int | None:
    if conn.dialect.name != "sqlite":
        return None
    return int(conn.exec_driver_sql("PRAGMA application_id").scalar() or 0)


def _foreign(where: str) -> RegistryError:
    return RegistryError(f"{where} is not a clawctl registry",
                         hint="point CLAWCTL_REGISTRY (or --registry) at a clawctl registry, or at a new, empty "
                              "database; clawctl never modifies a database it does not recognize")


def upgrade(conn: Connection, target: str = HEAD) -> None:
    """Run the migrations up to ``target`` on ``conn``, inside the caller's transaction."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "clawctl.registry:migrations")
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = conn
    command.upgrade(config, target)
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA application_id = {SQLITE_APPLICATION_ID}")
