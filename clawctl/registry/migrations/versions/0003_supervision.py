"""Supervision records: per-agent enforcement and scheduling, events, operator commands.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("started_at", sa.Float, nullable=True))
        batch.add_column(sa.Column("next_start_at", sa.Float, nullable=True))
        batch.add_column(sa.Column("message", sa.Text, nullable=True))
        batch.add_column(sa.Column("enforcement", sa.JSON, nullable=True))
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("fleet", sa.String(64), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_at", "events", ["at"])
    op.create_table(
        "commands",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("verb", sa.String(32), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("done_at", TS, nullable=True),
        sa.Column("result", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_commands"),
    )
    op.create_index("ix_commands_done_at", "commands", ["done_at"])


def downgrade() -> None:
    op.drop_index("ix_commands_done_at", "commands")
    op.drop_table("commands")
    op.drop_index("ix_events_at", "events")
    op.drop_table("events")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("enforcement")
        batch.drop_column("message")
        batch.drop_column("next_start_at")
        batch.drop_column("started_at")
