"""Session lifecycle: expiry from real interactions, scheduler wake-ups, close steps, retention, eager, pruning."""

from __future__ import annotations

import random

import pytest

from clawctl.config.model import Sessions
from clawctl.policies.session_lifecycle import (
    ACTIVE,
    EAGER_SESSIONS_PER_AGENT,
    CloseReason,
    CloseStep,
    Due,
    SessionEvent,
    SessionState,
    SessionTimes,
    StateAction,
    begin_close,
    deadline,
    due_sessions,
    eager_deficit,
    expired,
    next_expiry,
    prune,
    state_action,
)

POLICY = Sessions(idle_timeout=60.0, max_lifetime=600.0)


def open_session(sid: str = "s1", *, opened: float = 0.0, last: float | None = None,
                 state: SessionState = SessionState.OPEN) -> SessionTimes:
    return SessionTimes(sid, state, opened_at=opened, last_interaction_at=last)


# --- expiry --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("session", "policy", "now", "reason"),
    [
        (open_session(), POLICY, 59.9, None),
        (open_session(), POLICY, 60.0, CloseReason.IDLE_TIMEOUT),            # boundary counts
        (open_session(last=50.0), POLICY, 100.0, None),                      # idle from the last interaction
        (open_session(last=50.0), POLICY, 110.0, CloseReason.IDLE_TIMEOUT),
        (open_session(last=590.0), POLICY, 600.0, CloseReason.MAX_LIFETIME),  # busy, but too old
        (open_session(last=540.0), POLICY, 600.0, CloseReason.MAX_LIFETIME),  # both due at 600: lifetime
        (open_session(last=530.0), POLICY, 600.0, CloseReason.IDLE_TIMEOUT),  # idle since 590 < 600
        (open_session(), Sessions(idle_timeout=None, max_lifetime=600.0), 599.0, None),
        (open_session(), Sessions(idle_timeout=0.0, max_lifetime=None), 10**9, None),  # both off
        (open_session(), Sessions(idle_timeout=None, max_lifetime=600.0), 600.0, CloseReason.MAX_LIFETIME),
        (open_session(state=SessionState.CLOSED), POLICY, 10**9, None),
        # an orphan cannot be talked to: only its lifetime ends it
        (open_session(state=SessionState.ORPHANED), POLICY, 599.0, None),
        (open_session(state=SessionState.ORPHANED), POLICY, 600.0, CloseReason.MAX_LIFETIME),
    ],
)
def test_expired(session: SessionTimes, policy: Sessions, now: float, reason: CloseReason | None) -> None:
    assert expired(session, policy, now) is reason


@pytest.mark.parametrize(
    ("close_deadline", "now", "reason"),
    [(130.0, 129.0, None), (130.0, 130.0, CloseReason.GRACE_EXPIRED), (None, 10**9, None)],
)
def test_closing_session_is_due_when_its_grace_runs_out(close_deadline: float | None, now: float,
                                                        reason: CloseReason | None) -> None:
    closing = SessionTimes("s1", SessionState.CLOSING, opened_at=0.0, last_interaction_at=0.0,
                           close_deadline=close_deadline)
    # idle and lifetime no longer apply once closing has begun
    assert expired(closing, POLICY, now) is reason


def test_bookkeeping_does_not_keep_a_session_alive() -> None:
    """Only ``last_interaction_at`` counts: a session opened at 0, talked to at 30, whose state
    the agent rewrote at 80 (not an interaction), is idle since 30."""
    session = open_session(last=30.0)
    assert deadline(session, POLICY) == (90.0, CloseReason.IDLE_TIMEOUT)
    assert expired(session, POLICY, 90.0) is CloseReason.IDLE_TIMEOUT


def test_due_sessions_in_deadline_order_with_reasons() -> None:
    sessions = [
        open_session("b", last=10.0),                 # idle at 70
        open_session("a", last=10.0),                 # idle at 70 (tie: by id)
        open_session("c", opened=-550.0, last=40.0),  # lifetime at 50
        open_session("d", last=90.0),                 # idle at 150: not due
        open_session("e", state=SessionState.CLOSED),
        SessionTimes("f", SessionState.CLOSING, opened_at=0.0, close_deadline=75.0),
    ]
    assert due_sessions(sessions, POLICY, 100.0) == (
        Due("c", CloseReason.MAX_LIFETIME, 50.0),
        Due("a", CloseReason.IDLE_TIMEOUT, 70.0),
        Due("b", CloseReason.IDLE_TIMEOUT, 70.0),
        Due("f", CloseReason.GRACE_EXPIRED, 75.0),
    )
    assert due_sessions(sessions, POLICY, 49.0) == ()


@pytest.mark.parametrize(
    ("sessions", "policy", "expected"),
    [
        ([], POLICY, None),
        ([open_session(state=SessionState.CLOSED)], POLICY, None),
        ([open_session()], Sessions(idle_timeout=None, max_lifetime=None), None),
        ([open_session(last=100.0), open_session("s2", last=20.0)], POLICY, 80.0),
        ([open_session(last=100.0), SessionTimes("s2", SessionState.CLOSING, 0.0, close_deadline=120.0)],
         POLICY, 120.0),
    ],
)
def test_next_expiry(sessions: list[SessionTimes], policy: Sessions, expected: float | None) -> None:
    assert next_expiry(sessions, policy) == expected


def test_sleeping_until_next_expiry_always_finds_work_and_never_misses_any() -> None:
    rng = random.Random(5)
    states = [SessionState.OPEN, SessionState.OPEN, SessionState.CLOSING, SessionState.CLOSED, SessionState.ORPHANED]
    for _ in range(300):
        policy = Sessions(idle_timeout=rng.choice([None, 30.0, 60.0]), max_lifetime=rng.choice([None, 100.0]))
        sessions = []
        for i in range(rng.randint(0, 12)):
            opened = rng.uniform(0, 100)
            sessions.append(SessionTimes(
                f"s{i}", rng.choice(states), opened_at=opened,
                last_interaction_at=rng.choice([None, opened + rng.uniform(0, 50)]),
                close_deadline=rng.choice([None, rng.uniform(0, 200)]),
            ))
        wake = next_expiry(sessions, policy)
        if wake is None:
            assert due_sessions(sessions, policy, 10**9) == ()
            continue
        due = due_sessions(sessions, policy, wake)
        assert due and min(d.at for d in due) == wake
        assert due_sessions(sessions, policy, wake - 1e-6) == ()
        assert all(expired(s, policy, wake) is None for s in sessions if s.session_id not in {d.session_id for d in due})


# --- closing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cleanup", "grace", "alive", "step"),
    [
        ("graceful", 30.0, True, CloseStep(SessionState.CLOSING, notify_agent=True, close_deadline=130.0)),
        ("graceful", 30.0, False, CloseStep(SessionState.CLOSED, notify_agent=False, close_deadline=None)),
        ("graceful", 0.0, True, CloseStep(SessionState.CLOSED, notify_agent=False, close_deadline=None)),
        ("immediate", 30.0, True, CloseStep(SessionState.CLOSED, notify_agent=False, close_deadline=None)),
    ],
)
def test_begin_close(cleanup: str, grace: float, alive: bool, step: CloseStep) -> None:
    assert begin_close(Sessions(cleanup=cleanup), grace_period=grace, agent_alive=alive, now=100.0) == step


def test_a_graceful_close_becomes_due_at_its_deadline() -> None:
    step = begin_close(Sessions(cleanup="graceful"), grace_period=30.0, agent_alive=True, now=100.0)
    closing = SessionTimes("s1", step.next_state, opened_at=0.0, close_deadline=step.close_deadline)
    assert next_expiry([closing], POLICY) == 130.0
    assert due_sessions([closing], POLICY, 130.0) == (Due("s1", CloseReason.GRACE_EXPIRED, 130.0),)


@pytest.mark.parametrize(
    ("retention", "recovery", "event", "action"),
    [
        ("persistent", "automatic", SessionEvent.CLOSED, StateAction.CLOSE_KEEP_STATE),
        ("persistent", "manual", SessionEvent.CLOSED, StateAction.CLOSE_KEEP_STATE),
        ("ephemeral", "automatic", SessionEvent.CLOSED, StateAction.CLOSE_DROP_STATE),
        ("ephemeral", "manual", SessionEvent.CLOSED, StateAction.CLOSE_DROP_STATE),
        ("persistent", "automatic", SessionEvent.AGENT_DIED, StateAction.MOVE_WITH_STATE),
        ("persistent", "manual", SessionEvent.AGENT_DIED, StateAction.HOLD_WITH_STATE),
        ("ephemeral", "automatic", SessionEvent.AGENT_DIED, StateAction.CLOSE_DROP_STATE),
        ("ephemeral", "manual", SessionEvent.AGENT_DIED, StateAction.CLOSE_DROP_STATE),
        ("persistent", "automatic", SessionEvent.AGENT_DRAINED, StateAction.MOVE_WITH_STATE),
        ("persistent", "manual", SessionEvent.AGENT_DRAINED, StateAction.MOVE_WITH_STATE),
        ("ephemeral", "automatic", SessionEvent.AGENT_DRAINED, StateAction.MOVE_WITH_STATE),
        ("ephemeral", "manual", SessionEvent.AGENT_DRAINED, StateAction.MOVE_WITH_STATE),
    ],
)
def test_state_action(retention: str, recovery: str, event: SessionEvent, action: StateAction) -> None:
    assert state_action(Sessions(retention=retention, recovery=recovery), event) is action


# --- eager creation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("creation", "capacity", "open_sessions", "unclaimed", "expected"),
    [
        ("on-demand", 10, 0, 0, 0),
        ("eager", 10, 0, 0, 1),
        ("eager", 10, 3, 0, 1),      # claimed sessions do not count: keep one ready
        ("eager", 10, 1, 1, 0),      # already has its ready session
        ("eager", 10, 10, 0, 0),     # no room
        ("eager", 1, 0, 0, 1),
    ],
)
def test_eager_deficit(creation: str, capacity: int, open_sessions: int, unclaimed: int, expected: int) -> None:
    assert EAGER_SESSIONS_PER_AGENT == 1
    got = eager_deficit(Sessions(creation=creation), capacity=capacity, open_sessions=open_sessions,
                        unclaimed=unclaimed)
    assert got == expected


# --- pruning -------------------------------------------------------------------------------


def closed(sid: str, at: float | None) -> SessionTimes:
    return SessionTimes(sid, SessionState.CLOSED, opened_at=0.0, closed_at=at)


CLOSED = [closed("c1", 100.0), closed("c2", 400.0), closed("c3", 200.0), closed("c4", 900.0), closed("c5", 950.0)]


@pytest.mark.parametrize(
    ("max_age", "max_count", "expected"),
    [
        (None, None, ()),
        (500.0, None, ("c1", "c3", "c2")),        # closed more than 500 s before now (1000)
        (800.0, None, ("c1",)),
        (None, 3, ("c1", "c3")),                  # keep the newest three
        (None, 0, ("c1", "c3", "c2", "c4", "c5")),
        (700.0, 2, ("c1", "c3", "c2")),           # age first, then count among the rest
        (10_000.0, 10, ()),
    ],
)
def test_prune(max_age: float | None, max_count: int | None, expected: tuple[str, ...]) -> None:
    assert prune(CLOSED, max_age=max_age, max_count=max_count, now=1000.0) == expected


def test_prune_never_deletes_active_sessions_and_waits_for_a_missing_close_time() -> None:
    sessions = [
        SessionTimes("open", SessionState.OPEN, opened_at=0.0),
        SessionTimes("closing", SessionState.CLOSING, opened_at=0.0, close_deadline=1.0),
        SessionTimes("orphan", SessionState.ORPHANED, opened_at=0.0),
        closed("old", 1.0),
        closed("no-time", None),
    ]
    assert prune(sessions, max_age=10.0, max_count=0, now=1000.0) == ("old", "no-time")
    assert prune(sessions, max_age=10.0, max_count=None, now=1000.0) == ("old",)


def test_prune_keeps_exactly_the_newest_within_age() -> None:
    rng = random.Random(11)
    for _ in range(200):
        sessions = [
            SessionTimes(f"s{i}", rng.choice(list(SessionState)), opened_at=0.0, closed_at=rng.uniform(0, 1000))
            for i in range(rng.randint(0, 30))
        ]
        max_age, max_count = rng.choice([None, 300.0, 800.0]), rng.choice([None, 0, 3, 10])
        doomed = set(prune(sessions, max_age=max_age, max_count=max_count, now=1000.0))
        kept = [s for s in sessions if s.state is SessionState.CLOSED and s.session_id not in doomed]
        assert not any(s.state in ACTIVE for s in sessions if s.session_id in doomed)
        assert all(max_age is None or 1000.0 - (s.closed_at or 0) <= max_age for s in kept)
        if max_count is not None:
            assert len(kept) <= max_count
            gone = [s for s in sessions if s.session_id in doomed]
            # nothing deleted for count is newer than anything kept
            assert all((g.closed_at or 0) <= (k.closed_at or 0) for g in gone for k in kept)
