"""Plain records the registry returns and accepts (no SQLAlchemy in here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any


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
