"""Failover, drain and rolling updates.

- ``agents.role``: ``primary`` (NULL on older rows), ``standby`` (hot standby:
  ready, given no sessions) or ``surge`` (an extra agent of a rolling update).
  A promoted standby and the primary it replaced swap roles, so the role is
  stored rather than derived from the slot.
- ``agents.drain_deadline``: while an agent is ``Draining`` (cordoned, handing
  its sessions over), when it is stopped even if the handover is not finished;
  a restarted daemon carries on from it.
- ``commands.args``: options of a queued command (``drain --grace-period``).
- ``cordons``: pools (or, with ``pool`` = ``*``, whole fleets) an operator drained;
  they stay without agents until ``clawctl uncordon``.

Only ADD COLUMN and a new table: nothing is copied (see 0004).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_NEW_COLUMNS = (("commands", "args"), ("agents", "drain_deadline"), ("agents", "role"))
"""Dropped in this order by the downgrade."""


def upgrade() -> None:
    op.add_column("agents", sa.Column("role", sa.String(16), nullable=True))
    op.add_column("agents", sa.Column("drain_deadline", sa.Float, nullable=True))
    op.add_column("commands", sa.Column("args", sa.JSON, nullable=True))
    op.create_table(
        "cordons",
        sa.Column("fleet_id", sa.Integer, nullable=False),
        sa.Column("pool", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("fleet_id", "pool", name="pk_cordons"),
        sa.ForeignKeyConstraint(["fleet_id"], ["fleets.id"], name="fk_cordons_fleet_id_fleets"),
    )


def downgrade() -> None:
    op.drop_table("cordons")
    if op.get_bind().dialect.name == "sqlite" and sqlite3.sqlite_version_info >= (3, 35):
        for table, column in _NEW_COLUMNS:
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        return
    for table, column in _NEW_COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
