"""Session placement: which agent of a pool gets a new session.

Pure: ``place(strategy, candidates, key=..., state=...)`` looks only at its
arguments and returns a ``Placement`` holding the chosen agent (or why there
is none) and the pool's next ``BalancerState``. The caller keeps one
``BalancerState`` per pool (in memory; losing it only restarts a rotation)
and passes it back on the next call.

Eligibility, common to every strategy: a candidate takes a session only when
it ``accepts`` (not cordoned, not a standby, running) and has room
(``open_sessions < capacity``); the ``weighted`` strategy also skips weight 0.
No eligible candidate gives a refusal instead of an agent:

- ``Outcome.NO_AGENTS``: no candidate accepts sessions at all;
- ``Outcome.FULL``: some accept, every one of them is at capacity.

Refusals are data, not exceptions: ``Placement.describe(pool)`` renders
``pool support is full: 3 agents × capacity 10 sessions`` for the caller's
error (or the caller waits and retries, if its policy says so).

Candidates are ordered by ``(slot, agent_id)``; every tie below is broken by
that order, so equal inputs always give the same choice. Strategies
(``STRATEGIES``, keyed by the config-language names):

- ``round-robin``: the next eligible slot after the last one chosen, wrapping.
- ``least-connections``: fewest open sessions, then lowest slot.
- ``weighted``: smooth weighted round-robin (nginx), weights by slot.
- ``consistent-hash``: a hash ring (blake2b, ``VNODES`` points per agent) over
  every candidate; a key goes to the first eligible agent clockwise from its
  hash. No key: least-connections.
- ``least-latency``: least ``ewma × (open_sessions + 1)``; agents without a
  sample yet get the best known EWMA (optimistic prior, so they are tried).
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from functools import lru_cache

from clawctl.config.model import LoadBalancingStrategy

VNODES = 160
"""Ring points per agent: enough that each agent's share of keys stays within about ±20% of 1/N."""


@dataclass(frozen=True)
class Candidate:
    """One agent of the pool as placement sees it. ``slot`` is unique within the pool."""

    agent_id: str
    slot: int
    open_sessions: int = 0
    capacity: int = 10
    weight: int = 1
    ewma_seconds: float | None = None
    """Smoothed service time (see ``ewma_update``); None until the first sample."""
    accepts: bool = True
    """False for cordoned, draining, standby or not-yet-ready agents."""

    @property
    def has_room(self) -> bool:
        return self.open_sessions < self.capacity


@dataclass(frozen=True)
class BalancerState:
    """Per-pool rotation memory; immutable, returned updated by every ``place``."""

    rr_last_slot: int | None = None
    """Slot that round-robin chose last (None: start at the lowest slot)."""
    wrr_current: tuple[tuple[str, int], ...] = ()
    """Smooth weighted round-robin's current weight per agent id, sorted by id."""


class Outcome(str, Enum):
    PLACED = "placed"
    FULL = "full"                # agents accept sessions, all are at capacity
    NO_AGENTS = "no-agents"      # no agent accepts sessions (none running, all cordoned/standby)


@dataclass(frozen=True)
class Placement:
    """The chosen agent, or a refusal with the numbers for its message."""

    outcome: Outcome
    state: BalancerState
    agent_id: str | None = None
    agents: int = 0
    """Agents that accept sessions (for the weighted strategy: with weight > 0)."""
    capacity: int | None = None
    """Per-agent capacity of those agents when they all share one, else None."""
    total_capacity: int = 0

    @property
    def placed(self) -> bool:
        return self.outcome is Outcome.PLACED

    def describe(self, pool: str) -> str:
        """One sentence for an error or a status line."""
        if self.outcome is Outcome.PLACED:
            return f"placed on {self.agent_id}"
        if self.outcome is Outcome.NO_AGENTS:
            return f"pool {pool} has no agent accepting sessions"
        noun = "agent" if self.agents == 1 else "agents"
        if self.capacity is not None:
            return f"pool {pool} is full: {self.agents} {noun} × capacity {self.capacity} sessions"
        return f"pool {pool} is full: {self.agents} {noun}, {self.total_capacity} sessions in all"


def weight_for(weights: Sequence[int], slot: int) -> int:
    """``loadBalancing.weights`` by agent index: agents past the list weigh 1."""
    return weights[slot] if 0 <= slot < len(weights) else 1


def ewma_update(previous: float | None, sample: float, alpha: float) -> float:
    """Exponentially weighted moving average: the first sample is taken as is.

    ``alpha`` (``loadBalancing.ewmaAlpha``) must be in (0, 1]; a negative sample
    (a clock step between request and reply) counts as 0.
    """
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    sample = max(0.0, sample)
    if previous is None:
        return sample
    return alpha * sample + (1.0 - alpha) * previous


def _order(c: Candidate) -> tuple[int, str]:
    return (c.slot, c.agent_id)


# A strategy picks one of ``eligible`` (non-empty, in slot order); it also sees the
# whole pool (the hash ring is built over every candidate, eligible or not).
Strategy = Callable[[Sequence[Candidate], Sequence[Candidate], str | None, BalancerState],
                    tuple[Candidate, BalancerState]]


def _round_robin(pool: Sequence[Candidate], eligible: Sequence[Candidate], key: str | None,
                 state: BalancerState) -> tuple[Candidate, BalancerState]:
    # Remember a slot, not a list index: agents joining or leaving do not reset the rotation.
    last = state.rr_last_slot
    chosen = next((c for c in eligible if last is None or c.slot > last), eligible[0])
    return chosen, replace(state, rr_last_slot=chosen.slot)


def _least_connections(pool: Sequence[Candidate], eligible: Sequence[Candidate], key: str | None,
                       state: BalancerState) -> tuple[Candidate, BalancerState]:
    return min(eligible, key=lambda c: (c.open_sessions, _order(c))), state


def _weighted(pool: Sequence[Candidate], eligible: Sequence[Candidate], key: str | None,
              state: BalancerState) -> tuple[Candidate, BalancerState]:
    # nginx's smooth weighted round-robin: every eligible agent gains its weight, the
    # largest current wins and pays back the total. Weights 5,1,1 give a a b a c a a.
    current = dict(state.wrr_current)
    present = {c.agent_id for c in pool}
    current = {agent: value for agent, value in current.items() if agent in present}
    total = 0
    for c in eligible:
        current[c.agent_id] = current.get(c.agent_id, 0) + c.weight
        total += c.weight
    chosen = max(eligible, key=lambda c: (current[c.agent_id], -c.slot))
    current[chosen.agent_id] -= total
    return chosen, replace(state, wrr_current=tuple(sorted(current.items())))


def _point(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


@dataclass(frozen=True)
class HashRing:
    """Sorted ring points and the agent owning each."""

    points: tuple[int, ...]
    owners: tuple[str, ...]

    def walk(self, key: str) -> Iterator[str]:
        """Distinct agents in ring order from ``key``'s position: its owner first, then its fallbacks."""
        n = len(self.points)
        start = bisect.bisect_left(self.points, _point(key)) if n else 0
        seen: set[str] = set()
        for i in range(n):
            owner = self.owners[(start + i) % n]
            if owner not in seen:
                seen.add(owner)
                yield owner

    def owner(self, key: str) -> str | None:
        """The agent a key belongs to when every agent is eligible."""
        if not self.points:
            return None
        return self.owners[bisect.bisect_left(self.points, _point(key)) % len(self.points)]


@lru_cache(maxsize=4096)
def _agent_points(agent_id: str, vnodes: int) -> tuple[tuple[int, str], ...]:
    return tuple((_point(f"{agent_id}#{i}"), agent_id) for i in range(vnodes))


@lru_cache(maxsize=256)
def hash_ring(agent_ids: tuple[str, ...], vnodes: int = VNODES) -> HashRing:
    """The ring over ``agent_ids`` (order does not matter).

    Memoized (a pool's ring is reused for every key), and so are each agent's points,
    so a membership change only re-sorts.
    """
    pairs = sorted(pair for agent in set(agent_ids) for pair in _agent_points(agent, vnodes))
    return HashRing(tuple(p for p, _ in pairs), tuple(a for _, a in pairs))


def _consistent_hash(pool: Sequence[Candidate], eligible: Sequence[Candidate], key: str | None,
                     state: BalancerState) -> tuple[Candidate, BalancerState]:
    if key is None:
        return _least_connections(pool, eligible, key, state)
    # The ring holds every candidate, eligible or not: skipping an ineligible agent
    # while walking is the same as removing it from the ring, so a cordoned or full
    # agent's keys spill to their ring successors and come back when it has room.
    by_id = {c.agent_id: c for c in eligible}
    ring = hash_ring(tuple(sorted(c.agent_id for c in pool)))
    for agent in ring.walk(key):
        if agent in by_id:
            return by_id[agent], state
    raise AssertionError("eligible candidates are always on the ring")


def _least_latency(pool: Sequence[Candidate], eligible: Sequence[Candidate], key: str | None,
                   state: BalancerState) -> tuple[Candidate, BalancerState]:
    known = [c.ewma_seconds for c in pool if c.ewma_seconds is not None]
    # Optimistic prior: an unsampled agent looks as fast as the best known one, so an
    # idle new agent is tried at once, yet its score still grows with its open sessions
    # (a burst does not all land on it, as a prior of 0 would do).
    prior = min(known) if known else 1.0

    def score(c: Candidate) -> tuple[float, int, int, str]:
        ewma = prior if c.ewma_seconds is None else c.ewma_seconds
        return (ewma * (c.open_sessions + 1), c.open_sessions, *_order(c))

    return min(eligible, key=score), state


STRATEGIES: dict[LoadBalancingStrategy, Strategy] = {
    LoadBalancingStrategy.ROUND_ROBIN: _round_robin,
    LoadBalancingStrategy.LEAST_CONNECTIONS: _least_connections,
    LoadBalancingStrategy.WEIGHTED: _weighted,
    LoadBalancingStrategy.CONSISTENT_HASH: _consistent_hash,
    LoadBalancingStrategy.LEAST_LATENCY: _least_latency,
}
"""The config-language names (``"round-robin"`` … are the enum's values) to their strategies."""


def place(strategy: LoadBalancingStrategy | str, candidates: Sequence[Candidate], *, key: str | None,
          state: BalancerState) -> Placement:
    """Choose exactly one eligible agent for a new session, or say why none can take it.

    Guarantees: a placed agent accepts sessions and has room; ``FULL`` only when
    at least one agent accepts and all of those are at capacity; the result depends
    only on the arguments. Raises ValueError for an unknown strategy name.
    """
    name = LoadBalancingStrategy(strategy)
    choose = STRATEGIES[name]
    pool = sorted(candidates, key=_order)
    weighted = name is LoadBalancingStrategy.WEIGHTED
    accepting = [c for c in pool if c.accepts and (c.weight > 0 or not weighted)]
    eligible = [c for c in accepting if c.open_sessions < c.capacity]
    if not eligible:
        capacities = {c.capacity for c in accepting}
        return Placement(
            Outcome.FULL if accepting else Outcome.NO_AGENTS, state,
            agents=len(accepting),
            capacity=capacities.pop() if len(capacities) == 1 else None,
            total_capacity=sum(c.capacity for c in accepting),
        )
    chosen, new_state = choose(pool, eligible, key, state)
    return Placement(Outcome.PLACED, new_state, agent_id=chosen.agent_id, agents=len(accepting))
