"""Session lifecycle decisions: expiry, how a session closes, what happens to its
state, eager pre-opening and pruning of closed sessions.

Pure functions of a session's timestamps, the pool's ``sessions`` policy and
``now``; nothing here reads a clock or touches the registry. The daemon's
scheduler calls ``due_sessions(open_ones, policy, now)``, acts on each entry,
then sleeps until ``next_expiry(...)``.

States: ``Open`` → ``Closing`` (graceful cleanup: the agent got a closing
event and has until ``close_deadline`` to save state) → ``Closed``.
``Orphaned`` is an open session whose agent died under ``retention:
persistent`` + ``recovery: manual``: its state is kept and it waits for the
operator. Only ``Closed`` sessions are ever pruned.

Expiry (``expired``): an ``Open`` session ends at the earlier of
``last_interaction_at + idleTimeout`` and ``opened_at + maxLifetime``; an
``Orphaned`` one only at ``opened_at + maxLifetime`` (the
boundary instant counts as expired, so sleeping until ``next_expiry`` always
finds something due). ``last_interaction_at`` moves only on a real message or
reply, never on state writes, heartbeats or moves. A ``Closing`` session whose
grace period ran out is due too (``GRACE_EXPIRED``). A limit of None or ≤ 0 is off.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from clawctl.config.model import Sessions


class SessionState(str, Enum):
    OPEN = "Open"
    CLOSING = "Closing"      # closing event sent; waiting for the agent or the grace deadline
    CLOSED = "Closed"
    ORPHANED = "Orphaned"    # owner died; persistent + manual recovery: waits for the operator


ACTIVE = frozenset({SessionState.OPEN, SessionState.CLOSING, SessionState.ORPHANED})
"""States that are never pruned."""


class CloseReason(str, Enum):
    IDLE_TIMEOUT = "idle-timeout"
    MAX_LIFETIME = "max-lifetime"
    GRACE_EXPIRED = "grace-expired"    # a Closing session the agent did not finish in time
    REQUESTED = "requested"            # `clawctl sessions close`, or the agent closed it
    AGENT_LOST = "agent-lost"          # ephemeral session whose agent died


@dataclass(frozen=True)
class SessionTimes:
    """What lifecycle decisions need to know about one session (times in seconds, one clock)."""

    session_id: str
    state: SessionState
    opened_at: float
    last_interaction_at: float | None = None
    """Last message to or reply from the agent; None means none yet (counts from ``opened_at``)."""
    close_deadline: float | None = None
    """Closing only: when the grace period ends."""
    closed_at: float | None = None
    """Closed only."""


@dataclass(frozen=True)
class Due:
    session_id: str
    reason: CloseReason
    at: float
    """The deadline that passed."""


def _limit(value: float | None) -> float | None:
    return value if value is not None and value > 0 else None


def deadline(session: SessionTimes, policy: Sessions) -> tuple[float, CloseReason] | None:
    """When and why ``session`` is next due, or None if nothing will end it by time alone."""
    if session.state is SessionState.CLOSING:
        if session.close_deadline is None:
            return None
        return session.close_deadline, CloseReason.GRACE_EXPIRED
    if session.state is SessionState.CLOSED:
        return None
    found: list[tuple[float, CloseReason]] = []
    lifetime = _limit(policy.max_lifetime)
    if lifetime is not None:
        found.append((session.opened_at + lifetime, CloseReason.MAX_LIFETIME))
    idle = _limit(policy.idle_timeout)
    # An orphan cannot be talked to, so idleness says nothing about it; only its lifetime ends it.
    if idle is not None and session.state is SessionState.OPEN:
        last = session.opened_at if session.last_interaction_at is None else session.last_interaction_at
        found.append((last + idle, CloseReason.IDLE_TIMEOUT))
    # The earlier deadline names the reason; on a tie max-lifetime wins (listed first, min is stable).
    return min(found, key=lambda d: d[0]) if found else None


def expired(session: SessionTimes, policy: Sessions, now: float) -> CloseReason | None:
    """Why ``session`` must end (or finish closing) at ``now``, or None if it may go on."""
    due = deadline(session, policy)
    return due[1] if due is not None and now >= due[0] else None


def due_sessions(sessions: Iterable[SessionTimes], policy: Sessions, now: float) -> tuple[Due, ...]:
    """Every session due at ``now``, oldest deadline first (ties by id)."""
    found = []
    for s in sessions:
        d = deadline(s, policy)
        if d is not None and now >= d[0]:
            found.append(Due(s.session_id, d[1], d[0]))
    return tuple(sorted(found, key=lambda d: (d.at, d.session_id)))


def next_expiry(sessions: Iterable[SessionTimes], policy: Sessions) -> float | None:
    """The earliest deadline among ``sessions`` (possibly already past), or None: sleep until then."""
    times = [d[0] for d in (deadline(s, policy) for s in sessions) if d is not None]
    return min(times) if times else None


@dataclass(frozen=True)
class CloseStep:
    """How to carry out a close decided at some ``now``."""

    next_state: SessionState
    notify_agent: bool
    """Send the agent a closing event (graceful cleanup)."""
    close_deadline: float | None
    """Closing only: force-close at this time if the agent has not finished."""


def begin_close(policy: Sessions, *, grace_period: float, agent_alive: bool, now: float) -> CloseStep:
    """Start closing a session: graceful (closing event, ``grace_period`` to save state) or immediate.

    Graceful needs someone to tell: with the agent gone (or a grace of 0) it closes at once.
    ``grace_period`` is the pool's ``drain.gracePeriod``.
    """
    if policy.cleanup == "graceful" and agent_alive and grace_period > 0:
        return CloseStep(SessionState.CLOSING, notify_agent=True, close_deadline=now + grace_period)
    return CloseStep(SessionState.CLOSED, notify_agent=False, close_deadline=None)


class SessionEvent(str, Enum):
    CLOSED = "closed"                # the session ended (any CloseReason but agent-lost)
    AGENT_DIED = "agent-died"        # its agent crashed, was killed for a quota or as hung
    AGENT_DRAINED = "agent-drained"  # its agent is being drained or replaced on purpose


class StateAction(str, Enum):
    MOVE_WITH_STATE = "move-with-state"      # re-place on another agent; state and history go along
    HOLD_WITH_STATE = "hold-with-state"      # becomes Orphaned, state kept, operator re-places it
    CLOSE_KEEP_STATE = "close-keep-state"    # Closed; state and history kept until pruned
    CLOSE_DROP_STATE = "close-drop-state"    # Closed; state and history deleted, the record kept


def state_action(policy: Sessions, event: SessionEvent, *, hot_standby: bool = False) -> StateAction:
    """What happens to a session and its state on ``event``, from ``retention`` and ``recovery``.

    A drain always moves sessions with their state (the agent is healthy and the
    operator asked for it), and so does a death in a ``hot-standby`` pool (keeping
    sessions through a failure is what its standby is for). Otherwise a death
    moves persistent sessions (``recovery: automatic``) or holds them
    (``manual``); ephemeral ones end with their agent.
    """
    persistent = policy.retention == "persistent"
    if event is SessionEvent.AGENT_DRAINED or (event is SessionEvent.AGENT_DIED and hot_standby):
        return StateAction.MOVE_WITH_STATE
    if event is SessionEvent.AGENT_DIED:
        if not persistent:
            return StateAction.CLOSE_DROP_STATE
        return StateAction.MOVE_WITH_STATE if policy.recovery == "automatic" else StateAction.HOLD_WITH_STATE
    return StateAction.CLOSE_KEEP_STATE if persistent else StateAction.CLOSE_DROP_STATE


EAGER_SESSIONS_PER_AGENT = 1
"""Under ``creation: eager`` each accepting agent keeps this many unclaimed sessions ready."""


def eager_deficit(policy: Sessions, *, capacity: int, open_sessions: int, unclaimed: int) -> int:
    """How many sessions to pre-open now on one accepting agent.

    ``on-demand``: 0. ``eager``: enough to hold ``EAGER_SESSIONS_PER_AGENT``
    unclaimed sessions, never beyond free capacity (unclaimed sessions count as open).
    One per agent warms every agent without reserving a pool's capacity for nobody;
    a new ``sessions open`` claims one and the next pass opens its replacement.
    """
    if policy.creation != "eager":
        return 0
    free = max(0, capacity - open_sessions)
    return min(free, max(0, EAGER_SESSIONS_PER_AGENT - unclaimed))


def prune(closed_sessions: Sequence[SessionTimes], *, max_age: float | None, max_count: int | None,
          now: float) -> tuple[str, ...]:
    """Ids of closed sessions to delete, oldest first; active sessions are never returned.

    Deletes those closed more than ``max_age`` seconds ago, then the oldest beyond
    the newest ``max_count``. None turns a rule off. A Closed session without
    ``closed_at`` counts as closed ``now`` (never deleted early for a missing time).
    """
    closed = sorted(
        (s for s in closed_sessions if s.state is SessionState.CLOSED),
        key=lambda s: (now if s.closed_at is None else s.closed_at, s.session_id),
    )
    doomed: list[str] = []
    kept: list[SessionTimes] = []
    for s in closed:
        at = now if s.closed_at is None else s.closed_at
        if max_age is not None and now - at > max_age:
            doomed.append(s.session_id)
        else:
            kept.append(s)
    if max_count is not None and len(kept) > max_count:
        doomed += [s.session_id for s in kept[: len(kept) - max(0, max_count)]]
    return tuple(doomed)
