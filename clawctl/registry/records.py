"""Plain records the registry returns and accepts (no SQLAlchemy in here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from clawctl.policies.session_lifecycle import CloseReason, SessionState


class RevisionKind(str, Enum):
    APPLY = "apply"
    ROLLBACK = "rollback"
    DELETE = "delete"


@dataclass(frozen=True)
class GitInfo:
    """The git repository that holds the config files: its root, HEAD commit, and whether the
    config files differ from that commit (modified, staged or untracked)."""

    root: str
    commit: str | None
    dirty: bool


@dataclass(frozen=True)
class RevisionMeta:
    """What the caller records with a new revision besides its content."""

    kind: RevisionKind
    applied_by: str
    message: str | None = None
    source: tuple[str, ...] = ()
    git: GitInfo | None = None
    rollback_of: int | None = None


@dataclass(frozen=True)
class RevisionInfo:
    """One recorded revision, without its documents."""

    number: int
    fleet: str
    kind: RevisionKind
    created_at: datetime
    applied_by: str
    message: str | None
    content_hash: str
    summary: dict[str, int]
    source: tuple[str, ...]
    git: GitInfo | None
    clawctl_version: str
    rollback_of: int | None = None


@dataclass(frozen=True)
class PoolStatus:
    """The desired state of one pool: its normalized document and the revision that last changed it."""

    name: str
    replicas: int
    revision: int
    document: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class FleetStatus:
    """The desired state of one fleet as the registry holds it."""

    name: str
    revision: int
    content_hash: str
    updated_at: datetime
    applied_by: str
    description: str
    pools: tuple[PoolStatus, ...]
    policies: tuple[str, ...]


# Sessions (clawctl/registry/sessions.py). States and close reasons are the
# lifecycle policy's own enums, so the store and the decisions cannot drift.


class HistoryRole(str, Enum):
    """Who wrote a history entry."""

    USER = "user"
    AGENT = "agent"
    SYSTEM = "system"


@dataclass(frozen=True)
class SessionRow:
    """A ``sessions`` row without its state blob (``get_state`` reads that)."""

    id: str
    fleet_id: int
    pool: str
    agent_id: str | None
    """The owner; None while nobody owns it (Orphaned, or its agent row is gone)."""
    key: str | None
    state: SessionState
    version: int
    """Number of state writes; ``set_state`` compares and sets it."""
    state_size: int
    """Bytes of the state as canonical JSON (0 without state)."""
    history_len: int
    """Entries appended so far; also the seq of the newest entry."""
    created_at: datetime
    last_activity_at: datetime
    """Last real interaction (message or reply); ``created_at`` until the first one."""
    closing_deadline: datetime | None
    close_reason: CloseReason | None
    closed_at: datetime | None
    parent_id: str | None
    opened_by: str | None = None
    """The agent (``fleet/agent-id``) that opened it from another pool; None: the operator."""
    claimed: bool = True
    """False while a session pre-opened by ``creation: eager`` waits to be handed out."""


@dataclass(frozen=True)
class SessionData:
    """A session's state and the version to pass back to ``set_state``."""

    data: Any
    version: int


@dataclass(frozen=True)
class HistoryEntry:
    session_id: str
    seq: int
    """1, 2, 3… per session, in append order."""
    at: datetime
    role: HistoryRole
    content: Any


@dataclass(frozen=True)
class SessionFilter:
    """Which sessions ``list_sessions`` returns; empty ``states`` means every state.

    Index-backed: ``fleet_id`` + ``pool``, or ``agent_id``, or neither (all fleets);
    ``key`` and ``parent_id`` narrow further.
    """

    fleet_id: int | None = None
    pool: str | None = None
    agent_id: str | None = None
    states: tuple[SessionState, ...] = ()
    key: str | None = None
    parent_id: str | None = None


@dataclass(frozen=True)
class SessionCursor:
    """Keyset position: the last row of the previous page."""

    created_at: datetime
    id: str


@dataclass(frozen=True)
class SessionPage:
    rows: tuple[SessionRow, ...]
    next: SessionCursor | None
    """Pass as ``after`` for the next page; None when this page is the last."""


@dataclass(frozen=True)
class DueSession:
    """A session that must end (or finish closing), as ``session_lifecycle.due_sessions`` decides."""

    session_id: str
    reason: CloseReason
    at: datetime
    """The deadline that passed."""
