"""Which agents an operator target (``agent/ID``, ``pool/NAME``, ``fleet/NAME``) names."""

from __future__ import annotations


def target_matches(target: str, *, fleet: str, pool: str, agent_id: str) -> bool:
    """True when ``target`` names this agent. A pool or agent name may be qualified by its fleet
    (``pool/prod/web``, ``agent/prod/web-0``) to pick one fleet's."""
    kind, _, name = target.partition("/")
    if kind == "fleet":
        return fleet == name
    if kind == "pool":
        return pool == name or f"{fleet}/{pool}" == name
    if kind == "agent":
        return agent_id == name or f"{fleet}/{agent_id}" == name
    return False
