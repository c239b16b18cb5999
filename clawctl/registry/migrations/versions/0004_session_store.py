"""Row-level session store: version, size, history and closing columns, a history table, indexes.

Every change is additive (ALTER TABLE ADD COLUMN, new table, new indexes), so
the sessions table is never copied: on SQLite a table rebuild would run the
ON DELETE actions of the rows pointing at it (messages.session_id).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)

_SESSION_INDEXES = {
    "ix_sessions_fleet_id_pool_state_created_at_id": ["fleet_id", "pool", "state", "created_at", "id"],
    "ix_sessions_fleet_id_pool_state_last_activity_at": ["fleet_id", "pool", "state", "last_activity_at"],
    "ix_sessions_fleet_id_pool_state_closing_deadline": ["fleet_id", "pool", "state", "closing_deadline"],
    "ix_sessions_agent_id_state_created_at_id": ["agent_id", "state", "created_at", "id"],
    "ix_sessions_state_created_at_id": ["state", "created_at", "id"],
    "ix_sessions_state_closed_at": ["state", "closed_at"],
    "ix_sessions_parent_id": ["parent_id"],
}
_NEW_COLUMNS = ("version", "state_size", "history_len", "closing_deadline", "close_reason", "parent_id")


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("version", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("state_size", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("history_len", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("closing_deadline", TS, nullable=True))
        batch.add_column(sa.Column("close_reason", sa.String(32), nullable=True))
        batch.add_column(sa.Column("parent_id", sa.String(64), nullable=True))
    # Sessions written before 0004 (if any) get their state's size; exact for
    # canonical JSON, close enough for whatever else a driver stored.
    if op.get_bind().dialect.name == "sqlite":
        op.execute("UPDATE sessions SET state_size = length(CAST(data AS BLOB)) WHERE data IS NOT NULL")
    else:
        op.execute("UPDATE sessions SET state_size = octet_length(CAST(data AS TEXT)) WHERE data IS NOT NULL")
    for name, columns in _SESSION_INDEXES.items():
        op.create_index(name, "sessions", columns)
    op.create_index("ix_messages_session_id", "messages", ["session_id"])
    op.create_table(
        "session_history",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("session_id", "seq", name="pk_session_history"),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], name="fk_session_history_session_id_sessions",
                                ondelete="CASCADE"),
    )


def downgrade() -> None:
    op.drop_table("session_history")
    op.drop_index("ix_messages_session_id", "messages")
    for name in reversed(list(_SESSION_INDEXES)):
        op.drop_index(name, "sessions")
    if op.get_bind().dialect.name == "sqlite" and sqlite3.sqlite_version_info >= (3, 35):
        # Native DROP COLUMN: a batch rebuild of sessions would null messages.session_id.
        for column in reversed(_NEW_COLUMNS):
            op.execute(f"ALTER TABLE sessions DROP COLUMN {column}")
        return
    with op.batch_alter_table("sessions") as batch:
        for column in reversed(_NEW_COLUMNS):
            batch.drop_column(column)
