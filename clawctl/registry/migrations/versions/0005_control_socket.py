"""Control socket: token digests of agents; who opened a session; eager sessions.

- ``agents.token_digest`` lets a restarted daemon authenticate the agents it
  re-adopts (the token itself is never stored).
- ``sessions.opened_by``: the agent (``fleet/agent-id``) that opened a session in
  another pool, which may then talk to it; NULL when the operator opened it.
- ``sessions.claimed``: false for a session pre-opened by ``creation: eager``
  until ``sessions open`` hands it out.

Only ADD COLUMN: the sessions table is never copied (see 0004).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


_NEW_COLUMNS = (("sessions", "claimed"), ("sessions", "opened_by"), ("agents", "token_digest"))
"""Dropped in this order by the downgrade."""


def upgrade() -> None:
    # Plain ADD COLUMN (not batch mode, which may rebuild the table on SQLite).
    op.add_column("agents", sa.Column("token_digest", sa.String(64), nullable=True))
    op.add_column("sessions", sa.Column("opened_by", sa.String(128), nullable=True))
    op.add_column("sessions", sa.Column("claimed", sa.Boolean, nullable=False, server_default=sa.true()))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite" and sqlite3.sqlite_version_info >= (3, 35):
        # Native DROP COLUMN: a batch rebuild would run the ON DELETE actions of the rows
        # pointing at the rebuilt table (sessions.agent_id, messages.session_id).
        for table, column in _NEW_COLUMNS:
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        return
    for table, column in _NEW_COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
