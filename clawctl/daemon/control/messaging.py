"""Agents talking to agents through the daemon: durable messages, events, shared state.

Every call by an agent is checked against its fleet's CommunicationPolicy
(``policies.access``); a denial is refused and audited. Durable messages are
stored before the sender is answered and delivered until the recipient acks
them. Stores, deliveries and acks of many concurrent requests go to the registry
together: one transaction per flush of a batch (group commit), so throughput
grows with the number of senders instead of being one fsync per message.

Events and watches are not stored: they go at most once to the connections
subscribed when they happen.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.engine import Connection

from clawctl.config.model import CommunicationPolicy
from clawctl.daemon.control.caller import Caller, PolicyBook, resolve_fleet
from clawctl.daemon.control.db import Database, InlineWriter
from clawctl.daemon.control.directory import AgentView, Directory, PoolView, Snapshot
from clawctl.errors import ClawctlError, Conflict, NotFound, PolicyDenied, ProtocolError, RateLimited, UsageError
from clawctl.policies import access
from clawctl.policies.access import AccessDecision
from clawctl.policies.balancing import BalancerState, Candidate, place
from clawctl.protocol.auth import ProcessStamp
from clawctl.protocol.messages import Event, to_wire
from clawctl.protocol.methods import ID_LENGTH, MAX_BATCH, TARGET_LENGTH
from clawctl.registry import audit
from clawctl.registry import messaging as store
from clawctl.registry.messaging import MessageRow, MessageState, Writes

log = logging.getLogger("clawctl.daemon.messaging")

Decide = Callable[[Sequence[CommunicationPolicy], str], AccessDecision]
"""A policy question about the caller's pool: (the fleet's policies, the pool) → decision."""

MAX_DELIVERIES = int(os.environ.get("CLAWCTL_MAX_DELIVERIES", "5"))
"""Deliveries of a message without an acknowledgement before it becomes a dead letter."""
ACK_TIMEOUT = float(os.environ.get("CLAWCTL_ACK_TIMEOUT", "30"))
"""Seconds a delivered message may wait for its acknowledgement before it is delivered again."""
MAX_UNACKED = int(os.environ.get("CLAWCTL_MAX_UNACKED", "10000"))
"""Messages waiting for one agent's acknowledgement; a send beyond is refused (rate-limited)."""
RECENT_IDS = 100_000
"""(sender, id) pairs remembered in memory, so a retried send is answered without a query."""
TICK_SECONDS = 1.0
ACK_WRITE_DELAY = 0.05
"""Seconds an acknowledgement may wait for a flush someone else arranges (the next send's) before it
arranges its own: under a stream of messages acks ride on send flushes instead of a commit each."""
OPERATOR = "operator"


@dataclass
class Pending:
    """A stored message not acknowledged yet, as delivery tracks it."""

    row: MessageRow
    attempts: int
    delivered_to: ProcessStamp | None = None
    delivered_at: float = 0.0
    """Monotonic time of the last delivery (for the acknowledgement timeout)."""


@dataclass
class _Batch:
    """Registry writes waiting for the next flush, and one future for all who wait for them."""

    writes: Writes = field(default_factory=Writes)
    done: asyncio.Future[set[str]] | None = None
    """Made (on the event loop) by the first waiter: the ids of new messages refused because their
    (sender, client id) was taken, once the flush is committed; or the flush's error."""

    def __bool__(self) -> bool:
        return bool(self.writes) or self.done is not None


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value is not None else None


def _plain(key: str) -> str:
    return key.split("/", 1)[-1]


class MessagingService:
    """Handles ``messages.*``, ``events.*`` and ``state.*``."""

    def __init__(self, db: Database, directory: Directory, policies: PolicyBook, *, clock: Callable[[], float],
                 push: Callable[[str, Event], bool], push_peer: Callable[[int, Event], bool]) -> None:
        self.db = db
        self.directory = directory
        self.policies = policies
        self.clock = clock
        self.push = push
        self.push_peer = push_peer
        self._pending: dict[str, OrderedDict[str, Pending]] = {}  # recipient key -> message id -> pending
        self._seq = 0
        self._id_suffix = os.urandom(8).hex()
        """Ends every message id of this daemon's life: ids stay unique should seq ever repeat (a
        registry restored from a backup) without a system call per message."""
        self._batch = _Batch()
        self._batch_lock = threading.Lock()
        """Guards ``_batch`` and ``_posted``: the event loop fills the batch, the database thread takes it."""
        self._posted = False
        """A flush is queued on the database thread and has not taken the batch yet."""
        self._outstanding = 0
        """Flushes handed to the database thread and not answered yet (the event loop's count)."""
        self._inline: InlineWriter | None = None
        self._inline_due = False
        """An inline flush is scheduled for the end of this turn of the event loop."""
        self._subscriptions: dict[int, tuple[Caller, set[str]]] = {}
        self._watches: dict[int, tuple[Caller, set[str]]] = {}
        self._balancers: dict[tuple[str, str], BalancerState] = {}
        self._members: tuple[Snapshot | None, dict[tuple[str, str], list[AgentView]]] = (None, {})
        """The agents of each pool in one directory snapshot (placing a message needs them)."""
        self._recent: OrderedDict[tuple[str, str], tuple[str, str]] = OrderedDict()
        """(sender, client id) → (message id, recipient) of recent sends."""
        self._ticker: asyncio.Task[None] | None = None
        self._lazy: asyncio.TimerHandle | None = None
        """The flush that writes deferred acknowledgements if nothing else flushed them first."""

    async def start(self) -> None:
        def load(conn: Connection) -> tuple[int, list[MessageRow]]:
            return store.max_seq(conn), store.pending(conn)

        self._seq, rows = await self.db.run(load)
        self._inline = self.db.open_inline()
        for row in rows:
            self._pending.setdefault(row.recipient, OrderedDict())[row.id] = Pending(row, row.attempts)
        self._ticker = asyncio.get_running_loop().create_task(self._tick_loop())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        if self._lazy is not None:
            self._lazy.cancel()  # the flush below writes what it waited for
            self._lazy = None
        await self._flush_now()
        if self._inline is not None:
            self._inline.close()
            self._inline = None

    async def _tick_loop(self) -> None:
        """Deliver again what waited longer than ACK_TIMEOUT for its acknowledgement; make dead
        letters of messages whose recipient no longer exists."""
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now = time.monotonic()
            for recipient, queue in list(self._pending.items()):
                if not self._exists(recipient):
                    self._bury(recipient, queue, "its recipient no longer exists")
                    continue
                for pending in list(queue.values()):
                    if pending.delivered_to is not None and now - pending.delivered_at >= ACK_TIMEOUT:
                        pending.delivered_to = None
                        self._deliver(pending)

    def _exists(self, recipient: str) -> bool:
        """Whether agent ``fleet/agent-id`` is running or is a slot its pool still wants."""
        snapshot = self.directory.snapshot
        if recipient in snapshot.agents or not snapshot.pools:
            return True  # no pools published yet (the daemon is starting): judge nothing
        fleet, _, name = recipient.partition("/")
        pool_name, _, slot = name.rpartition("-")
        view = snapshot.pool(fleet, pool_name)
        slots = view.model.replicas + view.model.policies.failover.standbys if view else 0
        return slot.isdigit() and int(slot) < slots

    def _bury(self, recipient: str, queue: OrderedDict[str, Pending], why: str) -> None:
        """Pending messages to ``recipient`` that will never be delivered become dead letters
        (pool targets are re-placed in ``on_snapshot`` instead)."""
        dead = [mid for mid, pending in queue.items() if not pending.row.target.startswith("pool/")]
        for message_id in dead:
            del queue[message_id]
        if dead:
            log.warning("%d message(s) to %s are dead: %s", len(dead), recipient, why)
            self._queue(dead=dead)
        if not queue:
            self._pending.pop(recipient, None)

    # ---------------------------------------------------------------- dispatch
    async def handle(self, caller: Caller, peer: int, method: str, params: Mapping[str, Any]) -> Any:
        """The result of ``method(params)`` for ``caller`` on connection ``peer``."""
        handler = self._handlers[method]
        return await handler(self, caller, peer, params)

    # ---------------------------------------------------------------- policy
    async def _check(self, caller: Caller, fleet: str, decide: Decide, action: str, target: str, verb: str) -> None:
        """Raise (and audit) PolicyDenied unless the caller's pool may do this; the operator may."""
        if caller.agent is None:
            return
        pool = self.directory.snapshot.pool(fleet, caller.agent.pool)
        policies = await self.policies.of(fleet, pool.fleet_id, pool.revision) if pool else ()
        if decide(policies, caller.agent.pool).allowed:
            return
        error = PolicyDenied(f"pool {caller.agent.pool} may not {verb} {target}: no CommunicationPolicy rule "
                             "allows it", hint="add a rule to the fleet's CommunicationPolicy and apply it")
        await self._audit(caller, action, target, "denied", {"message": error.message})
        raise error

    async def _audit(self, caller: Caller, action: str, target: str, outcome: str, detail: dict[str, Any]) -> None:
        entry = audit.AuditEntry(_utc(self.clock()), caller.describe, action, target, outcome, detail)
        try:
            await self.db.run(lambda conn: audit.record(conn, [entry]))
        except ClawctlError as exc:
            log.warning("could not write the audit log: %s", exc.message)

    def _fleet_id(self, fleet: str) -> int:
        return self.directory.snapshot.fleets()[fleet]

    # ---------------------------------------------------------------- messages
    async def _send(self, caller: Caller, peer: int, params: Mapping[str, Any]) -> Any:
        fleet = self._sender_fleet(caller, params)
        [outcome] = await self._send_many(caller, fleet, [params])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def _send_batch(self, caller: Caller, peer: int, params: Mapping[str, Any]) -> Any:
        items = params["messages"]
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
            raise ProtocolError(f"messages.send_batch: 'messages' must be a list of 1 to {MAX_BATCH} messages")
        for index, item in enumerate(items):
            _check_item(index, item)
        fleet = self._sender_fleet(caller, params)
        outcomes = await self._send_many(caller, fleet, items)
        return {"results": [{"error": to_wire(o).to_json()} if isinstance(o, BaseException) else o for o in outcomes]}

    def _sender_fleet(self, caller: Caller, params: Mapping[str, Any]) -> str:
        fleet = resolve_fleet(self.directory.snapshot, caller, params.get("fleet"))
        if caller.agent is not None and fleet != caller.agent.fleet:
            raise PolicyDenied("an agent may send messages only within its own fleet")
        return fleet

    async def _send_many(self, caller: Caller, fleet: str,
                         items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any] | ClawctlError]:
        """Check, store (in one flush) and deliver ``items``; an outcome per item, in order."""
        outcomes: list[dict[str, Any] | ClawctlError | None] = [None] * len(items)
        fresh: list[tuple[int, MessageRow]] = []
        now = _utc(self.clock())  # the messages of one request share their send time
        allowed: set[str] = set()  # target pools the policy lets the caller message (asked once each)
        for index, item in enumerate(items):
            try:
                prepared = await self._prepare(caller, fleet, item, now, allowed)
            except ClawctlError as exc:
                outcomes[index] = exc
                continue
            if isinstance(prepared, dict):
                outcomes[index] = prepared
            else:
                fresh.append((index, prepared))
        if fresh:
            refused: set[str] = set()
            failure: ClawctlError | None = None
            try:
                refused = await self._store([row for _, row in fresh])
            except ClawctlError as exc:
                failure = exc
            except Exception:  # noqa: BLE001 - logged by _settle; the sender gets an error per message
                failure = ClawctlError("the message could not be stored", hint="see the daemon log")
            for index, row in fresh:
                if failure is not None:
                    outcomes[index] = failure
                elif row.id in refused:  # the same client id raced in: answer as for a retry
                    outcomes[index] = await self._already_stored(row) or Conflict(
                        "a message with this sender's id is stored already")
                else:
                    outcomes[index] = self._accepted(row)
        return [o if o is not None else ClawctlError("not sent") for o in outcomes]

    async def _prepare(self, caller: Caller, fleet: str, item: Mapping[str, Any], now: datetime,
                       allowed: set[str]) -> MessageRow | dict[str, Any]:
        """The row to store for ``item``, or the answer of an earlier send with the same id.
        ``allowed``: target pools already allowed in this request (a pool allowed here is added)."""
        target: str = item["to"]
        kind, _, name = target.partition("/")
        if kind not in ("agent", "pool") or not name:
            raise UsageError(f"message target {target!r} is not agent/ID or pool/NAME",
                             hint="e.g. to: pool/quality-control or agent/quality-control-2")
        target_pool = self._target_pool(fleet, kind, name)
        if target_pool.model.name not in allowed:
            await self._check(caller, fleet, lambda p, pool: access.may_message(p, pool, target_pool.model.name),
                              "messages.send", target, "message")
            allowed.add(target_pool.model.name)
        sender = caller.key or OPERATOR
        client_id: str | None = item.get("id")
        if client_id is not None and (sender, client_id) in self._recent:
            message_id, known = self._recent[(sender, client_id)]
            return {"message_id": message_id, "recipient": _plain(known), "duplicate": True}
        recipient = f"{fleet}/{name}" if kind == "agent" else self._place(target_pool)
        queue = self._pending.get(recipient)
        if queue is not None and len(queue) >= MAX_UNACKED:
            error = RateLimited(f"agent {_plain(recipient)} has {len(queue)} messages waiting for its "
                                "acknowledgement", hint="it is not keeping up; retry later")
            await self._audit(caller, "messages.send", target, "denied", {"message": error.message})
            raise error
        self._seq += 1
        # Ids rise with seq: the primary key index takes each new message at its end instead of
        # dirtying a random page per message (half the pages a flush writes, with random ids).
        return MessageRow(f"{self._seq:016x}{self._id_suffix}", target_pool.fleet_id, sender, target, recipient,
                          item["payload"], MessageState.QUEUED, self._seq, 0, client_id, now)

    async def _already_stored(self, row: MessageRow) -> dict[str, Any] | None:
        client_id = row.client_id or ""
        stored = await self.db.run(lambda conn: store.by_client_ids(conn, row.fleet_id, row.sender, [client_id]))
        found = stored.get(client_id)
        if found is None:
            return None
        return {"message_id": found.id, "recipient": _plain(found.recipient), "duplicate": True}

    def _accepted(self, row: MessageRow) -> dict[str, Any]:
        """A stored message: remember its sender's id, then deliver it."""
        if row.client_id is not None:
            self._recent[(row.sender, row.client_id)] = (row.id, row.recipient)
            if len(self._recent) > RECENT_IDS:
                self._recent.popitem(last=False)
        pending = Pending(row, 0)
        self._pending.setdefault(row.recipient, OrderedDict())[row.id] = pending
        self._deliver(pending)
        return {"message_id": row.id, "recipient": _plain(row.recipient), "duplicate": False}

    def _target_pool(self, fleet: str, kind: str, name: str) -> PoolView:
        snapshot = self.directory.snapshot
        if kind == "pool":
            view = snapshot.pool(fleet, name)
            if view is None:
                raise NotFound(f"pool {name} does not exist in fleet {fleet}", hint="clawctl status lists the pools")
            return view
        agent = snapshot.agents.get(f"{fleet}/{name}")
        if agent is not None:
            found = snapshot.pool(fleet, agent.pool)
            if found is not None:
                return found
        pool_name, _, slot = name.rpartition("-")
        view = snapshot.pool(fleet, pool_name)
        slots = view.model.replicas + view.model.policies.failover.standbys if view else 0
        if view is None or not slot.isdigit() or int(slot) >= slots:
            raise NotFound(f"agent {name} does not exist in fleet {fleet}", hint="clawctl status lists the agents")
        return view

    def _place(self, pool: PoolView) -> str:
        """An agent of ``pool`` for a message to the pool, by the pool's strategy (live agents only)."""
        candidates = [Candidate(v.key, v.slot, len(self._pending.get(v.key, ())), capacity=MAX_UNACKED,
                                accepts=v.serving) for v in self._pool_agents(pool)]
        memory = (pool.fleet, pool.model.name)
        placement = place(pool.model.policies.load_balancing.strategy, candidates, key=None,
                          state=self._balancers.get(memory, BalancerState()))
        if not placement.placed or placement.agent_id is None:
            raise Conflict(f"pool {pool.model.name} has no running agent to take the message",
                           hint="clawctl status shows its agents")
        self._balancers[memory] = placement.state
        return placement.agent_id

    def _pool_agents(self, pool: PoolView) -> list[AgentView]:
        """The agents of ``pool`` in the current snapshot (grouped once per snapshot, not per message)."""
        snapshot = self.directory.snapshot
        seen, members = self._members
        if seen is not snapshot:
            members = {}
            for view in snapshot.agents.values():
                members.setdefault((view.fleet, view.pool), []).append(view)
            self._members = (snapshot, members)
        return members.get((pool.fleet, pool.model.name), [])

    def _deliver(self, pending: Pending, *, charge: bool = True) -> None:
        """Push ``pending`` to its recipient's live process. ``charge``: it counts as a delivery
        attempt (False: a message given again that its recipient never got to handle)."""
        view = self.directory.snapshot.agents.get(pending.row.recipient)
        if view is None or (pending.delivered_to is not None and pending.delivered_to.same_as(view.process)):
            return
        if charge and pending.attempts >= MAX_DELIVERIES:
            self._pending.get(pending.row.recipient, OrderedDict()).pop(pending.row.id, None)
            log.warning("message %s to %s is dead after %d deliveries", pending.row.id, pending.row.recipient,
                        pending.attempts)
            self._queue(dead=[pending.row.id])
            return
        event = Event("message.received", {"message_id": pending.row.id, "from": _plain(pending.row.sender),
                                           "payload": pending.row.payload, "attempt": pending.attempts + 1})
        if self.push(pending.row.recipient, event):
            pending.attempts += 1 if charge else 0
            pending.delivered_to = view.process
            pending.delivered_at = time.monotonic()
            if charge and pending.attempts > 1:  # a first delivery is the rule: only redeliveries are worth a write
                self._queue(delivered=[(pending.row.id, pending.attempts, _utc(self.clock()))])

    async def _ack(self, caller: Caller, peer: int, params: Mapping[str, Any]) -> Any:
        assert caller.key is not None
        ids = _ack_ids(params)
        queue = self._pending.get(caller.key, OrderedDict())
        now = _utc(self.clock())
        acked: list[tuple[str, datetime]] = []
        foreign: list[str] = []
        for message_id in ids:
            if queue.pop(message_id, None) is not None:
                acked.append((message_id, now))
            elif any(message_id in q for q in self._pending.values()):
                foreign.append(message_id)
            # else: acked before (or dead): acking again is harmless
        # Behind the answer, and maybe ACK_WRITE_DELAY later still: until it is written only a
        # daemon restart sees it as unacknowledged, and delivers the message again (the SDK knows it).
        self._queue_lazily(acked=acked)
        if foreign:
            raise PolicyDenied(f"message {foreign[0]} was not delivered to {caller.describe}")
        return {"ok": True}

    async def _list(self, caller: Caller, peer: int, params: Mapping[str, Any]) -> Any:
        state = None
        if params.get("state"):
            try:
                state = MessageState(str(params["state"]).lower())
            except ValueError:
                raise UsageError(f"unknown message state {params['state']!r}",
                                 hint="use queued, delivered, acked or dead") from None
        fleet_id = None
        recipient = None
        if params.get("fleet") or params.get("agent"):
            fleet = resolve_fleet(self.directory.snapshot, caller, params.get("fleet"))
            fleet_id = self._fleet_id(fleet)
            recipient = f"{fleet}/{params['agent']}" if params.get("agent") else None
        limit = int(params.get("limit", 100))
        await self._flush_now()
        rows = await self.db.run(lambda conn: store.listing(conn, state=state, recipient=recipient,
                                                            fleet_id=fleet_id, limit=limit))
        names = {fid: name for name, fid in self.directory.snapshot.fleets().items()}
        live = {m.row.id: m for queue in self._pending.values() for m in queue.values()}

        def now_state(r: MessageRow) -> tuple[str, int]:
            # Only redeliveries are written; a pending message's deliveries so far are in memory.
            m = live.get(r.id)
            if m is None:
                return r.state.value, r.attempts
            return (MessageState.DELIVERED.value if m.attempts else MessageState.QUEUED.value), m.attempts

        return {"messages": [{
            "id": r.id, "fleet": names.get(r.fleet_id, str(r.fleet_id)), "from": _plain(r.sender), "to": r.target,
            "recipient": _plain(r.recipient), "state": now_state(r)[0], "attempts": now_state(r)[1],
            "created_at": _iso(r.created_at), "delivered_at": _iso(r.delivered_at), "acked_at": _iso(r.acked_at),
            "payload": r.payload} for r in rows]}

    # ---------------------------------------------------------------- batching
    # Group commit: the event loop adds writes to ``_batch``; a flush writes everything added
    # until it starts. On SQLite a flush runs on the event loop itself at the end of the turn
    # that added the writes (every request read in that turn shares it), unless another
    # connection holds the write lock or flushes are still waiting on the database thread: then
    # it goes to the database thread, which waits for the lock. There one flush runs at a time,
    # the next is already queued behind it and takes the batch when it starts, so that thread
    # goes from commit to commit without waiting for the event loop.
    def _queue(self, **items: Any) -> None:
        with self._batch_lock:
            writes = self._batch.writes
            for name, values in items.items():
                getattr(writes, name).extend(values)
        self._kick()

    def _queue_lazily(self, **items: Any) -> None:
        """Add writes to the next flush, arranging one only if none comes within ACK_WRITE_DELAY."""
        with self._batch_lock:
            writes = self._batch.writes
            for name, values in items.items():
                getattr(writes, name).extend(values)
        if self._lazy is None:
            self._lazy = asyncio.get_running_loop().call_later(ACK_WRITE_DELAY, self._kick_lazy)

    def _kick_lazy(self) -> None:
        self._lazy = None
        self._kick()

    def _store(self, rows: list[MessageRow]) -> asyncio.Future[set[str]]:
        """Store ``rows`` with the next flush. The future holds the ids of rows refused because
        their (sender, client id) was taken, once the others are committed."""
        with self._batch_lock:
            batch = self._batch
            batch.writes.inserts.extend(rows)
            done = batch.done = batch.done or asyncio.get_running_loop().create_future()
        self._kick()
        return done

    def _kick(self) -> None:
        """Arrange a flush unless one is arranged already (the event loop thread only)."""
        with self._batch_lock:
            if self._posted or self._inline_due or not self._batch:
                return
            if self._inline is not None and not self._outstanding:
                self._inline_due = True
                asyncio.get_running_loop().call_soon(self._flush_inline)
                return
            self._posted = True
        self._post()

    def _post(self) -> None:
        """Hand a flush to the database thread (``_posted`` is set)."""
        self._outstanding += 1
        taken: list[_Batch] = []  # the batch this flush took, once it started
        self.db.post(lambda conn, raw: self._write(conn, raw, taken),
                     lambda refused, error: self._flushed(taken, refused, error))

    def _flush_inline(self) -> None:
        """Write the batch now, on the event loop, unless another connection holds the lock."""
        assert self._inline is not None
        with self._batch_lock:
            self._inline_due = False
            if self._posted or self._outstanding or not self._batch:  # keep the order of flushes
                return
            batch, self._batch = self._batch, _Batch()
        try:
            ran, refused = self._inline.try_run(lambda raw: store.write_sqlite(raw, batch.writes))
        except Exception as exc:  # noqa: BLE001 - its waiters get the error (logged by _settle), never hang
            self._settle(batch, None, exc)
            return
        if ran:
            self._settle(batch, refused, None)
            return
        with self._batch_lock:  # nothing was added meanwhile: this thread is the one that adds
            self._batch = batch
            self._posted = True
        self._post()

    def _write(self, conn: Connection, raw: sqlite3.Connection | None, taken: list[_Batch]) -> set[str]:
        """On the database thread: take the batch and write it, in the transaction ``post`` opened."""
        with self._batch_lock:
            batch, self._batch = self._batch, _Batch()
            self._posted = False
        taken.append(batch)
        return store.write_sqlite(raw, batch.writes) if raw is not None else store.write(conn, batch.writes)

    def _flushed(self, taken: list[_Batch], refused: set[str] | None, error: BaseException | None) -> None:
        """On the event loop, after a flush of the database thread."""
        self._outstanding -= 1
        if taken:
            self._settle(taken[0], refused, error)
        else:  # it failed before taking the batch (no transaction, the daemon stopping): fail that batch
            with self._batch_lock:
                batch, self._batch = self._batch, _Batch()
                self._posted = False
            self._settle(batch, None, error or ClawctlError("the flush did not run"))
        self._kick()

    def _settle(self, batch: _Batch, refused: set[str] | None, error: BaseException | None) -> None:
        """Answer those who wait for ``batch``."""
        if error is not None:  # a registry error says enough; anything else is a bug: its traceback
            log.warning("could not write messages to the registry: %s", error,
                        exc_info=None if isinstance(error, ClawctlError) else error)
        if batch.done is None or batch.done.done():
            return
        if error is None:
            batch.done.set_result(refused or set())
            return
        batch.done.set_exception(error if isinstance(error, ClawctlError)
                                 else ClawctlError("the message could not be stored", hint="see the daemon log"))
        batch.done.exception()  # marked retrieved: a flush that only barriers waited for is no unhandled error

    async def _flush_now(self) -> None:
        """Wait until everything queued so far is in the registry (or its flush failed)."""
        with self._batch_lock:
            batch = self._batch
            done = batch.done = batch.done or asyncio.get_running_loop().create_future()
        self._kick()
        try:
            await done
        except ClawctlError:
            pass

    # ---------------------------------------------------------------- connections
    def on_hello(self, caller: Caller) -> None:
        """A (re)connected agent gets every message still waiting for its acknowledgement, in order.

        Only the oldest unacknowledged message of each sender counts as a failed delivery: the
        agent handles a sender's messages in order, so that is the one its previous process could
        have been handling when it ended. The others were only queued there, and an agent that
        crashes now and then must not turn them into dead letters."""
        if caller.key is None:
            return
        heads: set[str] = set()
        for pending in list(self._pending.get(caller.key, OrderedDict()).values()):
            charge = pending.row.sender not in heads
            heads.add(pending.row.sender)
            pending.delivered_to = None
            self._deliver(pending, charge=charge or pending.attempts == 0)

    def on_disconnect(self, peer: int) -> None:
        self._subscriptions.pop(peer, None)
        self._watches.pop(peer, None)

    def on_snapshot(self) -> None:
        """Messages to a pool whose agent ended are re-placed on another agent of the pool."""
        agents = self.directory.snapshot.agents
        for recipient in [r for r in self._pending if r not in agents]:
            queue = self._pending[recipient]
            for message_id, pending in list(queue.items()):
                if not pending.row.target.startswith("pool/"):
                    continue  # to that agent: it waits for the agent's restart
                fleet = recipient.split("/", 1)[0]
                view = self.directory.snapshot.pool(fleet, pending.row.target[len("pool/"):])
                if view is None:
                    continue
                try:
                    target = self._place(view)
                except Conflict:
                    continue
                del queue[message_id]
                moved = Pending(replace(pending.row, recipient=target), pending.attempts)
                self._pending.setdefault(target, OrderedDict())[message_id] = moved
                self._queue(moved=[(message_id, target)])
                self._deliver(moved)
            if not queue:
                del self._pending[recipient]

    # ---------------------------------------------------------------- events
    async def _publish(self, caller: Caller, peer: int, params: Mapping[str, Any]) -> Any:
        fleet = resolve_fleet(self.directory.snapshot, caller, params.get("fleet"))
        topic: str = params["topic"]
        await self._check(caller, fleet, lambda p, pool: access.may_publish(p, pool, topic),
                          "events.publish", topic, "publish")
        event = Event("event.published", {"topic": topic, "data": params.get("data"),
                                          "from": caller.agent.agent_id if caller.agent else OPERATOR})
        delivered = await self._fan_out(self._subscriptions, fleet, topic, access.may_receive, event)
        return {"delivered": delivered}

    async def _fan_out(self, registrations: dict[int, tuple[Caller, set[str]]], fleet: str, name: str,
                       decide: Callable[[Sequence[CommunicationPolicy], str, str], AccessDecision],
                       event: Event) -> int:
        """Push ``event`` about topic or key ``name`` to every connection registered with a matching
        pattern whose pool the policy lets receive it now; returns how many got it."""
        sent = 0
        for number, (caller, patterns) in list(registrations.items()):
            agent = caller.agent
            if agent is None or agent.fleet != fleet or not any(access.glob_match(p, name) for p in patterns):
                continue
            pool = self.directory.snapshot.pool(fleet, agent.pool)
            policies = await self.policies.of(fleet, pool.fleet_id, pool.revision) if pool else ()
            if decide(policies, agent.pool, name).allowed and self.push_peer(number, event):
                sent += 1
        return sent

    async def _subscribe(self, caller: Caller, peer: int, params: Mapping[str, Any]) -> Any:
        assert caller.agent is not None
        pattern: str = params["pattern"]
        await self._check(caller, caller.agent.fleet, lambda p, pool: access.may_subscribe(p, pool, pattern),
                          "events.subscribe", pattern, "subscribe to")
        self._subscriptions.setdefault(peer, (caller, set()))[1].add(pattern)
        return {"ok": True}

    async def _unsubscribe(self, caller: Caller, peer: int, params: Mapping[str, Any]) -> Any:
        entry = self._subscriptions.get(peer)
        if entry is not None:
            entry[1].discard(params["pattern"])
        return {"ok": True}

    # ---------------------------------------------------------------- shared state
    async def _state_get(self, caller: Caller, peer: int, params: Mapping[str, Any]) -> Any:
        fleet = resolve_fleet(self.directory.snapshot, caller, params.get("fleet"))
        key: str = params["key"]
        await self._check(caller, fleet, lambda p, pool: access.may_read_state(p, pool, key),
                          "state.get", key, "read")
        fleet_id = self._fleet_id(fleet)
        value, version = await self.db.run(lambda conn: store.state_get(conn, fleet_id, key))
        return {"key": key, "value": value, "version": version}

    async def _state_set(self, caller: Caller, peer: int, params: Mapping[str, Any]) -> Any:
        fleet = resolve_fleet(self.directory.snapshot, caller, params.get("fleet"))
        key: str = params["key"]
        await self._check(caller, fleet, lambda p, pool: access.may_write_state(p, pool, key),
                          "state.set", key, "write")
        fleet_id = self._fleet_id(fleet)
        by = caller.agent.agent_id if caller.agent else OPERATOR
        value = params["value"]
        version = await self.db.run(lambda conn: store.state_set(
            conn, fleet_id, key, value, expected_version=int(params["expected_version"]), by=by,
            at=_utc(self.clock())))
        await self._notify_watchers(fleet, key, value, version, by)
        return {"key": key, "version": version}

    async def _watch(self, caller: Caller, peer: int, params: Mapping[str, Any]) -> Any:
        assert caller.agent is not None
        pattern: str = params["pattern"]
        await self._check(caller, caller.agent.fleet, lambda p, pool: access.may_read_state(p, pool, pattern),
                          "state.watch", pattern, "read")
        self._watches.setdefault(peer, (caller, set()))[1].add(pattern)
        return {"ok": True}

    async def _notify_watchers(self, fleet: str, key: str, value: Any, version: int, by: str) -> None:
        event = Event("state.changed", {"key": key, "value": value, "version": version, "by": by})
        await self._fan_out(self._watches, fleet, key, access.may_read_state, event)

    _handlers: dict[str, Callable[..., Any]] = {
        "messages.send": _send,
        "messages.send_batch": _send_batch,
        "messages.ack": _ack,
        "messages.list": _list,
        "events.publish": _publish,
        "events.subscribe": _subscribe,
        "events.unsubscribe": _unsubscribe,
        "state.get": _state_get,
        "state.set": _state_set,
        "state.watch": _watch,
    }


def _check_item(index: int, item: object) -> None:
    """One message of a batch must look like the params of ``messages.send`` (without fleet)."""
    where = f"messages.send_batch: message {index}"
    if not isinstance(item, dict):
        raise ProtocolError(f"{where} must be an object with 'to' and 'payload'")
    unknown = sorted(set(item) - {"to", "payload", "id"})
    if unknown:
        raise ProtocolError(f"{where} has unknown field {', '.join(repr(k) for k in unknown)}")
    if not isinstance(item.get("to"), str) or len(item["to"]) > TARGET_LENGTH or "payload" not in item:
        raise ProtocolError(f"{where} needs 'to' (agent/ID or pool/NAME) and 'payload'")
    if "id" in item and (not isinstance(item["id"], str) or len(item["id"]) > ID_LENGTH):
        raise ProtocolError(f"{where}: 'id' must be a string of at most {ID_LENGTH} characters")


def _ack_ids(params: Mapping[str, Any]) -> list[str]:
    has_one, has_many = "message_id" in params, "message_ids" in params
    if has_one == has_many:
        raise ProtocolError("messages.ack: give exactly one of 'message_id' and 'message_ids'")
    if has_one:
        return [params["message_id"]]
    ids = params["message_ids"]
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_BATCH or \
            not all(isinstance(i, str) and len(i) <= ID_LENGTH for i in ids):
        raise ProtocolError(f"messages.ack: 'message_ids' must be a list of 1 to {MAX_BATCH} message ids")
    return list(ids)
