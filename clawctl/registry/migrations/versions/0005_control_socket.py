"""Control socket: token digests of agents; who opened a session; eager sessions; durable
messages; shared state.

- ``agents.token_digest`` lets a restarted daemon authenticate the agents it
  re-adopts (the token itself is never stored).
- ``sessions.opened_by``: the agent (``fleet/agent-id``) that opened a session in
  another pool, which may then talk to it; NULL when the operator opened it.
- ``sessions.claimed``: false for a session pre-opened by ``creation: eager``
  until ``sessions open`` hands it out.

- ``messages.target`` (``agent/ID`` or ``pool/NAME`` as sent), ``seq`` (delivery
  order), ``client_id`` (the sender's id, unique per sender: a retry is stored once).
- ``shared_state``: versioned keys per fleet (compare-and-set).

Only ADD COLUMN on existing tables: none is copied (see 0004).

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


_NEW_COLUMNS = (("messages", "client_id"), ("messages", "seq"), ("messages", "target"), ("sessions", "claimed"),
                ("sessions", "opened_by"), ("agents", "token_digest"))
"""Dropped in this order by the downgrade."""


def upgrade() -> None:
    # Plain ADD COLUMN (not batch mode, which may rebuild the table on SQLite).
    op.add_column("agents", sa.Column("token_digest", sa.String(64), nullable=True))
    op.add_column("sessions", sa.Column("opened_by", sa.String(128), nullable=True))
    op.add_column("sessions", sa.Column("claimed", sa.Boolean, nullable=False, server_default=sa.true()))
    op.add_column("messages", sa.Column("target", sa.String(200), nullable=True))
    op.add_column("messages", sa.Column("seq", sa.Integer, nullable=True))
    op.add_column("messages", sa.Column("client_id", sa.String(128), nullable=True))
    op.create_index("ix_messages_fleet_id_sender_client_id", "messages", ["fleet_id", "sender", "client_id"],
                    unique=True)
    op.create_index("ix_messages_state_seq", "messages", ["state", "seq"])
    op.create_table(
        "shared_state",
        sa.Column("fleet_id", sa.Integer, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.JSON, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("fleet_id", "key", name="pk_shared_state"),
        sa.ForeignKeyConstraint(["fleet_id"], ["fleets.id"], name="fk_shared_state_fleet_id_fleets"),
    )


def downgrade() -> None:
    op.drop_table("shared_state")
    op.drop_index("ix_messages_state_seq", "messages")
    op.drop_index("ix_messages_fleet_id_sender_client_id", "messages")
    if op.get_bind().dialect.name == "sqlite" and sqlite3.sqlite_version_info >= (3, 35):
        # Native DROP COLUMN: a batch rebuild would run the ON DELETE actions of the rows
        # pointing at the rebuilt table (sessions.agent_id, messages.session_id).
        for table, column in _NEW_COLUMNS:
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        return
    for table, column in _NEW_COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
