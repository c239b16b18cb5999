"""Which agent processes to start and stop: desired pools × observed agents → actions.

Level-triggered and pure: the same inputs give the same plan, a converged
fleet plans nothing, and ``now`` is an argument. The daemon observes, calls
``plan_processes``, carries out the actions and records the result.

Agents are numbered slots of their pool (``<pool>-<slot>``); slots at or past
``replicas`` are hot standbys when the pool has them. A pool starts only when
every pool it depends on is ready, and a pool being removed stops only after
the pools that depend on it have stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class AgentState(str, Enum):
    STARTING = "Starting"    # spawned, not yet seen running
    RUNNING = "Running"      # alive (ready)
    BACKOFF = "BackOff"      # exited; a restart is scheduled
    CRASHLOOP = "CrashLoop"  # too many restarts; waits for `clawctl retry` or a new apply
    STOPPING = "Stopping"    # asked to stop; waiting for the grace period
    EXITED = "Exited"        # ended and not restarted (restart policy) — a slot to fill only on apply/retry


ACTIVE = frozenset({AgentState.STARTING, AgentState.RUNNING, AgentState.STOPPING})
"""States in which a process exists."""


class StopReason(str, Enum):
    SCALE_DOWN = "scale-down"
    POOL_REMOVED = "pool-removed"
    SPEC_CHANGED = "spec-changed"
    DISK_QUOTA = "disk-quota"      # the agent's workdir outgrew its disk quota: a failure, not a removal
    HUNG = "hung"                  # its heartbeats stopped for longer than heartbeatTimeout: a failure


@dataclass(frozen=True)
class DesiredPool:
    """What the registry says one pool should be, reduced to what supervision needs."""

    name: str
    replicas: int
    spec_hash: str
    standbys: int = 0
    priority: int = 0
    depends_on: tuple[str, ...] = ()
    max_unavailable: int = 1

    @property
    def slots(self) -> int:
        return self.replicas + self.standbys


@dataclass(frozen=True)
class ObservedAgent:
    agent_id: str
    pool: str
    slot: int
    state: AgentState
    spec_hash: str
    next_start_at: float | None = None


@dataclass(frozen=True)
class Start:
    agent_id: str
    pool: str
    slot: int


@dataclass(frozen=True)
class Stop:
    agent_id: str
    pool: str
    reason: StopReason


@dataclass(frozen=True)
class ProcessPlan:
    starts: tuple[Start, ...] = ()
    stops: tuple[Stop, ...] = ()
    wake_at: float | None = None
    """Earliest time a scheduled restart becomes due (None: nothing scheduled)."""

    @property
    def empty(self) -> bool:
        return not self.starts and not self.stops


def standby_slots(strategy: str, standbys: int) -> int:
    """Extra slots a pool keeps warm: its ``standbys``, but only under the hot-standby strategy."""
    return standbys if strategy == "hot-standby" else 0


def agent_id(pool: str, slot: int) -> str:
    """The stable name of a pool's slot: ``support-3``."""
    return f"{pool}-{slot}"


def resolve_max_unavailable(value: int | str, replicas: int) -> int:
    """A rollout's ``maxUnavailable`` as a count (percentages round down, at least 1)."""
    if isinstance(value, str) and value.endswith("%"):
        return max(1, replicas * int(value[:-1]) // 100)
    return max(1, int(value))


def pool_ready(pool: DesiredPool, agents: list[ObservedAgent]) -> bool:
    """Every replica slot runs the current spec."""
    running = sum(1 for a in agents if a.state is AgentState.RUNNING and a.spec_hash == pool.spec_hash
                  and a.slot < pool.replicas)
    return running >= pool.replicas


def plan_processes(desired: list[DesiredPool], observed: list[ObservedAgent], *, now: float,
                   start_budget: int, removed_depends_on: dict[str, tuple[str, ...]] | None = None) -> ProcessPlan:
    """Starts and stops that move ``observed`` toward ``desired``.

    ``start_budget`` bounds how many starts one pass may issue (the daemon's start
    concurrency minus agents still starting), so a mass failure or a large apply
    does not fork a thousand processes at once; higher-priority pools go first.
    ``removed_depends_on`` gives the last known ``dependsOn`` of pools that left
    the desired state, so they stop dependents first.
    """
    by_pool: dict[str, list[ObservedAgent]] = {}
    for agent in observed:
        by_pool.setdefault(agent.pool, []).append(agent)
    wanted = {p.name: p for p in desired}

    stops: list[Stop] = []
    stops += _stops_for_removed_pools(wanted, by_pool, removed_depends_on or {})
    for pool in desired:
        stops += _stops_within_pool(pool, by_pool.get(pool.name, []))

    starts: list[Start] = []
    wake_at: float | None = None
    ready = {p.name: pool_ready(p, by_pool.get(p.name, [])) for p in desired}
    for pool in sorted(desired, key=lambda p: (-p.priority, p.name)):
        if not all(ready.get(dep, False) for dep in pool.depends_on):
            continue
        agents = {a.slot: a for a in by_pool.get(pool.name, [])}
        for slot in range(pool.slots):
            current = agents.get(slot)
            if current is None:
                starts.append(Start(agent_id(pool.name, slot), pool.name, slot))
            elif current.state is AgentState.BACKOFF and current.next_start_at is not None:
                if current.next_start_at <= now:
                    starts.append(Start(current.agent_id, pool.name, slot))
                else:
                    wake_at = current.next_start_at if wake_at is None else min(wake_at, current.next_start_at)
    return ProcessPlan(tuple(starts[: max(0, start_budget)]), tuple(stops), wake_at)


def _stops_for_removed_pools(wanted: dict[str, DesiredPool], by_pool: dict[str, list[ObservedAgent]],
                             depends_on: dict[str, tuple[str, ...]]) -> list[Stop]:
    removed = {name for name in by_pool if name not in wanted}
    has_process = {name for name in removed if any(a.state in ACTIVE for a in by_pool[name])}
    stops = []
    for name in sorted(removed):
        waiting_for = [q for q in has_process if q != name and name in depends_on.get(q, ())]
        if waiting_for:
            continue  # its dependents are still running
        for agent in by_pool[name]:
            if agent.state in (AgentState.STARTING, AgentState.RUNNING):
                stops.append(Stop(agent.agent_id, name, StopReason.POOL_REMOVED))
    return stops


def _stops_within_pool(pool: DesiredPool, agents: list[ObservedAgent]) -> list[Stop]:
    stops = [
        Stop(a.agent_id, pool.name, StopReason.SCALE_DOWN)
        for a in sorted(agents, key=lambda a: -a.slot)
        if a.slot >= pool.slots and a.state in (AgentState.STARTING, AgentState.RUNNING)
    ]
    stale = [a for a in agents if a.slot < pool.slots and a.spec_hash != pool.spec_hash
             and a.state in (AgentState.STARTING, AgentState.RUNNING)]
    if stale:
        unavailable = sum(1 for a in agents if a.slot < pool.replicas and a.state is not AgentState.RUNNING)
        unavailable += sum(1 for slot in range(pool.replicas) if slot not in {a.slot for a in agents})
        budget = max(0, pool.max_unavailable - unavailable)
        for agent in sorted(stale, key=lambda a: (a.state is AgentState.RUNNING, -a.slot))[:budget]:
            stops.append(Stop(agent.agent_id, pool.name, StopReason.SPEC_CHANGED))
    return stops
