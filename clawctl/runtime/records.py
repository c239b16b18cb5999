"""The data the runtime takes and returns: launch specs, process handles, exits, usage.

All frozen: a handle can be stored, compared and passed between threads freely.
"""

from __future__ import annotations

import os
import signal as _signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import MappingProxyType

from clawctl.config.model import Isolation

QUOTA_NAMES: tuple[str, ...] = ("memory", "cpu", "network", "openFiles", "processes", "disk")
"""Quota names as the config spells them; the keys of ``AgentProcess.enforcement``."""

SETUP_FAILED = 125
"""Exit code of the exec shim when it could not apply an agent's isolation before exec."""


class Enforcement(str, Enum):
    """How a quota is held for one agent; the value is what ``status`` shows."""

    ENFORCED = "enforced"  # the kernel refuses to let the agent exceed it
    MONITORED = "monitored"  # measured only; the daemon acts on violations (or cannot)
    UNLIMITED = "unlimited"  # no quota set


def _frozen_map(values: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(values))


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to start one agent process.

    ``env`` holds only the agent's own variables; the runtime merges them onto a
    small inherited environment (see ``clawctl.runtime.environment``).
    ``cgroup_parent`` names the cgroup directory beneath the daemon's own cgroup
    that holds per-agent cgroups (default ``clawctl``); it may contain ``/``.
    """

    agent_id: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    workdir: Path
    log_dir: Path
    limits: Isolation = field(default_factory=Isolation)
    cgroup_parent: str | None = None

    def __post_init__(self) -> None:
        argv = tuple(self.argv)
        if not argv or not all(isinstance(arg, str) for arg in argv) or not argv[0]:
            raise ValueError(f"argv must be a non-empty list of strings, got {self.argv!r}")
        if not self.agent_id or "\0" in self.agent_id:
            raise ValueError(f"invalid agent id {self.agent_id!r}")
        if self.cgroup_parent is not None and (
            not self.cgroup_parent.strip("/") or ".." in self.cgroup_parent.split("/")
        ):
            raise ValueError(f"invalid cgroup parent {self.cgroup_parent!r}")
        object.__setattr__(self, "argv", argv)
        object.__setattr__(self, "env", _frozen_map(self.env))
        object.__setattr__(self, "workdir", Path(self.workdir))
        object.__setattr__(self, "log_dir", Path(self.log_dir))


@dataclass(frozen=True)
class AgentProcess:
    """A handle on a running agent: enough to verify, signal, measure and re-adopt it.

    ``pid`` + ``create_time`` (psutil's, seconds since the epoch) identify the
    process; a pid alone may be reused by the kernel. ``pgid`` is the agent's own
    process group (= pid, the agent is a session leader). ``cgroups`` are the
    per-agent cgroup directories (one per hierarchy; empty where none could be
    made). ``enforcement`` maps each quota name to "enforced", "monitored" or
    "unlimited"; ``enforcement_notes`` says how, or why it is only monitored.
    """

    agent_id: str
    pid: int
    create_time: float
    pgid: int
    cgroups: tuple[Path, ...] = ()
    enforcement: Mapping[str, str] = field(default_factory=dict)
    enforcement_notes: Mapping[str, str] = field(default_factory=dict)
    limits: Isolation = field(default_factory=Isolation)
    log_path: Path | None = None
    workdir: Path | None = None
    adopted: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "cgroups", tuple(Path(p) for p in self.cgroups))
        object.__setattr__(self, "enforcement", _frozen_map(self.enforcement))
        object.__setattr__(self, "enforcement_notes", _frozen_map(self.enforcement_notes))

    def __hash__(self) -> int:
        return hash((self.pid, self.create_time))


@dataclass(frozen=True)
class Exit:
    """How a process ended. ``returncode`` is set when it exited, ``signal`` when a
    signal killed it; both are None when unknowable (an adopted, non-child process).
    ``oom_killed`` is true when the agent's memory cgroup recorded an OOM kill and
    the agent died of SIGKILL. ``agent_id`` is None for a child the runtime did not
    spawn."""

    pid: int
    agent_id: str | None
    returncode: int | None
    signal: int | None
    oom_killed: bool = False

    @classmethod
    def from_wait_status(cls, pid: int, status: int, *, agent_id: str | None, oom_killed: bool) -> Exit:
        """Decode an ``os.waitpid`` status."""
        code = os.waitstatus_to_exitcode(status)
        if code < 0:
            return cls(pid, agent_id, None, -code, oom_killed and -code == _signal.SIGKILL)
        return cls(pid, agent_id, code, None, False)

    @property
    def success(self) -> bool:
        """True only for a known exit code 0."""
        return self.returncode == 0

    @property
    def reason(self) -> str:
        """A short label for status and events: ``OOMKilled``, ``exit 1``, ``SIGTERM``,
        ``setup failed`` (the shim exited 125) or ``unknown``."""
        if self.oom_killed:
            return "OOMKilled"
        if self.signal is not None:
            try:
                return _signal.Signals(self.signal).name
            except ValueError:
                return f"signal {self.signal}"
        if self.returncode == SETUP_FAILED:
            return "setup failed"
        if self.returncode is not None:
            return f"exit {self.returncode}"
        return "unknown"


@dataclass(frozen=True)
class Usage:
    """One measurement of an agent's whole process tree.

    ``cpu_percent`` is over the interval since the previous probe of the same
    agent (None on the first). ``disk_bytes`` is the workdir's allocated size from
    the latest (rate-limited) walk, None before the first walk or without a workdir.
    """

    rss_bytes: int
    cpu_seconds: float
    cpu_percent: float | None
    processes: int
    disk_bytes: int | None = None
    disk_measured_at: float | None = None
