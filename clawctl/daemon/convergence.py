"""Is a fleet converged? Pure: desired pool documents × agent rows → progress per pool.

Shared by ``apply --wait`` and ``status``, so both say "ready" for the same thing
the daemon plans toward.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from clawctl.config.normalize import canonical_json
from clawctl.policies.supervision import ACTIVE, AgentState, standby_slots

_PROCESS_STATES = frozenset(s.value for s in ACTIVE)


PROCESS_KEYS = ("command", "env", "isolation")
"""The parts of a pool's spec a running process was started from. Changing one replaces the
pool's agents (a rolling update); anything else (replicas, balancing, failover, …) applies to
the running agents as they are."""


def spec_hash(document: dict[str, Any]) -> str:
    """Identity of what a pool's processes run: agents started from another hash are out of date."""
    spec = document.get("spec", {})
    return hashlib.sha256(canonical_json({k: spec[k] for k in PROCESS_KEYS if k in spec}).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AgentView:
    """The fields of an agent row that convergence looks at."""

    pool: str
    slot: int
    state: str
    spec_hash: str | None
    role: str = "primary"


@dataclass(frozen=True)
class PoolProgress:
    pool: str
    desired: int
    ready: int
    standbys_desired: int
    standbys_ready: int
    restarting: int
    crash_looping: int
    state: str
    outdated: int = 0
    """Agents still running a spec other than the pool's current one (a rolling update replaces them)."""
    extra: int = 0
    """Agents with a process beyond the pool's slots: surge agents of a rollout, or scaled away."""

    @property
    def converged(self) -> bool:
        if self.state == "Drained":
            return True
        return (self.ready >= self.desired and self.standbys_ready >= self.standbys_desired and not self.outdated
                and not self.extra)


def pool_progress(documents: Sequence[dict[str, Any]], agents: Iterable[AgentView],
                  cordoned: frozenset[str] = frozenset()) -> list[PoolProgress]:
    """Progress of every pool in ``documents`` (normalized AgentPool documents); pools named in
    ``cordoned`` were drained by the operator and are done once they have no agents left."""
    by_pool: dict[str, list[AgentView]] = {}
    for agent in agents:
        by_pool.setdefault(agent.pool, []).append(agent)
    out = []
    for document in documents:
        name = document["metadata"]["name"]
        spec = document["spec"]
        replicas = int(spec.get("replicas", 1))
        failover = spec.get("failover", {})
        standbys = standby_slots(str(failover.get("strategy", "")), int(failover.get("standbys", 0)))
        digest = spec_hash(document)
        rows = by_pool.get(name, [])
        current = [a for a in rows if a.state == AgentState.RUNNING.value and a.spec_hash == digest]
        ready = sum(1 for a in current if a.role == "primary" and a.slot < replicas + standbys)
        standby_ready = sum(1 for a in current if a.role == "standby" and a.slot < replicas + standbys)
        restarting = sum(1 for a in rows if a.state == AgentState.BACKOFF.value)
        looping = sum(1 for a in rows if a.state == AgentState.CRASHLOOP.value)
        outdated = sum(1 for a in rows if a.spec_hash != digest and a.state in _PROCESS_STATES)
        extra = sum(1 for a in rows if a.state in _PROCESS_STATES
                    and (a.role == "surge" or a.slot >= replicas + standbys))
        serving = sum(1 for a in rows if a.state == AgentState.RUNNING.value and a.role != "standby")
        min_ready = int(failover.get("minReady", 0)) if failover.get("strategy") == "degrade" else 0
        if name in cordoned:
            left = sum(1 for a in rows if a.state in _PROCESS_STATES)
            state = f"Draining {left} agent(s)" if left else "Drained"
        elif serving < min_ready and rows:
            state = "Degraded"
        elif looping:
            state = "CrashLoop"
        elif outdated or any(a.role == "surge" and a.state in _PROCESS_STATES for a in rows):
            state = "Updating"
        elif extra:
            state = "Scaling"
        elif ready >= replicas and standby_ready >= standbys:
            state = "Ready"
        elif restarting:
            state = "Restarting"
        else:
            state = "Starting" if rows or replicas else "Ready"
        out.append(PoolProgress(name, replicas, ready, standbys, standby_ready, restarting, looping, state, outdated,
                                extra))
    return out
