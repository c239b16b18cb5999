"""Session placement: refusals, each strategy's choice and tie-breaking, ±1 evenness, hash-ring movement."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import pytest

from clawctl.config.model import LoadBalancingStrategy
from clawctl.policies.balancing import (
    STRATEGIES,
    BalancerState,
    Candidate,
    Outcome,
    Placement,
    ewma_update,
    hash_ring,
    place,
    weight_for,
)

ALL = [s.value for s in LoadBalancingStrategy]


def agents(n: int, *, pool: str = "p", capacity: int = 10, **kwargs: object) -> list[Candidate]:
    return [Candidate(f"{pool}-{i}", i, capacity=capacity, **kwargs) for i in range(n)]  # type: ignore[arg-type]


def run(strategy: str, candidates: list[Candidate], n: int, *, key: str | None = None) -> list[str]:
    """Place n sessions one after another (open counts do not change)."""
    state, chosen = BalancerState(), []
    for _ in range(n):
        placement = place(strategy, candidates, key=key, state=state)
        assert placement.agent_id is not None
        chosen.append(placement.agent_id)
        state = placement.state
    return chosen


# --- common rules ----------------------------------------------------------------------------


def test_strategies_table_names_the_config_language_strategies() -> None:
    assert sorted(STRATEGIES) == sorted(LoadBalancingStrategy)
    assert sorted(s.value for s in STRATEGIES) == sorted(
        ["round-robin", "least-connections", "weighted", "consistent-hash", "least-latency"])


def test_unknown_strategy_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        place("random", agents(2), key=None, state=BalancerState())


@pytest.mark.parametrize("strategy", ALL)
@pytest.mark.parametrize(
    ("candidates", "outcome", "n_agents", "capacity"),
    [
        ([], Outcome.NO_AGENTS, 0, None),
        (agents(3, accepts=False), Outcome.NO_AGENTS, 0, None),
        (agents(3, capacity=4, open_sessions=4), Outcome.FULL, 3, 4),
        # a cordoned agent with room does not make a full pool less full
        (agents(2, capacity=4, open_sessions=4) + [Candidate("p-9", 9, capacity=4, accepts=False)],
         Outcome.FULL, 2, 4),
        ([Candidate("p-0", 0, open_sessions=2, capacity=2), Candidate("p-1", 1, open_sessions=5, capacity=5)],
         Outcome.FULL, 2, None),
    ],
)
def test_refusals(strategy: str, candidates: list[Candidate], outcome: Outcome, n_agents: int,
                  capacity: int | None) -> None:
    state = BalancerState(rr_last_slot=1)
    placement = place(strategy, candidates, key="k", state=state)
    assert placement.outcome is outcome and not placement.placed
    assert placement.agent_id is None
    assert placement.agents == n_agents and placement.capacity == capacity
    assert placement.state == state


@pytest.mark.parametrize(
    ("placement", "text"),
    [
        (Placement(Outcome.FULL, BalancerState(), agents=3, capacity=10, total_capacity=30),
         "pool support is full: 3 agents × capacity 10 sessions"),
        (Placement(Outcome.FULL, BalancerState(), agents=1, capacity=2, total_capacity=2),
         "pool support is full: 1 agent × capacity 2 sessions"),
        (Placement(Outcome.FULL, BalancerState(), agents=2, capacity=None, total_capacity=7),
         "pool support is full: 2 agents, 7 sessions in all"),
        (Placement(Outcome.NO_AGENTS, BalancerState()), "pool support has no agent accepting sessions"),
        (Placement(Outcome.PLACED, BalancerState(), agent_id="support-1"), "placed on support-1"),
    ],
)
def test_describe(placement: Placement, text: str) -> None:
    assert placement.describe("support") == text


def test_full_pool_numbers_come_from_place() -> None:
    placement = place("least-connections", agents(3, capacity=10, open_sessions=10), key=None, state=BalancerState())
    assert placement.describe("support") == "pool support is full: 3 agents × capacity 10 sessions"
    assert placement.total_capacity == 30


@pytest.mark.parametrize("strategy", ALL)
def test_placed_agent_always_accepts_and_has_room(strategy: str) -> None:
    rng = random.Random(strategy)
    state = BalancerState()
    for trial in range(400):
        candidates = [
            Candidate(f"p-{i}", i, open_sessions=rng.randint(0, 3), capacity=3, weight=rng.randint(0, 3),
                      ewma_seconds=rng.choice([None, rng.uniform(0.01, 2.0)]), accepts=rng.random() < 0.8)
            for i in rng.sample(range(12), rng.randint(0, 8))
        ]
        placement = place(strategy, candidates, key=rng.choice([None, f"k{trial}"]), state=state)
        by_id = {c.agent_id: c for c in candidates}
        usable = [c for c in candidates if c.accepts and c.has_room and (c.weight > 0 or strategy != "weighted")]
        assert placement.placed == bool(usable)
        if placement.placed:
            assert placement.agent_id is not None
            chosen = by_id[placement.agent_id]
            assert chosen.accepts and chosen.has_room
            if strategy == "weighted":
                assert chosen.weight > 0
        state = placement.state


@pytest.mark.parametrize("strategy", ALL)
def test_same_inputs_same_choice_whatever_the_candidate_order(strategy: str) -> None:
    rng = random.Random(7)
    candidates = [Candidate(f"p-{i}", i, open_sessions=rng.randint(0, 5), ewma_seconds=rng.uniform(0.1, 1))
                  for i in range(8)]
    state = BalancerState(rr_last_slot=3)
    first = place(strategy, candidates, key="customer-1", state=state)
    for _ in range(5):
        rng.shuffle(candidates)
        assert place(strategy, candidates, key="customer-1", state=state) == first


# --- round-robin -----------------------------------------------------------------------------


def test_round_robin_rotates_in_slot_order() -> None:
    candidates = agents(11)
    assert run("round-robin", candidates, 13) == [f"p-{i}" for i in range(11)] + ["p-0", "p-1"]


def test_round_robin_skips_full_and_non_accepting_agents() -> None:
    candidates = [Candidate("p-0", 0), Candidate("p-1", 1, open_sessions=10), Candidate("p-2", 2, accepts=False),
                  Candidate("p-3", 3)]
    assert run("round-robin", candidates, 4) == ["p-0", "p-3", "p-0", "p-3"]


def test_round_robin_state_is_explicit_and_survives_membership_changes() -> None:
    state = BalancerState(rr_last_slot=1)
    placement = place("round-robin", agents(4), key=None, state=state)
    assert placement.agent_id == "p-2" and placement.state == BalancerState(rr_last_slot=2)
    assert state == BalancerState(rr_last_slot=1)  # the input is not changed
    # the last chosen agent left: the rotation continues after its slot
    without_2 = [c for c in agents(4) if c.slot != 2]
    assert place("round-robin", without_2, key=None, state=placement.state).agent_id == "p-3"
    # past the highest slot: wrap to the lowest
    assert place("round-robin", agents(3), key=None, state=BalancerState(rr_last_slot=7)).agent_id == "p-0"


# --- least-connections -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("opens", "expected"),
    [
        ({0: 3, 1: 1, 2: 2}, "p-1"),
        ({0: 2, 1: 2, 2: 2}, "p-0"),       # tie: lowest slot
        ({10: 1, 2: 1, 3: 4}, "p-2"),      # slot order, not string order ("p-10" < "p-2")
        ({0: 10, 1: 10, 2: 9}, "p-2"),     # capacity 10: the only one with room
    ],
)
def test_least_connections_choice(opens: dict[int, int], expected: str) -> None:
    candidates = [Candidate(f"p-{slot}", slot, open_sessions=n, capacity=10) for slot, n in opens.items()]
    assert place("least-connections", candidates, key=None, state=BalancerState()).agent_id == expected


def test_least_connections_skips_full_agents_with_fewest_sessions() -> None:
    candidates = [Candidate("p-0", 0, open_sessions=2, capacity=2), Candidate("p-1", 1, open_sessions=5, capacity=8)]
    assert place("least-connections", candidates, key=None, state=BalancerState()).agent_id == "p-1"


class SimPool:
    """Open-session counts of a pool, kept as candidates; only the changed agent is rebuilt."""

    def __init__(self, n_agents: int, capacity: int = 10**9) -> None:
        self.candidates = [Candidate(f"p-{slot}", slot, capacity=capacity) for slot in range(n_agents)]
        self.state = BalancerState()

    @property
    def counts(self) -> list[int]:
        return [c.open_sessions for c in self.candidates]

    def spread(self) -> int:
        counts = self.counts
        return max(counts) - min(counts)

    def adjust(self, slot: int, delta: int) -> None:
        c = self.candidates[slot]
        self.candidates[slot] = replace(c, open_sessions=c.open_sessions + delta)

    def open(self) -> Placement:
        placement = place("least-connections", self.candidates, key=None, state=self.state)
        self.state = placement.state
        if placement.agent_id is not None:
            self.adjust(int(placement.agent_id.split("-")[1]), +1)
        return placement


def test_least_connections_10000_sessions_stay_within_one() -> None:
    pool = SimPool(10)
    for _ in range(10_000):
        assert pool.open().placed
        assert pool.spread() <= 1
    assert sum(pool.counts) == 10_000


@pytest.mark.parametrize("seed", range(8))
def test_least_connections_evenness_with_random_closes(seed: int) -> None:
    """10,000 random opens and closes. Placement never widens the spread; only a close can
    (by one), and the next opens fill the gap first, so spread ≤ 1 + closes since it was last ≤ 1."""
    rng = random.Random(seed)
    pool = SimPool(rng.randint(2, 20))
    sessions: list[int] = []
    slack = 0
    for _ in range(10_000 if seed == 0 else 1_000):
        if sessions and rng.random() < 0.4:
            pool.adjust(sessions.pop(rng.randrange(len(sessions))), -1)
            slack += 1
        else:
            before, least = pool.spread(), min(pool.counts)
            placement = pool.open()
            assert placement.agent_id is not None
            slot = int(placement.agent_id.split("-")[1])
            assert pool.counts[slot] == least + 1  # it went to a least-loaded agent
            sessions.append(slot)
            assert pool.spread() <= max(1, before)
        if pool.spread() <= 1:
            slack = 0
        assert pool.spread() <= 1 + slack
    # with closes stopped, exactly the missing sessions bring every agent within one
    for _ in range(sum(max(pool.counts) - n for n in pool.counts)):
        pool.open()
    assert pool.spread() <= 1


def test_least_connections_fills_a_pool_evenly_to_capacity_then_refuses() -> None:
    pool = SimPool(5, capacity=4)
    for _ in range(5 * 4):
        assert pool.open().placed
    assert pool.counts == [4] * 5
    full = pool.open()
    assert full.outcome is Outcome.FULL and full.describe("w") == "pool w is full: 5 agents × capacity 4 sessions"


# --- weighted ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "slot", "expected"),
    [((), 0, 1), ((3, 0, 2), 0, 3), ((3, 0, 2), 1, 0), ((3, 0, 2), 2, 2), ((3, 0, 2), 3, 1), ((5,), -1, 1)],
)
def test_weight_for(weights: tuple[int, ...], slot: int, expected: int) -> None:
    assert weight_for(weights, slot) == expected


def test_weighted_is_smooth_like_nginx() -> None:
    candidates = [Candidate("a", 0, weight=5), Candidate("b", 1, weight=1), Candidate("c", 2, weight=1)]
    assert run("weighted", candidates, 7) == ["a", "a", "b", "a", "c", "a", "a"]


def test_weighted_shares_are_exact_per_cycle_and_weight_zero_never_chosen() -> None:
    weights = (3, 0, 2, 1)
    candidates = [Candidate(f"p-{i}", i, weight=weight_for(weights, i)) for i in range(5)]
    total = 3 + 0 + 2 + 1 + 1
    tally = Counter(run("weighted", candidates, total * 100))
    assert tally == Counter({"p-0": 300, "p-2": 200, "p-3": 100, "p-4": 100})


def test_weighted_skips_full_agents_and_all_zero_weights_is_no_agents() -> None:
    candidates = [Candidate("p-0", 0, weight=5, open_sessions=10), Candidate("p-1", 1, weight=1)]
    assert set(run("weighted", candidates, 5)) == {"p-1"}
    zero = place("weighted", agents(3, weight=0), key=None, state=BalancerState())
    assert zero.outcome is Outcome.NO_AGENTS
    # other strategies ignore weights
    assert place("round-robin", agents(3, weight=0), key=None, state=BalancerState()).agent_id == "p-0"


def test_weighted_forgets_agents_that_left() -> None:
    state = BalancerState(wrr_current=(("gone", 7), ("p-0", 1)))
    placement = place("weighted", agents(2), key=None, state=state)
    assert dict(placement.state.wrr_current).keys() == {"p-0", "p-1"}


# --- consistent-hash -------------------------------------------------------------------------


def owners(candidates: list[Candidate], keys: list[str]) -> dict[str, str]:
    result = {}
    for key in keys:
        placement = place("consistent-hash", candidates, key=key, state=BalancerState())
        assert placement.agent_id is not None
        result[key] = placement.agent_id
    return result


KEYS = [f"customer-{i}" for i in range(10_000)]


@pytest.fixture(scope="module")
def ten_agents_owners() -> dict[str, str]:
    """Where each of KEYS lands on a ring of 10 agents (computed once for the movement tests)."""
    return owners(agents(10), KEYS)


def test_ring_uses_a_stable_hash() -> None:
    """Pinned owners: the ring must not depend on Python's per-process hash() seed."""
    ring = hash_ring(("support-0", "support-1", "support-2"))
    assert [ring.owner(k) for k in ("customer-42", "customer-7", "x")] == ["support-0", "support-2", "support-1"]


def test_consistent_hash_is_sticky_whatever_the_load() -> None:
    rng = random.Random(3)
    base = owners(agents(6), KEYS[:200])
    loaded = [Candidate(f"p-{i}", i, open_sessions=rng.randint(0, 9)) for i in range(6)]
    assert owners(loaded, KEYS[:200]) == base


def test_consistent_hash_spreads_keys_evenly(ten_agents_owners: dict[str, str]) -> None:
    tally = Counter(ten_agents_owners.values())
    assert len(tally) == 10
    assert all(600 <= n <= 1400 for n in tally.values()), tally


def test_removing_one_agent_moves_only_its_keys(ten_agents_owners: dict[str, str]) -> None:
    before = ten_agents_owners
    removed = "p-4"
    after = owners([c for c in agents(10) if c.agent_id != removed], KEYS)
    moved = [k for k in KEYS if before[k] != after[k]]
    assert all(before[k] == removed for k in moved)
    assert len(moved) == sum(1 for k in KEYS if before[k] == removed)
    assert 0.06 <= len(moved) / len(KEYS) <= 0.14


def test_adding_one_agent_moves_only_keys_to_it(ten_agents_owners: dict[str, str]) -> None:
    before = ten_agents_owners
    after = owners(agents(11), KEYS)
    moved = [k for k in KEYS if before[k] != after[k]]
    assert all(after[k] == "p-10" for k in moved)
    assert 0.05 <= len(moved) / len(KEYS) <= 0.14


def test_cordoning_an_agent_moves_exactly_what_removing_it_would() -> None:
    cordoned = [Candidate(c.agent_id, c.slot, accepts=c.slot != 4) for c in agents(10)]
    removed = [c for c in agents(10) if c.slot != 4]
    assert owners(cordoned, KEYS[:2000]) == owners(removed, KEYS[:2000])


def test_full_home_agent_spills_to_the_next_on_the_ring_and_comes_back() -> None:
    ring = hash_ring(tuple(c.agent_id for c in agents(5)))
    for key in KEYS[:50]:
        home, successor, third = list(ring.walk(key))[:3]
        full_home = [Candidate(c.agent_id, c.slot, open_sessions=10 if c.agent_id == home else 0)
                     for c in agents(5)]
        assert place("consistent-hash", full_home, key=key, state=BalancerState()).agent_id == successor
        both_full = [Candidate(c.agent_id, c.slot, open_sessions=10 if c.agent_id in (home, successor) else 0)
                     for c in agents(5)]
        assert place("consistent-hash", both_full, key=key, state=BalancerState()).agent_id == third
        assert place("consistent-hash", agents(5), key=key, state=BalancerState()).agent_id == home


def test_ring_walk_visits_every_agent_once() -> None:
    ring = hash_ring(("a", "b", "c", "d"))
    assert sorted(ring.walk("k")) == ["a", "b", "c", "d"]
    assert list(hash_ring(()).walk("k")) == [] and hash_ring(()).owner("k") is None


def test_consistent_hash_without_key_is_least_connections() -> None:
    candidates = [Candidate(f"p-{i}", i, open_sessions=n) for i, n in enumerate([4, 2, 2, 3])]
    assert place("consistent-hash", candidates, key=None, state=BalancerState()).agent_id == "p-1"


# --- least-latency ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pool", "expected"),
    [
        # (open sessions, ewma seconds) per slot
        ([(0, 1.0), (0, 0.2)], "p-1"),            # faster wins when idle
        ([(0, 1.0), (5, 0.2)], "p-0"),            # 1.0×1 < 0.2×6: load counts
        ([(2, 0.5), (0, 1.5)], "p-1"),            # 1.5×1 = 0.5×3, then fewer open sessions
        ([(1, 0.5), (1, 0.5)], "p-0"),            # full tie: lowest slot
        ([(0, 0.3), (0, None)], "p-0"),           # unsampled = best known 0.3: tie, then slot
        ([(1, 0.3), (0, None)], "p-1"),           # idle unsampled agent is tried (0.3×1 < 0.3×2)
        ([(3, 0.3), (2, None), (2, 5.0)], "p-1"),  # unsampled but loaded: 0.3×3 < 0.3×4
        ([(3, None), (1, None), (2, None)], "p-1"),  # no samples at all: least-connections
    ],
)
def test_least_latency_choice(pool: list[tuple[int, float | None]], expected: str) -> None:
    candidates = [Candidate(f"p-{i}", i, open_sessions=n, ewma_seconds=e) for i, (n, e) in enumerate(pool)]
    assert place("least-latency", candidates, key=None, state=BalancerState()).agent_id == expected


def test_least_latency_sends_more_to_the_faster_agent_but_not_everything() -> None:
    counts = {0: 0, 1: 0}
    ewma = {0: 1.0, 1: 0.25}
    for _ in range(50):
        candidates = [Candidate(f"p-{s}", s, open_sessions=counts[s], capacity=100, ewma_seconds=ewma[s])
                      for s in counts]
        placement = place("least-latency", candidates, key=None, state=BalancerState())
        assert placement.agent_id is not None
        counts[int(placement.agent_id[2:])] += 1
    assert counts == {0: 10, 1: 40}  # queue × service time balanced: 10×1.0 ≈ 40×0.25


@pytest.mark.parametrize(
    ("previous", "sample", "alpha", "expected"),
    [
        (None, 0.5, 0.3, 0.5),
        (1.0, 0.0, 0.3, 0.7),
        (1.0, 2.0, 0.5, 1.5),
        (1.0, 3.0, 1.0, 3.0),
        (1.0, -0.2, 0.5, 0.5),   # a negative sample counts as 0
    ],
)
def test_ewma_update(previous: float | None, sample: float, alpha: float, expected: float) -> None:
    assert ewma_update(previous, sample, alpha) == pytest.approx(expected)


def test_ewma_converges_to_a_steady_sample() -> None:
    value: float | None = None
    for _ in range(60):
        value = ewma_update(value if value is not None else 5.0, 0.1, 0.3)
    assert value == pytest.approx(0.1, abs=1e-6)


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5])
def test_ewma_rejects_alpha_outside_0_1(alpha: float) -> None:
    with pytest.raises(ValueError):
        ewma_update(1.0, 1.0, alpha)
