"""``apply --wait``: watch the registry until the daemon has converged a fleet, or time out."""

from __future__ import annotations

import time
from collections.abc import Callable

from clawctl.daemon.convergence import AgentView, PoolProgress, pool_progress
from clawctl.errors import ClawctlError
from clawctl.registry import supervision as store
from clawctl.registry.engine import Registry

POLL_SECONDS = 0.1


def fleet_progress(registry: Registry, fleet: str) -> list[PoolProgress]:
    """Progress of every pool of ``fleet`` from the registry (agents of removed pools count as a
    pseudo-pool that must reach zero)."""
    with registry.reading() as conn:
        if conn is None:
            return []
        head = next((h for h in store.fleet_heads(conn) if h.name == fleet), None)
        documents = store.pool_documents(conn, head.fleet_id) if head else []
        rows = store.load_agents(conn, fleet=fleet)
        cordoned = cordoned_pools(store.load_cordons(conn), head.fleet_id, documents) if head else frozenset()
    views = [AgentView(r.pool, r.slot, r.state, r.spec_hash, r.role) for r in rows]
    progress = pool_progress(documents, views, cordoned)
    names = {p.pool for p in progress}
    leftovers = [r for r in rows if r.pool not in names]
    if leftovers:
        progress.append(PoolProgress("(removed pools)", 0, 0, 0, 0, 0, 0,
                                     f"Stopping {len(leftovers)} agent(s)"))
    return progress


def cordoned_pools(cordons: set[tuple[int, str]], fleet_id: int, documents: list[dict[str, object]]) -> frozenset[str]:
    """Names of the fleet's pools under a pool or fleet-wide cordon."""
    if (fleet_id, store.FLEET_WIDE) in cordons:
        return frozenset(str(d["metadata"]["name"]) for d in documents)  # type: ignore[index]
    return frozenset(pool for fid, pool in cordons if fid == fleet_id)


def converged(progress: list[PoolProgress]) -> bool:
    return all(p.converged and not p.state.startswith("Stopping") for p in progress)


def wait_converged(registry: Registry, fleet: str, *, timeout: float,
                   on_progress: Callable[[list[PoolProgress]], None] | None = None,
                   clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
    """Return once every pool of ``fleet`` is ready; raise naming what is not, after ``timeout``."""
    deadline = clock() + timeout
    while True:
        progress = fleet_progress(registry, fleet)
        if on_progress is not None:
            on_progress(progress)
        if converged(progress):
            return
        if clock() >= deadline:
            waiting = [p for p in progress if not p.converged or p.state.startswith("Stopping")]
            detail = "; ".join(f"{p.pool} {p.ready}/{p.desired} ready ({p.state})" for p in waiting)
            raise ClawctlError(f"fleet {fleet} did not converge within {timeout:g}s: {detail}",
                               hint="see `clawctl status` and `clawctl events`; agents keep converging in the "
                                    "background")
        sleep(POLL_SECONDS)
