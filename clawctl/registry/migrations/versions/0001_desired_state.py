"""Desired state: fleets, their revisions, pools and communication policies.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "fleets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("revision", sa.Integer, nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("deleted_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_fleets"),
        sa.UniqueConstraint("name", name="uq_fleets_name"),
    )
    op.create_table(
        "revisions",
        sa.Column("number", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("fleet_id", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("applied_by", sa.String(255), nullable=False),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("documents", sa.LargeBinary, nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("source", sa.JSON, nullable=False),
        sa.Column("git_root", sa.Text, nullable=True),
        sa.Column("git_commit", sa.String(64), nullable=True),
        sa.Column("git_dirty", sa.Boolean, nullable=True),
        sa.Column("clawctl_version", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("number", name="pk_revisions"),
        sa.ForeignKeyConstraint(["fleet_id"], ["fleets.id"], name="fk_revisions_fleet_id_fleets"),
    )
    op.create_index("ix_revisions_fleet_id", "revisions", ["fleet_id"])
    for table, extra in (("pools", [sa.Column("replicas", sa.Integer, nullable=False)]), ("policies", [])):
        op.create_table(
            table,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("fleet_id", sa.Integer, nullable=False),
            sa.Column("name", sa.String(64), nullable=False),
            sa.Column("spec", sa.JSON, nullable=False),
            *extra,
            sa.Column("revision", sa.Integer, nullable=False),
            sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
            sa.ForeignKeyConstraint(["fleet_id"], ["fleets.id"], name=f"fk_{table}_fleet_id_fleets",
                                    ondelete="CASCADE"),
            sa.UniqueConstraint("fleet_id", "name", name=f"uq_{table}_fleet_id_name"),
        )


def downgrade() -> None:
    for table in ("policies", "pools", "revisions", "fleets"):
        op.drop_table(table)
