"""The desired state per fleet and pool, as recorded by the last apply."""

from __future__ import annotations

from dataclasses import replace

from clawctl.errors import NotFound
from clawctl.registry import store
from clawctl.registry.engine import Registry
from clawctl.registry.records import FleetStatus


def desired_status(registry: Registry, pool: str | None = None) -> list[FleetStatus]:
    """Every live fleet with its pools; with ``pool``, only fleets holding a pool of that name,
    and only that pool. Raises NotFound when no fleet has such a pool."""
    with registry.reading() as conn:
        fleets = store.desired_status(conn) if conn is not None else []
    if pool is None:
        return fleets
    chosen = [replace(f, pools=tuple(p for p in f.pools if p.name == pool)) for f in fleets]
    chosen = [f for f in chosen if f.pools]
    if not chosen:
        from clawctl.config.suggest import did_you_mean

        names = sorted({p.name for f in fleets for p in f.pools})
        raise NotFound(f"no fleet has a pool named {pool}",
                       hint=did_you_mean(pool, names) or (f"pools: {', '.join(names)}" if names
                                                          else "no fleet has been applied yet"))
    return chosen
