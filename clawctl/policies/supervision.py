"""Which agent processes to start and stop: desired pools × observed agents → actions.

Level-triggered and pure: the same inputs give the same plan, a converged
fleet plans nothing, and ``now`` is an argument. The daemon observes, calls
``plan_processes``, carries out the actions and records the result.

Agents are numbered slots of their pool (``<pool>-<slot>``, an id kept across
restarts, rollouts and failovers, so an agent's workdir and the messages
addressed to it stay its own). Each has a role: ``primary`` (serves sessions),
``standby`` (hot standby: the slots past ``replicas`` start as standbys; a
ready standby takes over a failed primary's role at once and the failed one
restarts as the standby) or ``surge`` (extra agents, ids past the slots, that
a rolling update starts so capacity holds while stale agents are drained and
restarted). A pool starts only when every pool it depends on is ready, and a
pool being removed stops only after the pools that depend on it have stopped.
Stops other than for a failure go through a handover (``Draining``) in the
daemon: the agent's sessions move first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum


class AgentState(str, Enum):
    STARTING = "Starting"    # spawned, not yet seen running
    RUNNING = "Running"      # alive (ready)
    DRAINING = "Draining"    # cordoned: its sessions move to peers; stopped once handed over (or at its deadline)
    BACKOFF = "BackOff"      # exited; a restart is scheduled
    CRASHLOOP = "CrashLoop"  # too many restarts; waits for `clawctl retry` or a new apply
    STOPPING = "Stopping"    # asked to stop; waiting for the grace period
    EXITED = "Exited"        # ended and not restarted (restart policy) — a slot to fill only on apply/retry


ACTIVE = frozenset({AgentState.STARTING, AgentState.RUNNING, AgentState.DRAINING, AgentState.STOPPING})
"""States in which a process exists."""
LIVE = frozenset({AgentState.STARTING, AgentState.RUNNING})
"""States in which a process exists and nobody asked it to stop."""
FAILED = frozenset({AgentState.BACKOFF, AgentState.CRASHLOOP, AgentState.EXITED})
"""States of an agent whose process ended without being asked to."""


class Role(str, Enum):
    PRIMARY = "primary"    # serves sessions
    STANDBY = "standby"    # hot standby: running and ready, given no sessions until promoted
    SURGE = "surge"        # an extra serving agent while a rolling update replaces the others


class StopReason(str, Enum):
    SCALE_DOWN = "scale-down"
    POOL_REMOVED = "pool-removed"
    SPEC_CHANGED = "spec-changed"
    DRAINED = "drained"            # `clawctl drain`: handed over, then stopped
    ROLLOUT_DONE = "rollout-done"  # a surge agent, once every slot runs the new spec
    DISK_QUOTA = "disk-quota"      # the agent's workdir outgrew its disk quota: a failure, not a removal
    HUNG = "hung"                  # its heartbeats stopped for longer than heartbeatTimeout: a failure


FAILURE_STOPS = frozenset({StopReason.DISK_QUOTA, StopReason.HUNG})
"""Stops of a failing agent: no handover (its sessions recover as after a crash)."""


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
    max_surge: int = 0
    cordoned: bool = False
    """Drained by the operator: no agents until ``clawctl uncordon``."""

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
    role: Role = Role.PRIMARY


@dataclass(frozen=True)
class Start:
    agent_id: str
    pool: str
    slot: int
    role: Role = Role.PRIMARY


@dataclass(frozen=True)
class Stop:
    agent_id: str
    pool: str
    reason: StopReason


@dataclass(frozen=True)
class RoleChange:
    """Give ``agent_id`` a new role (a standby promoted, a failed primary demoted)."""

    agent_id: str
    pool: str
    role: Role


@dataclass(frozen=True)
class ProcessPlan:
    starts: tuple[Start, ...] = ()
    stops: tuple[Stop, ...] = ()
    wake_at: float | None = None
    """Earliest time a scheduled restart becomes due (None: nothing scheduled)."""
    roles: tuple[RoleChange, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.starts and not self.stops and not self.roles


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


def resolve_max_surge(value: int | str, replicas: int) -> int:
    """A rollout's ``maxSurge`` as a count (percentages round up, as Kubernetes does; may be 0)."""
    if isinstance(value, str) and value.endswith("%"):
        return -(-replicas * int(value[:-1]) // 100)
    return max(0, int(value))


def pool_ready(pool: DesiredPool, agents: list[ObservedAgent]) -> bool:
    """Every replica slot runs the current spec."""
    running = sum(1 for a in agents if a.state is AgentState.RUNNING and a.spec_hash == pool.spec_hash
                  and a.slot < pool.slots and a.role is Role.PRIMARY)
    return running >= pool.replicas


def plan_processes(desired: list[DesiredPool], observed: list[ObservedAgent], *, now: float,
                   start_budget: int, removed_depends_on: dict[str, tuple[str, ...]] | None = None) -> ProcessPlan:
    """Starts, stops and role changes that move ``observed`` toward ``desired``.

    ``start_budget`` bounds how many starts one pass may issue (the daemon's start
    concurrency minus agents still starting), so a mass failure or a large apply
    does not fork a thousand processes at once. Pools start in phases of equal
    ``priority``, highest first: a phase starts only once every higher one has
    nothing starting and nothing left to start. ``removed_depends_on`` gives the
    last known ``dependsOn`` of pools that left the desired state, so they stop
    dependents first.
    """
    by_pool: dict[str, list[ObservedAgent]] = {}
    for agent in observed:
        by_pool.setdefault(agent.pool, []).append(agent)
    wanted = {p.name: p for p in desired}

    stops: list[Stop] = []
    roles: list[RoleChange] = []
    stops += _stops_for_removed_pools(wanted, by_pool, removed_depends_on or {})
    for pool in desired:
        agents = by_pool.get(pool.name, [])
        if pool.cordoned:
            stops += [Stop(a.agent_id, pool.name, StopReason.DRAINED) for a in agents if a.state in LIVE]
            continue
        changes = _role_changes(pool, agents)
        roles += changes
        agents = _with_roles(agents, changes)
        by_pool[pool.name] = agents
        stops += _stops_within_pool(pool, agents)

    starts: list[Start] = []
    wake_at: float | None = None
    ready = {p.name: pool_ready(p, by_pool.get(p.name, [])) for p in desired}
    busy_priority: int | None = None
    for pool in sorted(desired, key=lambda p: (-p.priority, p.name)):
        if busy_priority is not None and pool.priority < busy_priority:
            break  # a higher phase is still starting: verify it before the next
        if pool.cordoned or not all(ready.get(dep, False) for dep in pool.depends_on):
            continue
        agents = by_pool.get(pool.name, [])
        pool_starts, pool_wake = _starts_within_pool(pool, agents, now)
        starts += pool_starts
        if pool_wake is not None:
            wake_at = pool_wake if wake_at is None else min(wake_at, pool_wake)
        if pool_starts or any(a.state is AgentState.STARTING for a in agents):
            busy_priority = pool.priority
    return ProcessPlan(tuple(starts[: max(0, start_budget)]), tuple(stops), wake_at, tuple(roles))


def _with_roles(agents: list[ObservedAgent], changes: list[RoleChange]) -> list[ObservedAgent]:
    new_role = {c.agent_id: c.role for c in changes}
    return [replace(a, role=new_role[a.agent_id]) if a.agent_id in new_role else a for a in agents]


def _role_changes(pool: DesiredPool, agents: list[ObservedAgent]) -> list[RoleChange]:
    """Hot standby: a ready standby replaces every primary that failed or is missing at once;
    the failed one becomes a standby (its restart refills the standby). Surplus primaries
    (after a scale-down) step back to standby."""
    regular = [a for a in agents if a.slot < pool.slots and a.role is not Role.SURGE]
    primaries = [a for a in regular if a.role is Role.PRIMARY]
    ready_standbys = sorted((a for a in regular if a.role is Role.STANDBY and a.state is AgentState.RUNNING),
                            key=lambda a: (a.spec_hash != pool.spec_hash, a.slot))
    changes: list[RoleChange] = []
    serving = [a for a in primaries if a.state not in FAILED]
    failed = sorted((a for a in primaries if a.state in FAILED), key=lambda a: a.slot)
    missing = max(0, pool.replicas - len(serving))
    for standby in ready_standbys[:missing]:
        changes.append(RoleChange(standby.agent_id, pool.name, Role.PRIMARY))
        if failed:
            changes.append(RoleChange(failed.pop(0).agent_id, pool.name, Role.STANDBY))
    surplus = len(primaries) + sum(1 for c in changes if c.role is Role.PRIMARY) \
        - sum(1 for c in changes if c.role is Role.STANDBY) - pool.replicas
    if surplus > 0 and pool.standbys:
        demoted = {c.agent_id for c in changes}
        for agent in sorted(primaries, key=lambda a: (a.state is AgentState.RUNNING, -a.slot))[:surplus]:
            if agent.agent_id not in demoted:
                changes.append(RoleChange(agent.agent_id, pool.name, Role.STANDBY))
    return changes


def _starts_within_pool(pool: DesiredPool, agents: list[ObservedAgent],
                        now: float) -> tuple[list[Start], float | None]:
    """Missing slots (a new primary while primaries are short, else a standby), due
    restarts, and the surge agents of a rolling update."""
    by_slot = {a.slot: a for a in agents if a.role is not Role.SURGE}
    taken = {a.agent_id for a in agents}
    primaries = sum(1 for a in agents if a.role is Role.PRIMARY and a.slot < pool.slots)
    starts: list[Start] = []
    wake_at: float | None = None
    for slot in range(pool.slots):
        current = by_slot.get(slot)
        if current is None:
            role = Role.PRIMARY if primaries < pool.replicas else Role.STANDBY
            primaries += role is Role.PRIMARY
            starts.append(Start(agent_id(pool.name, slot), pool.name, slot, role))
        elif current.state is AgentState.BACKOFF and current.next_start_at is not None:
            if current.next_start_at <= now:
                starts.append(Start(current.agent_id, pool.name, slot, current.role))
            else:
                wake_at = current.next_start_at if wake_at is None else min(wake_at, current.next_start_at)
    stale = [a for a in agents if a.slot < pool.slots and a.role is Role.PRIMARY and a.spec_hash != pool.spec_hash
             and a.state in ACTIVE]
    surge_wanted = min(pool.max_surge, len(stale))
    surges = [a for a in agents if a.role is Role.SURGE and a.state in ACTIVE]
    for i in range(pool.slots, pool.slots + pool.max_surge):
        if len(surges) + sum(1 for s in starts if s.role is Role.SURGE) >= surge_wanted:
            break
        surge_id = agent_id(pool.name, i)
        if surge_id not in taken:
            starts.append(Start(surge_id, pool.name, i, Role.SURGE))
    return starts, wake_at


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
            if agent.state in LIVE:
                stops.append(Stop(agent.agent_id, name, StopReason.POOL_REMOVED))
    return stops


def _stops_within_pool(pool: DesiredPool, agents: list[ObservedAgent]) -> list[Stop]:
    """Scale-down, and the rolling update: stale agents handed over and replaced while the
    serving agents (primaries and surge, running, not draining) stay at least
    ``replicas - maxUnavailable``; surge agents go once every slot runs the new spec."""
    stops = [
        Stop(a.agent_id, pool.name, StopReason.SCALE_DOWN)
        for a in sorted(agents, key=lambda a: -a.slot)
        if a.slot >= pool.slots and a.role is not Role.SURGE and a.state in LIVE
    ]
    regular = [a for a in agents if a.slot < pool.slots and a.role is not Role.SURGE]
    surges = [a for a in agents if a.role is Role.SURGE and a.state in LIVE]
    stale = [a for a in regular if a.spec_hash != pool.spec_hash and a.state in LIVE]
    # A stale agent still starting serves nobody: replacing it costs nothing.
    stops += [Stop(a.agent_id, pool.name, StopReason.SPEC_CHANGED) for a in stale if a.state is AgentState.STARTING]
    stale = [a for a in stale if a.state is AgentState.RUNNING]
    stale_standbys = [a for a in stale if a.role is Role.STANDBY]
    if stale_standbys and not any(a.role is Role.STANDBY and a.state is not AgentState.RUNNING for a in regular):
        stops.append(Stop(max(stale_standbys, key=lambda a: a.slot).agent_id, pool.name, StopReason.SPEC_CHANGED))
    stale_primaries = [a for a in stale if a.role is Role.PRIMARY]
    if stale_primaries:
        serving = sum(1 for a in regular + surges if a.role is not Role.STANDBY and a.state is AgentState.RUNNING)
        floor = max(0, pool.replicas - pool.max_unavailable)
        budget = max(0, serving - floor)
        for agent in sorted(stale_primaries, key=lambda a: -a.slot)[:budget]:
            stops.append(Stop(agent.agent_id, pool.name, StopReason.SPEC_CHANGED))
    stops += [Stop(a.agent_id, pool.name, StopReason.SPEC_CHANGED) for a in surges if a.spec_hash != pool.spec_hash]
    rolled = all(a.spec_hash == pool.spec_hash for a in regular if a.state in ACTIVE) and pool_ready(pool, regular)
    if rolled:
        stops += [Stop(a.agent_id, pool.name, StopReason.ROLLOUT_DONE) for a in surges
                  if a.spec_hash == pool.spec_hash]
    return stops
