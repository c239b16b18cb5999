"""Sessions through the daemon: placement, messages and replies, state, closing, expiry, recovery.

Decisions are the pure functions of ``policies.balancing``, ``policies.session_lifecycle``
and ``policies.access``; rows live in ``registry.sessions``. This module wires them:
it runs on the control server's event loop, does every registry operation on the
``Database`` thread (where the balancers' rotation memory also lives, so two
concurrent opens never see the same rotation), and pushes events to agents.

Recovery is level-triggered: sessions whose agent process ended are handled at
once when the reconciler publishes a snapshot without it, and again by a periodic
sweep that finds active sessions on agents with no live process (a daemon restart,
a missed snapshot).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clawctl.config.model import CommunicationPolicy, Sessions
from clawctl.daemon.control.caller import Caller, PolicyBook, resolve_fleet
from clawctl.daemon.control.db import Database
from clawctl.daemon.control.directory import AgentView, Directory, PoolView
from clawctl.errors import ClawctlError, Conflict, NotFound, PolicyDenied, ProtocolError, UsageError
from clawctl.policies import session_lifecycle as lifecycle
from clawctl.policies.access import SessionAction, may_message, session_access
from clawctl.policies.balancing import BalancerState, Candidate, ewma_update, place, weight_for
from clawctl.policies.session_lifecycle import CloseReason, SessionEvent, SessionState, StateAction
from clawctl.protocol.auth import ProcessStamp
from clawctl.protocol.messages import Event
from clawctl.registry import audit
from clawctl.registry import sessions as store
from clawctl.registry.records import HistoryRole, SessionFilter, SessionRow
from clawctl.registry.tables import sessions as sessions_table

log = logging.getLogger("clawctl.daemon.sessions")

DEFAULT_SEND_TIMEOUT = 60.0
"""Seconds ``sessions.send`` waits for the agent's reply unless the caller says otherwise."""
TICK_SECONDS = 0.5
"""How often expiry, eager creation and recovery run."""
SWEEP_EVERY = 10
"""Every this many ticks, look for active sessions on agents without a live process."""
PRUNE_INTERVAL = 60.0
CLOSED_KEEP_SECONDS = 7 * 86400.0
"""Closed sessions are kept for inspection this long…"""
CLOSED_KEEP_COUNT = 100_000
"""…and at most this many of them (the newest)."""
DEFAULT_HISTORY = 100
ACTIVE_STATES = (SessionState.OPEN, SessionState.CLOSING)


@dataclass
class Pending:
    """A message waiting for its reply; re-delivered when its session moves or its agent restarts."""

    message_id: str
    session_id: str
    agent_key: str
    message: Any
    future: asyncio.Future[tuple[str, bool, Any]]
    delivered_to: ProcessStamp | None = None
    sent_at: float = field(default_factory=time.monotonic)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value is not None else None


def _plain_id(agent_key: str | None) -> str | None:
    return agent_key.split("/", 1)[-1] if agent_key else None


def _parse_state(text: str) -> SessionState:
    for state in SessionState:
        if state.value.lower() == text.lower():
            return state
    raise UsageError(f"unknown session state {text!r}",
                     hint=f"use one of {', '.join(s.value for s in SessionState)}")


class SessionService:
    """Handles the session methods of the control protocol."""

    def __init__(self, db: Database, directory: Directory, *, clock: Callable[[], float],
                 push: Callable[[str, Event], bool], policies: PolicyBook | None = None) -> None:
        self.db = db
        self.policies = policies or PolicyBook(db)
        self.directory = directory
        self.clock = clock
        self.push = push
        self._pending: dict[str, Pending] = {}
        self._connected: dict[str, int] = {}
        self._processes: dict[str, ProcessStamp] = {}
        self._ewma: dict[str, float] = {}
        self._displaced: set[str] = set()
        self._draining: dict[str, AgentView] = {}
        """Agents being drained (cordoned): their sessions are being handed over to peers."""
        self._drained: set[str] = set()
        self._handoffs: dict[str, str] = {}
        self._handing: set[str] = set()
        self._handover_again = False
        """Draining agents with a handover on the database thread: nothing is delivered to them
        meanwhile (a session might move under it), the handover delivers what waited."""
        """Failed agent key → the standby promoted in its place (kept until its sessions moved)."""
        """Drained agents that ended with sessions left: those move (with state) once a peer exists."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ticker: asyncio.Task[None] | None = None
        # Owned by the Database thread (read and written only inside db.run functions):
        self._balancers: dict[tuple[str, str], BalancerState] = {}
        self._active_pools: set[tuple[int, str]] = set()
        self._occupancy: dict[tuple[int, str], dict[str, int]] = {}
        """Open + Closing sessions per agent, per pool: read from the registry on first use, then
        kept up to date by every change this service makes (it is the only writer), and
        re-read after each sweep so a slip cannot last."""

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self._active_pools = await self.db.run(_pools_with_active_sessions)
        self._ticker = asyncio.get_running_loop().create_task(self._tick_loop())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*([self._ticker] if self._ticker else []), *self._tasks, return_exceptions=True)
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(ClawctlError("the daemon is stopping",
                                                          hint="send the message again once it is back"))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------------- dispatch
    async def handle(self, caller: Caller, method: str, params: Mapping[str, Any]) -> Any:
        """The result of ``method(params)`` for ``caller`` (already checked against the method table)."""
        handler = self._handlers.get(method)
        if handler is None:
            raise ProtocolError(f"method {method!r} is not served by this daemon")
        return await handler(self, caller, params)

    async def _heartbeat(self, caller: Caller, params: Mapping[str, Any]) -> Any:
        assert caller.agent is not None
        self.directory.saw(caller.agent.key, caller.agent.process.pid, self.clock())
        return {"ok": True}

    # ---------------------------------------------------------------- connections
    def on_hello(self, caller: Caller) -> None:
        """An agent process connected: hand it the sessions it owns and the messages waiting for it."""
        assert caller.agent is not None
        key = caller.agent.key
        self._connected[key] = self._connected.get(key, 0) + 1
        # This process now holds the key's sessions (announced below): a snapshot processed after
        # this hello must not take it for lost and drop its connection count.
        self._processes[key] = caller.agent.process
        self._displaced.discard(key)
        for pending in self._pending.values():
            if pending.agent_key == key:
                pending.delivered_to = None  # it may have been lost with the previous connection
        self._spawn(self._announce(caller.agent))

    def on_disconnect(self, caller: Caller) -> None:
        key = caller.key
        if key is None:
            return
        left = self._connected.get(key, 0) - 1
        if left > 0:
            self._connected[key] = left
        else:
            self._connected.pop(key, None)

    async def _announce(self, agent: AgentView) -> None:
        def work(conn: Connection) -> list[tuple[SessionRow, Any]]:
            rows = store.list_sessions(conn, SessionFilter(agent_id=agent.key, states=(SessionState.OPEN,)),
                                       limit=10_000, newest_first=False).rows
            return [(row, store.get_state(conn, row.id).data) for row in rows]

        try:
            owned = await self.db.run(work)
        except ClawctlError as exc:
            log.warning("could not list the sessions of %s: %s", agent.key, exc.message)
            return
        for row, data in owned:
            self._push_opened(agent.key, row, data)
        for pending in list(self._pending.values()):
            if pending.agent_key == agent.key:
                self._deliver(pending)

    # ---------------------------------------------------------------- helpers
    def _now(self) -> datetime:
        return _utc(self.clock())

    def _fleet_names(self) -> dict[int, str]:
        return {fleet_id: name for name, fleet_id in self.directory.snapshot.fleets().items()}

    def _session_json(self, row: SessionRow, names: Mapping[int, str] | None = None) -> dict[str, Any]:
        names = names if names is not None else self._fleet_names()
        return {
            "id": row.id, "fleet": names.get(row.fleet_id, str(row.fleet_id)), "pool": row.pool,
            "agent_id": _plain_id(row.agent_id), "key": row.key, "state": row.state.value,
            "created_at": _iso(row.created_at), "last_activity_at": _iso(row.last_activity_at),
            "closed_at": _iso(row.closed_at), "close_reason": row.close_reason.value if row.close_reason else None,
            "version": row.version, "history_len": row.history_len, "parent_id": row.parent_id,
            "opened_by": _plain_id(row.opened_by) if row.opened_by else None,
        }

    def _resolve_fleet(self, caller: Caller, fleet: str | None) -> str:
        return resolve_fleet(self.directory.snapshot, caller, fleet)

    def _pool(self, fleet: str, pool: str) -> PoolView:
        view = self.directory.snapshot.pool(fleet, pool)
        if view is None:
            raise NotFound(f"pool {pool} does not exist in fleet {fleet}", hint="clawctl status lists the pools")
        return view

    def _accepting(self, view: AgentView) -> bool:
        return view.serving and self._connected.get(view.key, 0) > 0

    def _route(self, pool: PoolView) -> PoolView:
        """Where a new session for ``pool`` goes: the pool itself, or — while it is cordoned or
        Degraded (failover ``degrade``, fewer ready agents than ``minReady``) — its fallbackPool.
        Refused with the reason when there is no fallback."""
        failover = pool.model.policies.failover
        snapshot = self.directory.snapshot
        cordoned = (pool.fleet, pool.model.name) in snapshot.cordoned
        ready = sum(1 for v in snapshot.agents.values()
                    if v.fleet == pool.fleet and v.pool == pool.model.name and self._accepting(v))
        degraded = failover.strategy.value == "degrade" and ready < failover.min_ready
        if not cordoned and not degraded:
            return pool
        why = (f"pool {pool.model.name} is drained (clawctl uncordon pool/{pool.model.name} lifts it)" if cordoned
               else f"pool {pool.model.name} is Degraded: {ready} ready, minReady {failover.min_ready}")
        if failover.fallback_pool:
            fallback = snapshot.pool(pool.fleet, failover.fallback_pool)
            if fallback is not None and (pool.fleet, fallback.model.name) not in snapshot.cordoned:
                return fallback
        raise Conflict(f"{why}, and it has no fallbackPool to take new sessions",
                       hint="wait for its agents to recover (clawctl status), or set failover.fallbackPool")

    def _candidates(self, pool: PoolView, *, exclude: frozenset[str] = frozenset()) -> list[Candidate]:
        """The pool's agents for placement (open session counts filled in on the db thread)."""
        model = pool.model
        out = []
        for view in self.directory.snapshot.agents.values():
            if view.fleet != pool.fleet or view.pool != model.name:
                continue
            out.append(Candidate(view.key, view.slot, 0, model.capacity,
                                 weight_for(model.policies.load_balancing.weights, view.slot),
                                 self._ewma.get(view.key), self._accepting(view) and view.key not in exclude))
        return out

    def _place_on_db(self, conn: Connection, pool: PoolView, candidates: list[Candidate],
                     key: str | None) -> tuple[str | None, str]:
        """Choose an agent (db thread): counts read now, rotation memory updated. (agent key, why not)."""
        counts = self._counts_on_db(conn, pool.fleet_id, pool.model.name)
        filled = [replace(c, open_sessions=counts.get(c.agent_id, 0)) for c in candidates]
        memory_key = (pool.fleet, pool.model.name)
        placement = place(pool.model.policies.load_balancing.strategy, filled, key=key,
                          state=self._balancers.get(memory_key, BalancerState()))
        if not placement.placed:
            return None, placement.describe(pool.model.name)
        self._balancers[memory_key] = placement.state
        self._active_pools.add((pool.fleet_id, pool.model.name))
        return placement.agent_id, ""

    def _counts_on_db(self, conn: Connection, fleet_id: int, pool: str) -> dict[str, int]:
        counts = self._occupancy.get((fleet_id, pool))
        if counts is None:
            counts = self._occupancy[(fleet_id, pool)] = store.count_open_by_agent(conn, fleet_id, pool)
        return counts

    def _occupy(self, fleet_id: int, pool: str, agent_key: str | None, delta: int) -> None:
        """Count a session arriving on (+1) or leaving (-1) ``agent_key`` (db thread)."""
        counts = self._occupancy.get((fleet_id, pool))
        if counts is not None and agent_key is not None:
            counts[agent_key] = max(0, counts.get(agent_key, 0) + delta)

    def _push_opened(self, agent_key: str, row: SessionRow, data: Any) -> bool:
        payload: dict[str, Any] = {"session": row.id, "pool": row.pool, "state": data if isinstance(data, dict) else {}}
        if row.key is not None:
            payload["key"] = row.key
        return self.push(agent_key, Event("session.opened", payload))

    def _deliver(self, pending: Pending) -> None:
        if pending.agent_key in self._handing:
            return
        view = self.directory.snapshot.agents.get(pending.agent_key)
        if view is None or (pending.delivered_to is not None and pending.delivered_to.same_as(view.process)):
            return
        event = Event("session.message", {"session": pending.session_id, "message_id": pending.message_id,
                                          "message": pending.message})
        if self.push(pending.agent_key, event):
            pending.delivered_to = view.process

    async def _policies_of(self, fleet: str, pool: PoolView) -> tuple[CommunicationPolicy, ...]:
        return await self.policies.of(fleet, pool.fleet_id, pool.revision)

    def _audit_entry(self, caller: Caller, action: str, target: str, outcome: str = "allowed",
                     detail: Mapping[str, Any] | None = None) -> audit.AuditEntry:
        return audit.AuditEntry(self._now(), caller.describe, action, target, outcome, detail)

    async def _deny(self, caller: Caller, action: str, target: str, error: PolicyDenied) -> PolicyDenied:
        entry = self._audit_entry(caller, action, target, "denied", {"message": error.message})
        try:
            await self.db.run(lambda conn: audit.record(conn, [entry]))
        except ClawctlError as exc:
            log.warning("could not write the audit log: %s", exc.message)
        return error

    # ---------------------------------------------------------------- open
    async def _open(self, caller: Caller, params: Mapping[str, Any]) -> Any:
        fleet = self._resolve_fleet(caller, params.get("fleet"))
        if caller.agent is not None and fleet != caller.agent.fleet:
            raise await self._deny(caller, "sessions.open", f"{fleet}/{params['pool']}", PolicyDenied(
                f"agent {caller.agent.key} may not open sessions in another fleet"))
        asked = self._pool(fleet, params["pool"])
        key: str | None = params.get("key")
        pool = self._route(asked)
        if caller.agent is not None:
            for target in dict.fromkeys((asked.model.name, pool.model.name)):
                decision = may_message(await self._policies_of(fleet, pool), caller.agent.pool, target)
                if not decision.allowed:
                    text = decision.describe(caller.agent.pool, "open sessions in", target)
                    raise await self._deny(caller, "sessions.open", f"{fleet}/{target}", PolicyDenied(
                        text, hint=f"add a CommunicationPolicy rule from {caller.agent.pool} with "
                                   f"messages: [{target}]"))
        candidates = self._candidates(pool)
        now = self._now()
        eager = pool.model.policies.sessions.creation == "eager"

        parent: str | None = params.get("parent")

        def work(conn: Connection) -> tuple[SessionRow, bool]:
            if parent is not None:
                above = store.get_session(conn, parent)
                if not caller.operator and above.agent_id != caller.key:
                    raise PolicyDenied(f"{caller.describe} does not own session {parent}",
                                       hint="a child session hangs below a session its opener owns")
                if above.state is not SessionState.OPEN:
                    raise Conflict(f"session {parent} is {above.state.value}; it cannot get children")
            if key is not None:
                existing = store.list_sessions(conn, SessionFilter(fleet_id=pool.fleet_id, pool=pool.model.name,
                                                                   states=(SessionState.OPEN,), key=key), limit=1)
                for row in existing.rows:
                    if session_access(SessionAction.TALK, operator=caller.operator, caller=caller.key,
                                      owner=row.agent_id, opened_by=row.opened_by):
                        return row, False  # a key names one conversation: opening it again joins it
            agent_key, why = self._place_on_db(conn, pool, candidates, key)
            if agent_key is None:
                raise Conflict(why, hint="add replicas or capacity, or wait for agents to become ready "
                                         "(clawctl status)")
            claimed = store.claim_unclaimed(conn, agent_key, key=key, opened_by=caller.key) if eager else None
            if claimed is not None:
                row = claimed
            else:
                row = store.create_session(conn, fleet_id=pool.fleet_id, pool=pool.model.name, agent_id=agent_key,
                                           now=now, key=key, opened_by=caller.key, parent_id=parent)
                self._occupy(pool.fleet_id, pool.model.name, agent_key, +1)
                row = replace(row, claimed=True)
            if caller.operator:
                audit.record(conn, [self._audit_entry(caller, "sessions.open", row.id, detail={
                    "fleet": fleet, "pool": pool.model.name, "agent": _plain_id(agent_key), "key": key})])
            return row, True

        row, placed = await self.db.run(work)
        if placed and row.agent_id is not None:
            self._push_opened(row.agent_id, row, {})
        return self._session_json(row)

    # ---------------------------------------------------------------- send / reply
    async def _send(self, caller: Caller, params: Mapping[str, Any]) -> Any:
        session_id: str = params["session"]
        message = params["message"]
        timeout = float(params.get("timeout", DEFAULT_SEND_TIMEOUT))
        now = self._now()

        def work(conn: Connection) -> tuple[str | None, int]:
            return store.record_interaction(conn, session_id, HistoryRole.USER, message, at=now, open_only=True,
                                            opener=caller.key)

        try:
            owner, _ = await self.db.run(work)
        except PolicyDenied as exc:
            raise await self._deny(caller, "sessions.send", session_id, exc)
        assert owner is not None
        loop = asyncio.get_running_loop()
        pending = Pending(uuid.uuid4().hex, session_id, owner, message, loop.create_future())
        self._pending[pending.message_id] = pending
        self._deliver(pending)
        try:
            agent_key, ok, answer = await asyncio.wait_for(asyncio.shield(pending.future), timeout)
        except asyncio.TimeoutError:
            raise ClawctlError(f"agent {_plain_id(pending.agent_key)} did not answer session {session_id} "
                               f"within {timeout:g}s", hint="see its log: clawctl logs agent/"
                                                             f"{_plain_id(pending.agent_key)}") from None
        finally:
            self._pending.pop(pending.message_id, None)
        answered = self._now()
        elapsed = time.monotonic() - pending.sent_at
        fleet_name, _, _ = agent_key.partition("/")
        agent_view = self.directory.snapshot.agents.get(agent_key)
        pool = self.directory.snapshot.pool(fleet_name, agent_view.pool) if agent_view else None
        alpha = pool.model.policies.load_balancing.ewma_alpha if pool else 0.3
        self._ewma[agent_key] = ewma_update(self._ewma.get(agent_key), elapsed, alpha)
        role = HistoryRole.AGENT if ok else HistoryRole.SYSTEM
        content = answer if ok else {"error": answer, "agent": _plain_id(agent_key)}

        def record(conn: Connection) -> None:
            try:
                store.record_interaction(conn, session_id, role, content, at=answered)
            except (Conflict, NotFound):
                pass  # closed meanwhile: the reply still reaches the sender

        # Written behind the answer: submitted now, and the database thread runs jobs in order,
        # so whatever the sender asks next (show, another send) already sees this entry.
        self.db.submit(record).add_done_callback(_log_failure)
        if not ok:
            raise ClawctlError(f"agent {_plain_id(agent_key)} could not handle the message: {answer}",
                               hint=f"see its log: clawctl logs agent/{_plain_id(agent_key)}")
        return {"session": session_id, "message_id": pending.message_id, "agent_id": _plain_id(agent_key),
                "reply": answer}

    async def _reply(self, caller: Caller, params: Mapping[str, Any]) -> Any:
        has_message, has_error = "message" in params, "error" in params
        if has_message == has_error:
            raise ProtocolError("sessions.reply: give exactly one of 'message' and 'error'")
        pending = self._pending.get(params["message_id"])
        if pending is None or pending.session_id != params["session"]:
            raise NotFound(f"no message {params['message_id']} of session {params['session']} is waiting "
                           "for a reply", hint="it may have timed out, or its session moved to another agent")
        if caller.key != pending.agent_key:
            raise await self._deny(caller, "sessions.reply", params["session"], PolicyDenied(
                f"{caller.describe} does not own session {params['session']}",
                hint="an agent may answer only messages of its own sessions"))
        if not pending.future.done():
            pending.future.set_result((caller.key, has_message, params["message"] if has_message else params["error"]))
            if caller.key in self._draining:
                self._spawn(self._handover())  # its last answer may complete its handover
        return {"ok": True}

    # ---------------------------------------------------------------- show / list
    async def _show(self, caller: Caller, params: Mapping[str, Any]) -> Any:
        session_id: str = params["session"]
        limit = int(params.get("history", DEFAULT_HISTORY))

        def work(conn: Connection) -> tuple[SessionRow, Any, tuple[Any, ...], tuple[SessionRow, ...]]:
            row = store.get_session(conn, session_id)
            if not session_access(SessionAction.SEE, operator=caller.operator, caller=caller.key,
                                  owner=row.agent_id, opened_by=row.opened_by):
                raise PolicyDenied(f"{caller.describe} may not see session {session_id}",
                                   hint="an agent may read only the sessions it owns or opened")
            data = store.get_state(conn, session_id).data
            history = store.read_history(conn, session_id, limit=limit) if limit > 0 else ()
            children = store.list_sessions(conn, SessionFilter(parent_id=session_id), limit=1000,
                                           newest_first=False).rows
            return row, data, history, children

        try:
            row, data, history, children = await self.db.run(work)
        except PolicyDenied as exc:
            raise await self._deny(caller, "sessions.show", session_id, exc)
        out = self._session_json(row)
        out["data"] = data if data is not None else {}
        out["history"] = [{"seq": h.seq, "at": _iso(h.at), "role": h.role.value, "content": h.content}
                          for h in history]
        names = self._fleet_names()
        out["children"] = [self._session_json(child, names) for child in children]
        return out

    async def _list(self, caller: Caller, params: Mapping[str, Any]) -> Any:
        states = (_parse_state(params["state"]),) if params.get("state") else ()
        limit = int(params.get("limit", 100))
        if caller.agent is not None:
            filters = SessionFilter(agent_id=caller.agent.key, states=states)
        elif params.get("pool") is not None or params.get("fleet") is not None:
            fleet = self._resolve_fleet(caller, params.get("fleet"))
            fleet_id = self.directory.snapshot.fleets()[fleet]
            pool = params.get("pool")
            filters = SessionFilter(fleet_id=fleet_id, pool=pool, states=states)
        else:
            filters = SessionFilter(states=states)
        if filters.fleet_id is not None and filters.pool is None:
            # The index serves fleet + pool; a whole fleet is every pool's range.
            fleet_id = filters.fleet_id
            pools = [v.model.name for v in self.directory.snapshot.pools.values() if v.fleet_id == fleet_id]

            def work(conn: Connection) -> list[SessionRow]:
                rows: list[SessionRow] = []
                for name in pools:
                    rows += store.list_sessions(conn, replace(filters, pool=name), limit=limit).rows
                rows.sort(key=lambda r: (r.created_at, r.id), reverse=True)
                return rows[:limit]
        else:
            def work(conn: Connection) -> list[SessionRow]:
                return list(store.list_sessions(conn, filters, limit=limit).rows)
        rows = await self.db.run(work)
        names = self._fleet_names()
        return {"sessions": [self._session_json(row, names) for row in rows]}

    # ---------------------------------------------------------------- close
    async def _close(self, caller: Caller, params: Mapping[str, Any]) -> Any:
        session_id: str = params["session"]
        graceful: bool | None = params.get("graceful")
        now_s = self.clock()

        def work(conn: Connection) -> tuple[SessionRow, list[tuple[SessionRow, float | None]]]:
            row = store.get_session(conn, session_id)
            if not session_access(SessionAction.CLOSE, operator=caller.operator, caller=caller.key,
                                  owner=row.agent_id, opened_by=row.opened_by):
                raise PolicyDenied(f"{caller.describe} may not close session {session_id}",
                                   hint="an agent may close only the sessions it owns or opened")
            closed: list[tuple[SessionRow, float | None]] = []
            self._close_on_db(conn, row, CloseReason.REQUESTED, now_s, closed, graceful=graceful,
                              acknowledged=caller.key is not None and caller.key == row.agent_id)
            if caller.operator:
                audit.record(conn, [self._audit_entry(caller, "sessions.close", session_id,
                                                      detail={"graceful": graceful})])
            return store.get_session(conn, session_id), closed

        try:
            row, closed = await self.db.run(work)
        except PolicyDenied as exc:
            raise await self._deny(caller, "sessions.close", session_id, exc)
        for done, deadline in closed:
            self._after_close(done, deadline, now_s)
        return self._session_json(row)

    def _close_on_db(self, conn: Connection, row: SessionRow, reason: CloseReason, now_s: float,
                     closed: list[tuple[SessionRow, float | None]], *, graceful: bool | None = None,
                     acknowledged: bool = False) -> None:
        """Close ``row`` as its pool's policy says, and its open children with it (db thread).
        Appends each (session after it, closing deadline or None) to ``closed`` for
        ``_after_close``: a deadline means its agent must be told to save its state."""
        deadline = self._close_one_on_db(conn, row, reason, now_s, graceful=graceful, acknowledged=acknowledged)
        closed.append((store.get_session(conn, row.id), deadline))
        children = store.list_sessions(conn, SessionFilter(parent_id=row.id, states=(SessionState.OPEN,)),
                                       limit=10_000, newest_first=False).rows
        for child in children:
            self._close_on_db(conn, child, CloseReason.REQUESTED, now_s, closed, graceful=graceful)

    def _close_one_on_db(self, conn: Connection, row: SessionRow, reason: CloseReason, now_s: float, *,
                         graceful: bool | None = None, acknowledged: bool = False) -> float | None:
        if row.state is SessionState.CLOSED:
            return None
        pool = self.directory.snapshot.pool(self._fleet_names().get(row.fleet_id, ""), row.pool)
        policy = pool.model.policies.sessions if pool else Sessions()
        grace = pool.model.policies.drain.grace_period if pool else 0.0
        drop = lifecycle.state_action(policy, SessionEvent.CLOSED) is StateAction.CLOSE_DROP_STATE
        now = _utc(now_s)
        if row.state is SessionState.CLOSING:
            if acknowledged or graceful is False or reason is CloseReason.GRACE_EXPIRED:
                store.close(conn, row.id, reason=row.close_reason or reason, at=now, drop_state=drop)
                self._occupy(row.fleet_id, row.pool, row.agent_id, -1)
            return None
        if graceful is not None:
            policy = replace(policy, cleanup="graceful" if graceful else "immediate")
        alive = row.agent_id is not None and self._connected.get(row.agent_id, 0) > 0
        if row.state is SessionState.ORPHANED:
            alive = False
        step = lifecycle.begin_close(policy, grace_period=grace, agent_alive=alive, now=now_s)
        if step.notify_agent and step.close_deadline is not None and not acknowledged:
            store.begin_close(conn, row.id, reason=reason, deadline=_utc(step.close_deadline))
            return step.close_deadline
        store.close(conn, row.id, reason=reason, at=now, drop_state=drop)
        if row.state is SessionState.OPEN:
            self._occupy(row.fleet_id, row.pool, row.agent_id, -1)
        return None

    def _after_close(self, row: SessionRow, deadline: float | None, now_s: float) -> None:
        if deadline is not None and row.agent_id is not None:
            self.push(row.agent_id, Event("session.closing", {
                "session": row.id, "reason": row.close_reason.value if row.close_reason else "requested",
                "deadline": max(0.0, deadline - now_s)}))
        if row.state is SessionState.CLOSED:
            for pending in list(self._pending.values()):
                if pending.session_id == row.id and not pending.future.done():
                    pending.future.set_exception(Conflict(f"session {row.id} was closed before the agent answered"))

    # ---------------------------------------------------------------- state
    async def _state_get(self, caller: Caller, params: Mapping[str, Any]) -> Any:
        session_id: str = params["session"]
        try:
            data = await self.db.run(lambda conn: store.get_state(conn, session_id, owner=caller.key))
        except PolicyDenied as exc:
            raise await self._deny(caller, "session.state.get", session_id, exc)
        return {"session": session_id, "data": data.data if data.data is not None else {}, "version": data.version}

    async def _state_set(self, caller: Caller, params: Mapping[str, Any]) -> Any:
        session_id: str = params["session"]
        state = params["state"]

        def work(conn: Connection) -> int:
            current = store.get_state(conn, session_id, owner=caller.key)
            return store.set_state(conn, session_id, state, expected_version=current.version, owner=caller.key)

        try:
            version = await self.db.run(work)
        except PolicyDenied as exc:
            raise await self._deny(caller, "session.state.set", session_id, exc)
        return {"session": session_id, "version": version}

    _handlers: dict[str, Callable[..., Any]] = {
        "heartbeat": _heartbeat,
        "sessions.open": _open,
        "sessions.send": _send,
        "sessions.reply": _reply,
        "sessions.show": _show,
        "sessions.list": _list,
        "sessions.close": _close,
        "session.state.get": _state_get,
        "session.state.set": _state_set,
    }

    # ---------------------------------------------------------------- recovery
    def on_snapshot(self) -> None:
        """The reconciler published: sessions of agent processes that ended are recovered now."""
        agents = self.directory.snapshot.agents
        lost = {key for key, stamp in self._processes.items()
                if key not in agents or not agents[key].process.same_as(stamp)}
        self._processes = {key: view.process for key, view in agents.items()}
        for key in lost:
            self._connected.pop(key, None)
            for pending in self._pending.values():
                if pending.agent_key == key:
                    pending.delivered_to = None
        self._displaced |= lost
        self._handoffs.update(self.directory.snapshot.handoffs)
        # Sessions left on a drained agent move once a peer exists — except in a pool the operator
        # drained, where nobody is coming: those follow the pool's rules for a lost agent.
        cordoned = self.directory.snapshot.cordoned
        self._drained |= {key for key in lost if key in self._draining
                          and (self._draining[key].fleet, self._draining[key].pool) not in cordoned}
        self._draining = {key: view for key, view in agents.items() if view.draining}
        if self._displaced:
            self._spawn(self._recover())
        if self._draining:
            self._spawn(self._handover())

    async def _recover(self) -> None:
        """Move, hold or close (by each pool's policy) the active sessions of agents in ``_displaced``."""
        keys = set(self._displaced)
        if not keys:
            return
        snapshot = self.directory.snapshot
        by_pool: dict[tuple[int, str], list[Candidate]] = {}
        pools = {(view.fleet_id, view.model.name): view for view in snapshot.pools.values()}
        for pool_key, view in pools.items():
            by_pool[pool_key] = self._candidates(view, exclude=frozenset(keys))
        now_s = self.clock()

        def work(conn: Connection) -> tuple[list[tuple[str, SessionRow, Any]], list[SessionRow], set[str]]:
            moved: list[tuple[str, SessionRow, Any]] = []
            closed: list[SessionRow] = []
            stuck: set[str] = set()
            for key in sorted(keys):
                live = snapshot.agents.get(key)
                rows = store.list_sessions(conn, SessionFilter(agent_id=key, states=ACTIVE_STATES),
                                           limit=10_000, newest_first=False).rows
                for row in rows:
                    pool = pools.get((row.fleet_id, row.pool))
                    if pool is None or row.state is SessionState.CLOSING:
                        store.close(conn, row.id, reason=row.close_reason or CloseReason.AGENT_LOST, at=_utc(now_s))
                        self._occupy(row.fleet_id, row.pool, key, -1)
                        closed.append(row)
                        continue
                    event = SessionEvent.AGENT_DRAINED if key in self._drained else SessionEvent.AGENT_DIED
                    action = lifecycle.state_action(pool.model.policies.sessions, event,
                                                    hot_standby=pool.model.policies.failover.strategy.value
                                                    == "hot-standby")
                    if action is StateAction.HOLD_WITH_STATE:
                        store.hold(conn, row.id)
                        self._occupy(row.fleet_id, row.pool, key, -1)
                    elif action is StateAction.CLOSE_DROP_STATE or action is StateAction.CLOSE_KEEP_STATE:
                        store.close(conn, row.id, reason=CloseReason.AGENT_LOST, at=_utc(now_s),
                                    drop_state=action is StateAction.CLOSE_DROP_STATE)
                        self._occupy(row.fleet_id, row.pool, key, -1)
                        closed.append(row)
                    else:
                        target = self._successor_on_db(conn, pool, self._handoffs.get(key))
                        if target is None:
                            target, _ = self._place_on_db(conn, pool, by_pool[(row.fleet_id, row.pool)], row.key)
                        if target is None:
                            if live is None:
                                stuck.add(key)  # waits for an agent with room (or its own restart)
                            continue
                        moved.append((target, row, self._move_on_db(conn, row, key, target)))
            return moved, closed, stuck

        try:
            moved, closed, stuck = await self.db.run(work)
        except ClawctlError as exc:
            log.warning("could not recover sessions: %s", exc.message)
            return
        self._displaced -= keys - stuck
        self._drained -= keys - stuck
        for key in keys - stuck:
            self._handoffs.pop(key, None)
        for target, row, data in moved:
            log.info("session %s moved from %s to %s", row.id, row.agent_id, target)
            self._push_opened(target, replace(row, agent_id=target), data)
            for pending in self._pending.values():
                if pending.session_id == row.id:
                    pending.agent_key, pending.delivered_to = target, None
                    self._deliver(pending)
        for row in closed:
            self._after_close(replace(row, state=SessionState.CLOSED), None, now_s)

    def _move_on_db(self, conn: Connection, row: SessionRow, source: str, target: str,
                    pool: str | None = None) -> Any:
        """Move session ``row`` from agent ``source`` to ``target`` (and to ``pool`` when it is another
        pool), keeping state and history; returns its state for the new owner (db thread)."""
        new_pool = pool if pool is not None and pool != row.pool else None
        store.assign_agent(conn, row.id, target, from_agent=source, pool=new_pool)
        self._occupy(row.fleet_id, row.pool, source, -1)
        self._occupy(row.fleet_id, new_pool or row.pool, target, +1)
        return store.get_state(conn, row.id).data

    def _successor_on_db(self, conn: Connection, pool: PoolView, key: str | None) -> str | None:
        """The standby promoted in place of a failed agent, if it can take one more session (db thread)."""
        view = self.directory.snapshot.agents.get(key) if key else None
        if view is None or not self._accepting(view):
            return None
        counts = self._counts_on_db(conn, pool.fleet_id, pool.model.name)
        return view.key if counts.get(view.key, 0) < pool.model.capacity else None

    async def _handover(self) -> None:
        """Move the Open sessions of draining agents (with their state) to serving peers — or, for
        a drained pool, to its fallbackPool — and report each agent whose handover is complete:
        nothing left to move and no message it was given still unanswered. A session moves only
        between messages: one the draining agent is handling is answered by it first (its answer
        runs this again); a message not yet delivered follows its session."""
        draining = dict(self._draining)
        if not draining:
            return
        if self._handing & set(draining):
            self._handover_again = True  # one handover at a time per agent; the running one looks again
            return
        snapshot = self.directory.snapshot
        exclude = frozenset(draining)

        def targets(view: AgentView) -> tuple[PoolView | None, list[Candidate]]:
            pool = snapshot.pool(view.fleet, view.pool)
            if pool is None:
                return None, []
            candidates = self._candidates(pool, exclude=exclude)
            if not any(c.accepts for c in candidates) and (view.fleet, view.pool) in snapshot.cordoned:
                fallback_name = pool.model.policies.failover.fallback_pool
                fallback = snapshot.pool(view.fleet, fallback_name) if fallback_name else None
                if fallback is not None:
                    return fallback, self._candidates(fallback, exclude=exclude)
            return pool, candidates

        plans = {key: targets(view) for key, view in draining.items()}
        # A session whose message the draining agent is handling stays until it answered: its handler
        # may still write the session's state, which only the owner may do.
        busy = {p.session_id for p in self._pending.values() if p.agent_key in draining
                and p.delivered_to is not None and not p.future.done()}
        self._handing |= set(draining)

        def work(conn: Connection) -> tuple[list[tuple[str, str, SessionRow, Any]], dict[str, int], set[str]]:
            moved: list[tuple[str, str, SessionRow, Any]] = []
            left: dict[str, int] = {}
            answering: set[str] = set()
            for key, (pool, candidates) in plans.items():
                rows = store.list_sessions(conn, SessionFilter(agent_id=key, states=(SessionState.OPEN,)),
                                           limit=10_000, newest_first=False).rows
                stayed = 0
                for row in rows:
                    if row.id in busy:
                        answering.add(key)
                        continue
                    target = None
                    if pool is not None:
                        target, _ = self._place_on_db(conn, pool, candidates, row.key)
                    if target is None:
                        stayed += 1
                        continue
                    assert pool is not None
                    moved.append((key, target, row, self._move_on_db(conn, row, key, target, pool.model.name)))
                left[key] = stayed
            return moved, left, answering

        try:
            moved, left, answering = await self.db.run(work)
        except ClawctlError as exc:
            log.warning("could not hand sessions over: %s", exc.message)
            return
        finally:
            self._handing -= set(draining)
        for source, target, row, data in moved:
            log.info("session %s handed over from %s to %s", row.id, source, target)
            self._push_opened(target, replace(row, agent_id=target), data)
            live = draining[source].process
            for pending in self._pending.values():
                if pending.session_id == row.id and not (pending.delivered_to and pending.delivered_to.same_as(live)):
                    pending.agent_key, pending.delivered_to = target, None
                    self._deliver(pending)
        for pending in self._pending.values():
            if pending.agent_key in draining and pending.delivered_to is None:
                self._deliver(pending)  # its session stayed: the draining agent still answers it
        for key, view in draining.items():
            in_flight = any(p.agent_key == key and not p.future.done() for p in self._pending.values())
            # Sessions that found no peer wait for one that is coming: the agent that takes the slot
            # again (rollout, agent drain) or a peer still starting or saying hello. With nobody
            # coming (a drained pool without fallback) waiting would only delay the stop.
            pool, _ = plans[key]
            coming = view.successor or (pool is not None and any(
                v.fleet == pool.fleet and v.pool == pool.model.name and not v.draining and not v.standby
                and v.state in ("Starting", "Running") for v in snapshot.agents.values()))
            waiting = left.get(key, 0) and coming
            if not in_flight and not waiting and key not in answering:
                self.directory.report_handed_over(key)
        # An answer that came while this ran found it busy: look again now (later answers run it themselves).
        still_busy = {p.session_id for p in self._pending.values() if p.agent_key in draining
                      and p.delivered_to is not None and not p.future.done()}
        if self._handover_again or (busy - still_busy):
            self._handover_again = False
            self._spawn(self._handover())

    # ---------------------------------------------------------------- upkeep
    async def _tick_loop(self) -> None:
        ticks = 0
        next_prune = 0.0
        while True:
            await asyncio.sleep(TICK_SECONDS)
            ticks += 1
            try:
                await self._expire()
                await self._eager()
                if ticks % SWEEP_EVERY == 0:
                    await self._sweep()
                if self._displaced:
                    await self._recover()
                if self._draining:
                    await self._handover()
                if self.clock() >= next_prune:
                    next_prune = self.clock() + PRUNE_INTERVAL
                    await self._prune()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - upkeep must survive one bad round
                log.exception("session upkeep failed; trying again at the next tick")

    async def _expire(self) -> None:
        """End sessions past idleTimeout / maxLifetime; force-close those whose grace ran out."""
        if not self._active_pools:  # no active session anywhere: not even a transaction
            return
        pools = {(v.fleet_id, v.model.name): v for v in self.directory.snapshot.pools.values()}
        now_s = self.clock()

        def work(conn: Connection) -> list[tuple[SessionRow, float | None]]:
            done: list[tuple[SessionRow, float | None]] = []
            for pool_key in sorted(self._active_pools):
                view = pools.get(pool_key)
                policy = view.model.policies.sessions if view else Sessions()
                due = store.due_for_expiry(conn, pool_key[0], pool_key[1], idle_timeout=policy.idle_timeout,
                                           max_lifetime=policy.max_lifetime, now=_utc(now_s), limit=200)
                for item in due:
                    self._close_on_db(conn, store.get_session(conn, item.session_id), item.reason, now_s, done)
                if not due and not _has_active(conn, *pool_key):
                    self._active_pools.discard(pool_key)
            return done

        for row, deadline in await self.db.run(work):
            log.info("session %s: %s", row.id, row.close_reason.value if row.close_reason else "closing")
            self._after_close(row, deadline, now_s)

    async def _eager(self) -> None:
        """Keep one pre-opened session on each accepting agent of ``creation: eager`` pools."""
        eager = [v for v in self.directory.snapshot.pools.values() if v.model.policies.sessions.creation == "eager"]
        if not eager:
            return
        wanted = {(v.fleet_id, v.model.name): (v, [c for c in self._candidates(v) if c.accepts]) for v in eager}
        now = self._now()

        def work(conn: Connection) -> list[SessionRow]:
            made: list[SessionRow] = []
            for (fleet_id, name), (view, candidates) in wanted.items():
                if not candidates:
                    continue
                counts = self._counts_on_db(conn, fleet_id, name)
                unclaimed = store.count_unclaimed_by_agent(conn, fleet_id, name)
                for c in candidates:
                    deficit = lifecycle.eager_deficit(view.model.policies.sessions, capacity=view.model.capacity,
                                                      open_sessions=counts.get(c.agent_id, 0),
                                                      unclaimed=unclaimed.get(c.agent_id, 0))
                    for _ in range(deficit):
                        made.append(store.create_session(conn, fleet_id=fleet_id, pool=name, agent_id=c.agent_id,
                                                         now=now, claimed=False))
                        self._occupy(fleet_id, name, c.agent_id, +1)
                        self._active_pools.add((fleet_id, name))
            return made

        for row in await self.db.run(work):
            if row.agent_id is not None:
                self._push_opened(row.agent_id, row, {})

    async def _sweep(self) -> None:
        """Find active sessions on agents with no live process (missed snapshots, daemon restarts)."""
        live = set(self.directory.snapshot.agents)

        def work(conn: Connection) -> set[str]:
            self._occupancy.clear()  # re-read on next use: whatever drifted is corrected here
            query = (sa.select(sessions_table.c.agent_id).distinct()
                     .where(sessions_table.c.state.in_([s.value for s in ACTIVE_STATES])))
            return {k for k in conn.execute(query).scalars() if k is not None}

        owners = await self.db.run(work)
        orphaned = owners - live
        if orphaned:
            self._displaced |= orphaned

    async def _prune(self) -> None:
        now = self._now()

        def work(conn: Connection) -> int:
            return len(store.prune_closed(conn, max_age=CLOSED_KEEP_SECONDS, max_count=CLOSED_KEEP_COUNT, now=now,
                                          limit=1000))

        pruned = await self.db.run(work)
        if pruned:
            log.info("pruned %d closed sessions", pruned)


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("could not record a reply in the session history: %s", future.exception())


def _pools_with_active_sessions(conn: Connection) -> set[tuple[int, str]]:
    s = sessions_table.c
    query = sa.select(s.fleet_id, s.pool).distinct().where(s.state.in_(
        [st.value for st in (*ACTIVE_STATES, SessionState.ORPHANED)]))
    return {(fleet_id, pool) for fleet_id, pool in conn.execute(query)}


def _has_active(conn: Connection, fleet_id: int, pool: str) -> bool:
    s = sessions_table.c
    for state in (*ACTIVE_STATES, SessionState.ORPHANED):
        found = conn.execute(sa.select(s.id).where(s.fleet_id == fleet_id, s.pool == pool,
                                                   s.state == state.value).limit(1)).first()
        if found is not None:
            return True
    return False
