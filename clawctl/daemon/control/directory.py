"""What the reconciler tells the control server about agents, and what it hears back.

The reconciler publishes an immutable ``Snapshot`` after each pass that changed
something: every agent with a live process (for authentication and placement)
and the pool models (for session policies). The control server records each
agent's latest sign of life here; the reconciler reads it to find hung agents.
Both sides only swap or read whole values, so no lock is held across work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from types import MappingProxyType

from clawctl.config.model import AgentPool
from clawctl.protocol.auth import KnownAgent, ProcessStamp


@dataclass(frozen=True)
class AgentView:
    """One agent with a live process, as the control server sees it."""

    fleet: str
    fleet_id: int
    agent_id: str
    pool: str
    slot: int
    state: str
    """The supervision state (Starting, Running, Stopping…)."""
    process: ProcessStamp
    token_digest: str
    cgroups: tuple[PurePosixPath, ...] = ()
    standby: bool = False
    """A hot standby: running and ready, but given no sessions."""
    draining: bool = False
    """Cordoned: takes no new sessions; its sessions move to peers, then it is stopped."""
    successor: bool = False
    """Draining only: a new process will take its slot (sessions without a peer wait for it)."""

    @property
    def key(self) -> str:
        """``fleet/agent-id``: unique across fleets (agent ids are unique within one)."""
        return f"{self.fleet}/{self.agent_id}"

    @property
    def running(self) -> bool:
        return self.state == "Running"

    @property
    def serving(self) -> bool:
        """Running as a primary (or surge) agent: it may be given sessions."""
        return self.state == "Running" and not self.standby and not self.draining

    def known(self) -> KnownAgent:
        """The agent as ``protocol.auth.authorize`` needs it."""
        return KnownAgent(self.key, self.process, self.token_digest, self.cgroups)


@dataclass(frozen=True)
class PoolView:
    """A pool's model with the fleet it belongs to."""

    fleet: str
    fleet_id: int
    revision: int
    model: AgentPool


@dataclass(frozen=True)
class Snapshot:
    """Agents by key and pools by ``(fleet, pool)``; ``version`` grows with each publication."""

    version: int = 0
    agents: Mapping[str, AgentView] = field(default_factory=lambda: MappingProxyType({}))
    pools: Mapping[tuple[str, str], PoolView] = field(default_factory=lambda: MappingProxyType({}))
    handoffs: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Failed agent key → the standby promoted in its place: its sessions go there first."""
    cordoned: frozenset[tuple[str, str]] = frozenset()
    """(fleet, pool) drained by the operator: new sessions go to its fallbackPool or are refused."""

    def pool(self, fleet: str, pool: str) -> PoolView | None:
        return self.pools.get((fleet, pool))

    def fleets(self) -> dict[str, int]:
        """Fleet name → fleet id, for every fleet with a pool."""
        return {view.fleet: view.fleet_id for view in self.pools.values()}


@dataclass(frozen=True)
class SignOfLife:
    """The last time an agent process talked to the daemon (hello or heartbeat)."""

    pid: int
    at: float


class Directory:
    """The one shared place between the reconciler thread and the control server thread."""

    def __init__(self) -> None:
        self._snapshot = Snapshot()
        self._lock = threading.Lock()
        self._seen: dict[str, SignOfLife] = {}
        self._listeners: list[Callable[[Snapshot], None]] = []
        self._handed_over: set[str] = set()
        self.on_handover: Callable[[], None] | None = None
        """Called (from the control server's thread) when an agent finished its handover."""

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def publish(self, agents: Mapping[str, AgentView], pools: Mapping[tuple[str, str], PoolView],
                handoffs: Mapping[str, str] | None = None,
                cordoned: frozenset[tuple[str, str]] = frozenset()) -> Snapshot:
        """Replace the snapshot and tell the listeners (they must not block)."""
        with self._lock:
            snapshot = Snapshot(self._snapshot.version + 1, MappingProxyType(dict(agents)),
                                MappingProxyType(dict(pools)), MappingProxyType(dict(handoffs or {})), cordoned)
            self._handed_over &= {k for k, v in agents.items() if v.draining}
            self._snapshot = snapshot
            listeners = list(self._listeners)
            for key in [k for k in self._seen if k not in agents]:
                del self._seen[key]
        for listener in listeners:
            listener(snapshot)
        return snapshot

    def subscribe(self, listener: Callable[[Snapshot], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def saw(self, key: str, pid: int, at: float) -> None:
        """Record that agent ``key`` (its process ``pid``) talked to the daemon at ``at``."""
        self._seen[key] = SignOfLife(pid, at)

    def last_seen(self, key: str) -> SignOfLife | None:
        return self._seen.get(key)

    def report_handed_over(self, key: str) -> None:
        """The control server moved every session of draining agent ``key`` and it has nothing in flight."""
        with self._lock:
            if key in self._handed_over:
                return
            self._handed_over.add(key)
            wake = self.on_handover
        if wake is not None:
            wake()

    def handed_over(self, key: str) -> bool:
        return key in self._handed_over
