"""The live side of ``status``: agents as the daemon recorded them, plus fresh process metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from clawctl.daemon.convergence import AgentView, PoolProgress, pool_progress, spec_hash
from clawctl.daemon.waiting import cordoned_pools
from clawctl.registry import supervision as store
from clawctl.registry.engine import Registry
from clawctl.registry.records import FleetStatus


@dataclass(frozen=True)
class AgentLive:
    fleet: str
    agent_id: str
    pool: str
    slot: int
    state: str
    pid: int | None
    uptime: float | None
    restarts: int
    last_exit: str | None
    message: str | None
    rss_bytes: int | None
    cpu_percent: float | None
    enforcement: dict[str, str]
    role: str = "primary"
    outdated: bool = False
    """Runs a spec other than its pool's current one (the rolling update will replace it)."""


@dataclass(frozen=True)
class FleetLive:
    fleet: str
    pools: list[PoolProgress]
    agents: list[AgentLive]


def live_status(registry: Registry, fleets: list[FleetStatus], *, measure: bool = True) -> dict[str, FleetLive]:
    """Per fleet name: pool progress and agents (with RSS / CPU when ``measure``)."""
    with registry.reading() as conn:
        rows = store.load_agents(conn) if conn is not None else []
        cordons = store.load_cordons(conn) if conn is not None else set()
        ids = {h.name: h.fleet_id for h in store.fleet_heads(conn)} if conn is not None else {}
    now = time.time()
    out: dict[str, FleetLive] = {}
    for fleet in fleets:
        mine = sorted((r for r in rows if r.fleet == fleet.name), key=lambda r: (r.pool, r.slot))
        documents = [p.document for p in fleet.pools]
        cordoned = cordoned_pools(cordons, ids[fleet.name], documents) if fleet.name in ids else frozenset()
        progress = pool_progress(documents, [AgentView(r.pool, r.slot, r.state, r.spec_hash, r.role) for r in mine],
                                 cordoned)
        current = {d["metadata"]["name"]: spec_hash(d) for d in documents}
        agents = [_agent(r, now, measure, outdated=r.spec_hash != current.get(r.pool)) for r in mine]
        out[fleet.name] = FleetLive(fleet.name, progress, agents)
    return out


def _agent(row: store.AgentRow, now: float, measure: bool, *, outdated: bool) -> AgentLive:
    rss = cpu = None
    if measure and row.pid is not None and row.process_started is not None:
        rss, cpu = _metrics(row.pid, row.process_started)
    uptime = now - row.process_started if row.pid is not None and row.process_started else None
    return AgentLive(row.fleet, row.agent_id, row.pool, row.slot, row.state, row.pid, uptime, row.restarts,
                     row.last_exit_reason, row.message, rss, cpu, dict(row.enforcement or {}), row.role,
                     outdated and row.pid is not None)


def _metrics(pid: int, create_time: float) -> tuple[int | None, float | None]:
    import psutil

    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > 0.05:
            return None, None
        with proc.oneshot():
            rss = proc.memory_info().rss
            times = proc.cpu_times()
        elapsed = max(1e-6, time.time() - create_time)
        return rss, 100.0 * (times.user + times.system) / elapsed
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None, None


def agent_json(agent: AgentLive) -> dict[str, Any]:
    return {
        "id": agent.agent_id, "pool": agent.pool, "slot": agent.slot, "state": agent.state, "pid": agent.pid,
        "uptime_seconds": None if agent.uptime is None else round(agent.uptime, 3), "restarts": agent.restarts,
        "last_exit": agent.last_exit, "message": agent.message, "rss_bytes": agent.rss_bytes,
        "cpu_percent": None if agent.cpu_percent is None else round(agent.cpu_percent, 2),
        "quotas": agent.enforcement, "role": agent.role, "outdated": agent.outdated,
    }


def pool_json(progress: PoolProgress) -> dict[str, Any]:
    return {"desired": progress.desired, "ready": progress.ready, "standbys": progress.standbys_desired,
            "standbys_ready": progress.standbys_ready, "restarting": progress.restarting,
            "crash_looping": progress.crash_looping, "outdated": progress.outdated, "state": progress.state}
