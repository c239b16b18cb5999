"""What the daemon knows about each agent slot and what it reports as events."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from clawctl.config.model import AgentPool
from clawctl.policies.restart import RestartHistory
from clawctl.policies.supervision import AgentState, DesiredPool, Role, StopReason
from clawctl.runtime.records import AgentProcess


@dataclass(frozen=True)
class AgentRecord:
    """One agent slot of a fleet as the daemon tracks it (``key`` = fleet/agent id)."""

    fleet: str
    fleet_id: int
    agent_id: str
    pool: str
    slot: int
    state: AgentState
    spec_hash: str
    process: AgentProcess | None = None
    started_at: float | None = None
    next_start_at: float | None = None
    stop_deadline: float | None = None
    stop_reason: StopReason | None = None
    history: RestartHistory = RestartHistory()
    restarts: int = 0
    last_exit: str | None = None
    last_exit_code: int | None = None
    message: str = ""
    enforcement: dict[str, str] | None = None
    """How the quotas of the last run were held (kept after it exits, for status)."""
    token_digest: str | None = None
    """Digest of the control-socket token of the current process (never the token)."""
    role: Role = Role.PRIMARY
    drain_deadline: float | None = None
    """Draining: when it is stopped even if its sessions are not all handed over yet."""
    drain_grace: float | None = None
    """Draining: the SIGTERM → SIGKILL grace once it is stopped (None: the pool's gracePeriod)."""
    successor: bool = False
    """Draining: a process will take its slot again (rollout, agent drain), so sessions that
    find no peer now wait for it rather than being given up."""

    @property
    def key(self) -> str:
        return f"{self.fleet}/{self.agent_id}"

    def evolve(self, **changes: Any) -> AgentRecord:
        return replace(self, **changes)


@dataclass(frozen=True)
class Event:
    """One recorded transition (``clawctl events``)."""

    at: float
    fleet: str
    target: str          # agent id or pool name
    reason: str          # Started, Exited, BackOff, CrashLoop, Stopping, Stopped, Killed, Adopted, Lost, …
    message: str
    level: str = "info"  # info | warning


@dataclass(frozen=True)
class DesiredFleet:
    """A fleet's pools as the registry's newest revision describes them."""

    name: str
    fleet_id: int
    revision: int
    pools: tuple[DesiredPool, ...]
    specs: dict[str, AgentPool] = field(default_factory=dict, compare=False)
    """The typed pool model by pool name (argv, env, isolation, failover, drain)."""
