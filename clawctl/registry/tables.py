"""The registry's tables at the newest schema revision (SQLAlchemy Core).

Migrations in ``migrations/versions`` create exactly these; a test compares
the two. Desired state: ``fleets``, ``revisions``, ``pools``, ``policies``.
Runtime records that the daemon issues fill: ``agents``, ``sessions`` (and
their ``session_history``), ``messages``, ``audit``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the registry")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


NAME = sa.String(64)

fleets = sa.Table(
    "fleets", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", NAME, nullable=False, unique=True),
    sa.Column("spec", sa.JSON, nullable=False, doc="the normalized Fleet document"),
    sa.Column("revision", sa.Integer, nullable=True, doc="number of the fleet's newest revision"),
    sa.Column("content_hash", sa.String(64), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("deleted_at", UTCDateTime, nullable=True, doc="set by `clawctl delete`; history is kept"),
)

revisions = sa.Table(
    "revisions", metadata,
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("fleet_id", sa.Integer, sa.ForeignKey("fleets.id"), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False, server_default="apply"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("applied_by", sa.String(255), nullable=False),
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("documents", sa.LargeBinary, nullable=False, doc="zlib-compressed canonical JSON of the documents"),
    sa.Column("summary", sa.JSON, nullable=False, doc='{"create": n, "update": n, "delete": n}'),
    sa.Column("source", sa.JSON, nullable=False, doc="the config paths as given"),
    sa.Column("git_root", sa.Text, nullable=True),
    sa.Column("git_commit", sa.String(64), nullable=True),
    sa.Column("git_dirty", sa.Boolean, nullable=True),
    sa.Column("clawctl_version", sa.String(32), nullable=False),
    sa.Column("rollback_of", sa.Integer, nullable=True),
)

pools = sa.Table(
    "pools", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("fleet_id", sa.Integer, sa.ForeignKey("fleets.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", NAME, nullable=False),
    sa.Column("spec", sa.JSON, nullable=False, doc="the normalized AgentPool document"),
    sa.Column("replicas", sa.Integer, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False, doc="revision that last changed this pool"),
    sa.UniqueConstraint("fleet_id", "name"),
)

policies = sa.Table(
    "policies", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("fleet_id", sa.Integer, sa.ForeignKey("fleets.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", NAME, nullable=False),
    sa.Column("spec", sa.JSON, nullable=False, doc="the normalized CommunicationPolicy document"),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.UniqueConstraint("fleet_id", "name"),
)

# Runtime records (schema revision 0002). Agents name their pool by name, not by
# foreign key: a pool removed by apply keeps its agents on record until the
# daemon has stopped them.

agents = sa.Table(
    "agents", metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("fleet_id", sa.Integer, sa.ForeignKey("fleets.id"), nullable=False),
    sa.Column("pool", NAME, nullable=False),
    sa.Column("ordinal", sa.Integer, nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Column("process_started", sa.Float, nullable=True, doc="process start time, to re-adopt by pid safely"),
    sa.Column("spec_hash", sa.String(64), nullable=True, doc="hash of the pool spec the process runs"),
    sa.Column("restarts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_exit_code", sa.Integer, nullable=True),
    sa.Column("last_exit_reason", sa.String(64), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # 0003: what the daemon needs to report and to resume after a restart.
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("next_start_at", sa.Float, nullable=True, doc="when a BackOff restart is due"),
    sa.Column("message", sa.Text, nullable=True, doc="why the agent is in its state (e.g. CrashLoop)"),
    sa.Column("enforcement", sa.JSON, nullable=True, doc="quota name → enforced | monitored | unlimited"),
    # 0005: the control socket authenticates re-adopted agents by this (never the token itself).
    sa.Column("token_digest", sa.String(64), nullable=True),
    # 0006: hot-standby roles and drains that survive a daemon restart.
    sa.Column("role", sa.String(16), nullable=True, doc="primary (NULL), standby or surge"),
    sa.Column("drain_deadline", sa.Float, nullable=True, doc="Draining: stopped at this time at the latest"),
    sa.Index(None, "fleet_id", "pool"),
)

sessions = sa.Table(
    "sessions", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("fleet_id", sa.Integer, sa.ForeignKey("fleets.id"), nullable=False),
    sa.Column("pool", NAME, nullable=False),
    sa.Column("agent_id", sa.String(128), sa.ForeignKey("agents.id", ondelete="SET NULL"), nullable=True),
    sa.Column("key", sa.String(255), nullable=True),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("data", sa.JSON, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_activity_at", UTCDateTime, nullable=False),
    sa.Column("closed_at", UTCDateTime, nullable=True),
    # 0004: a row-level session store (clawctl/registry/sessions.py).
    sa.Column("version", sa.Integer, nullable=False, server_default="0", doc="state writes; compare-and-set"),
    sa.Column("state_size", sa.Integer, nullable=False, server_default="0", doc="bytes of the state as JSON"),
    sa.Column("history_len", sa.Integer, nullable=False, server_default="0", doc="seq of the newest history entry"),
    sa.Column("closing_deadline", UTCDateTime, nullable=True),
    sa.Column("close_reason", sa.String(32), nullable=True),
    sa.Column("parent_id", sa.String(64), nullable=True, doc="not a foreign key: pruning a parent keeps the link"),
    # 0005: who opened it (an agent key; NULL = the operator) and eager pre-opened sessions.
    sa.Column("opened_by", sa.String(128), nullable=True),
    sa.Column("claimed", sa.Boolean, nullable=False, server_default=sa.true(),
              doc="false while an eagerly pre-opened session waits to be handed out"),
    sa.Index(None, "fleet_id", "pool", "key"),
    sa.Index(None, "fleet_id", "pool", "state", "created_at", "id"),
    sa.Index(None, "fleet_id", "pool", "state", "last_activity_at"),
    sa.Index(None, "fleet_id", "pool", "state", "closing_deadline"),
    sa.Index(None, "agent_id", "state", "created_at", "id"),
    sa.Index(None, "state", "created_at", "id"),
    sa.Index(None, "state", "closed_at"),
    sa.Index(None, "parent_id"),
)

session_history = sa.Table(
    "session_history", metadata,
    sa.Column("session_id", sa.String(64), sa.ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("role", sa.String(16), nullable=False, doc="user, agent or system"),
    sa.Column("content", sa.JSON, nullable=False),
)

messages = sa.Table(
    "messages", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("fleet_id", sa.Integer, sa.ForeignKey("fleets.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False, doc="direct or event"),
    sa.Column("sender", sa.String(128), nullable=False),
    sa.Column("recipient", sa.String(128), nullable=False),
    sa.Column("topic", sa.String(255), nullable=True),
    sa.Column("session_id", sa.String(64), sa.ForeignKey("sessions.id", ondelete="SET NULL"), nullable=True),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("delivered_at", UTCDateTime, nullable=True),
    sa.Column("acked_at", UTCDateTime, nullable=True),
    sa.Index(None, "recipient", "state"),
    # 0004: deleting a session sets its messages' session_id to NULL; without this
    # index every pruned session would scan the messages table.
    sa.Index(None, "session_id"),
    # 0005: durable agent messages.
    sa.Column("target", sa.String(200), nullable=True, doc="'agent/ID' or 'pool/NAME' as the sender wrote it"),
    sa.Column("seq", sa.Integer, nullable=True, doc="delivery order (per recipient, in send order)"),
    sa.Column("client_id", sa.String(128), nullable=True, doc="the sender's id: a retry is stored once"),
    sa.Index(None, "fleet_id", "sender", "client_id", unique=True),
    sa.Index(None, "state", "seq"),
)

shared_state = sa.Table(
    "shared_state", metadata,
    sa.Column("fleet_id", sa.Integer, sa.ForeignKey("fleets.id"), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.JSON, nullable=True),
    sa.Column("version", sa.Integer, nullable=False, doc="writes so far; compare-and-set"),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("updated_by", sa.String(255), nullable=False),
)

audit = sa.Table(
    "audit", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False, index=True),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(255), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("detail", sa.JSON, nullable=True),
)

# Supervision (schema revision 0003).

events = sa.Table(
    "events", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False, index=True),
    sa.Column("fleet", NAME, nullable=False),
    sa.Column("target", sa.String(128), nullable=False, doc="agent id or pool name"),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
)

commands = sa.Table(
    "commands", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("verb", sa.String(32), nullable=False, doc="retry, …"),
    sa.Column("target", sa.String(255), nullable=False, doc="fleet/NAME, pool/NAME or agent/ID"),
    sa.Column("done_at", UTCDateTime, nullable=True, index=True),
    sa.Column("result", sa.Text, nullable=True),
    sa.Column("args", sa.JSON, nullable=True, doc="0006: command options (drain --grace-period)"),
)

cordons = sa.Table(
    "cordons", metadata,
    sa.Column("fleet_id", sa.Integer, sa.ForeignKey("fleets.id"), primary_key=True),
    sa.Column("pool", NAME, primary_key=True, doc="a pool name, or * for the whole fleet"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
)
