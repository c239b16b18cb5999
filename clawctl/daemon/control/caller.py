"""Who a request comes from, which fleet it is about, and the fleets' CommunicationPolicies."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Connection

from clawctl.config.model import CommunicationPolicy
from clawctl.daemon.control.db import Database
from clawctl.daemon.control.directory import AgentView, Snapshot
from clawctl.errors import NotFound, UsageError
from clawctl.protocol.auth import PeerCredentials
from clawctl.protocol.methods import Role


@dataclass(frozen=True)
class Caller:
    """Who made a request: the operator, or an agent (its view at hello)."""

    role: Role
    agent: AgentView | None
    peer: PeerCredentials

    @property
    def operator(self) -> bool:
        return self.role is Role.OPERATOR

    @property
    def key(self) -> str | None:
        return self.agent.key if self.agent is not None else None

    @property
    def describe(self) -> str:
        if self.agent is not None:
            return f"agent {self.agent.key}"
        return f"operator (pid {self.peer.pid}, uid {self.peer.uid})"


def resolve_fleet(snapshot: Snapshot, caller: Caller, fleet: str | None) -> str:
    """The fleet a request is about: the agent's own, the one named, or the only one applied."""
    if caller.agent is not None and fleet is None:
        return caller.agent.fleet
    fleets = snapshot.fleets()
    if fleet is not None:
        if fleet not in fleets:
            raise NotFound(f"fleet {fleet} is not applied (or has no pools)",
                           hint="clawctl status lists the fleets")
        return fleet
    if len(fleets) == 1:
        return next(iter(fleets))
    if not fleets:
        raise NotFound("no fleet is applied", hint="apply one first: clawctl apply PATH")
    raise UsageError(f"several fleets are applied ({', '.join(sorted(fleets))}); say which one",
                     hint="pass --fleet NAME")


class PolicyBook:
    """The CommunicationPolicies of each fleet, read once per revision."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[tuple[str, int], tuple[CommunicationPolicy, ...]] = {}  # event loop thread only

    async def of(self, fleet: str, fleet_id: int, revision: int) -> tuple[CommunicationPolicy, ...]:
        """The policies of ``fleet`` at ``revision`` (from memory after the first read)."""
        cached = self._cache.get((fleet, revision))
        if cached is not None:
            return cached

        def work(conn: Connection) -> tuple[CommunicationPolicy, ...]:
            return _load_policies(conn, fleet_id)

        loaded = await self.db.run(work)
        self._cache = {k: v for k, v in self._cache.items() if k[0] != fleet}
        self._cache[(fleet, revision)] = loaded
        return loaded


def _load_policies(conn: Connection, fleet_id: int) -> tuple[CommunicationPolicy, ...]:
    import sqlalchemy as sa

    from clawctl.config.build import build_policy
    from clawctl.registry.tables import policies

    rows = conn.execute(sa.select(policies.c.name, policies.c.spec).where(policies.c.fleet_id == fleet_id)
                        .order_by(policies.c.name)).all()
    return tuple(build_policy(name, dict(document)["spec"]) for name, document in rows)
