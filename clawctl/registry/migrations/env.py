"""Alembic environment: always run programmatically on a connection clawctl opened.

``clawctl.registry.migrate.upgrade`` passes that connection (already inside a
write transaction) in ``config.attributes["connection"]``; there is no
alembic.ini and no offline mode.
"""

from __future__ import annotations

from alembic import context

from clawctl.registry.migrate import VERSION_TABLE
from clawctl.registry.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
