"""The agent SDK: one agent process's connection to its clawctl daemon.

An ``Agent`` connects to the control socket named by ``CLAWCTL_SOCKET``, says
``hello`` with its id and token, heartbeats, and turns the daemon's session
events into calls of the handlers the program registered:

    agent = Agent.from_env()

    @agent.on_message
    def answer(session: Session, message: Any) -> Any:
        return {"you said": message}

    agent.run()  # until SIGTERM/SIGINT or agent.stop()

Beyond sessions it sends and receives durable messages (``send_message``,
``send_messages`` in batches, ``on_direct_message``: acknowledged after the handler
returns, in batches, de-duplicated by id across restarts through a small file in the
working directory), publishes and
subscribes to events, reads, compare-and-sets and watches shared state, and opens
child sessions.

Threads: the connection's reader thread only queues events; handlers run in a
bounded pool of worker threads, each queue (a session, a message sender, a
subscription or watch pattern) strictly in order and never two at once, different
queues concurrently. One supervisor thread
connects, says hello, heartbeats and, when the connection drops (the daemon
restarted), reconnects with exponential backoff and jitter, forever until the
agent is stopped. Calls made while disconnected wait for the reconnection
(bounded by ``connect_timeout``). One acknowledgement thread, started with the first
durable message handled, records handled message ids on disk and acknowledges them,
everything queued at once (one write, one fsync, one request).

Standard library only (agents import it at every start). See docs/sdk.md.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random as _random
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from clawctl import __version__
from clawctl.agent import notify_ready
from clawctl.errors import ClawctlError, Conflict, DaemonUnavailable, ProtocolError
from clawctl.protocol.connection import Connection, ConnectionClosed
from clawctl.protocol.framing import FrameError, FrameFault
from clawctl.protocol.globs import glob_match
from clawctl.protocol.messages import Event, from_wire, parse_wire_error
from clawctl.protocol.methods import MAX_BATCH

__all__ = ["Agent", "Session", "Message", "PublishedEvent", "StateChange", "OpenHandler", "MessageHandler",
           "ClosingHandler", "DirectMessageHandler", "EventHandler", "ChangeHandler", "CLIENT", "ENV_VARS",
           "ACKED_FILE", "DEFAULT_ACKED_LIMIT", "MAX_BATCH", "OutgoingMessage", "glob_match"]

log = logging.getLogger("clawctl.agent")

CLIENT = f"clawctl-agent/{__version__}"
"""What the SDK names itself in ``hello`` (the daemon logs it)."""

ENV_VARS = ("CLAWCTL_SOCKET", "CLAWCTL_AGENT_ID", "CLAWCTL_TOKEN")
"""The variables a clawctl daemon gives every agent process and ``from_env`` requires."""

DEFAULT_HEARTBEAT_INTERVAL = 5.0
"""Seconds between heartbeats when the daemon's hello does not say."""

MAX_ERROR_TEXT = 1024
"""Longest ``error`` a ``sessions.reply`` may carry (characters)."""

SEND_MARGIN = 5.0
"""Seconds ``send`` waits for the daemon beyond the ``timeout`` it passes on."""

SEND_MAX_WAIT = 3600.0 + SEND_MARGIN
"""How long ``send`` without a timeout waits for the daemon at most (its own bound is 3600 s)."""

ACKED_FILE = ".clawctl-acked"
"""The file in ``state_dir`` (default: the working directory) where acknowledged message ids are kept."""

DEFAULT_ACKED_LIMIT = 100_000
"""How many acknowledged message ids the SDK remembers (the newest); the file holds at most twice as many."""

_RETRY_SAFE = frozenset({"heartbeat", "session.state.get", "session.state.set", "sessions.show", "sessions.list",
                         "sessions.close", "sessions.reply", "messages.ack", "events.subscribe",
                         "events.unsubscribe", "state.get", "state.watch"})
"""Methods repeated on the new connection when the old one drops mid-call: doing them twice is harmless.
So are ``messages.send`` with an ``id`` and ``messages.send_batch`` with one per message (stored once). ``sessions.open``, ``sessions.send``,
``events.publish`` and ``state.set`` are not: the caller gets ``ConnectionClosed`` and decides."""


class _Ids:
    """Ids for the messages this agent sends: unique (a random part per process, then a counter)
    and rising with time, so the daemon's (sender, id) index takes each at its end instead of on
    a random page. No system call per id."""

    def __init__(self) -> None:
        self._counter = itertools.count()
        self._salt = os.urandom(6).hex()

    def fresh(self) -> str:
        return f"{time.time_ns():016x}{self._salt}{next(self._counter):08x}"

    def reseed(self) -> None:
        """A forked child must not repeat its parent's ids."""
        self._salt = os.urandom(6).hex()


_IDS = _Ids()
os.register_at_fork(after_in_child=_IDS.reseed)
_fresh_id = _IDS.fresh


def _retry_safe(method: str, params: Mapping[str, Any] | None) -> bool:
    if method in _RETRY_SAFE:
        return True
    if method == "messages.send":
        return params is not None and "id" in params
    if method == "messages.send_batch" and params is not None:  # every message has an id: stored once each
        batch = params.get("messages")
        return isinstance(batch, list) and all(isinstance(m, Mapping) and "id" in m for m in batch)
    return False


@dataclass(frozen=True)
class Session:
    """A session as the SDK hands it to handlers: its id, pool and consistent-hash key."""

    id: str
    pool: str | None = None
    key: str | None = None

    @classmethod
    def from_wire(cls, obj: Mapping[str, Any]) -> Session:
        """A ``Session`` from a session object (``sessions.open``/``show``) or event data."""
        ident = obj.get("id", obj.get("session"))
        if not isinstance(ident, str):
            raise ClawctlError(f"the daemon sent a session without an id: {dict(obj)!r:.200}")
        pool, key = obj.get("pool"), obj.get("key")
        return cls(ident, pool if isinstance(pool, str) else None, key if isinstance(key, str) else None)

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class Message:
    """A durable message sent to this agent (``message.received``): the daemon's ``id`` for it, its
    ``sender`` (an agent id, or the operator), its ``payload`` (any JSON value) and which delivery
    this is (``attempt``, 1 the first time)."""

    id: str
    sender: str
    payload: Any
    attempt: int = 1


@dataclass(frozen=True)
class PublishedEvent:
    """An event on a topic this agent subscribed to (``event.published``)."""

    topic: str
    data: Any
    sender: str


@dataclass(frozen=True)
class StateChange:
    """A write of a shared-state key this agent watches (``state.changed``): the new ``value`` and
    ``version``, and who wrote it (``by``)."""

    key: str
    value: Any
    version: int
    by: str


SessionRef = Session | str
OutgoingMessage = tuple[str, Any] | Mapping[str, Any]
"""An item of ``send_messages``: ``(to, payload)`` or ``{"to": ..., "payload": ..., "id"?: ...}``."""
OpenHandler = Callable[[Session, dict[str, Any]], None]
"""``on_open(session, state)``: a session was placed on this agent; ``state`` is what it carried over."""
MessageHandler = Callable[[Session, Any], Any]
"""``on_message(session, message) -> reply``: the return value (JSON) is the reply; raising sends an error."""
ClosingHandler = Callable[[Session, str, float], None]
"""``on_closing(session, reason, deadline)``: save state within ``deadline`` seconds; the SDK then acknowledges."""

DirectMessageHandler = Callable[[Message], None]
"""``on_direct_message(message)``: handle a durable message; returning acknowledges it, raising does not."""
EventHandler = Callable[[PublishedEvent], None]
"""``subscribe(pattern, handler)``: ``handler(event)`` for each event on a matching topic."""
ChangeHandler = Callable[[StateChange], None]
"""``watch(pattern, handler)``: ``handler(change)`` for each write of a matching shared-state key."""

_O = TypeVar("_O", bound=OpenHandler)
_M = TypeVar("_M", bound=MessageHandler)
_C = TypeVar("_C", bound=ClosingHandler)
_D = TypeVar("_D", bound=DirectMessageHandler)


def _session_id(session: SessionRef) -> str:
    return session.id if isinstance(session, Session) else session


def error_text(exc: BaseException) -> str:
    """One line naming ``exc`` for a ``sessions.reply`` error: its type and first line, at most 1024 characters."""
    text = exc.message if isinstance(exc, ClawctlError) else str(exc)
    first = text.strip().splitlines()[0].strip() if text.strip() else ""
    line = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return line if len(line) <= MAX_ERROR_TEXT else line[: MAX_ERROR_TEXT - 3] + "..."


_Key = tuple[str, str]
"""A queue of handler tasks: ("session", id), ("sender", agent id), ("subscription"|"watch", pattern)."""


class _AckedIds:
    """The (sender, message id) pairs this agent acknowledged: the newest ``limit`` in memory, and
    in the file ``path``, one JSON line each, appended and fsynced by ``add_many`` (before the SDK
    sends the ack): one write and one fsync for all the keys of a call. When the file reaches
    ``2 * limit`` lines it is rewritten with the newest ``limit`` (temporary file, fsync, rename), so
    it stays bounded. Thread-safe: ``_lock`` guards the memory (held briefly, never during I/O),
    ``_io`` the file (held during writes and fsyncs)."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self._lock = threading.Lock()
        self._io = threading.Lock()  # taken before _lock when both are needed
        self._ids: set[tuple[str, str]] = set()
        self._order: deque[tuple[str, str]] = deque()  # the same keys, oldest first
        self._lines = 0  # lines in the file
        self._fd: int | None = None
        self._torn = False  # a write failed part-way: the next one starts on a new line
        self._loaded = False

    def load(self) -> None:
        """Read the file once (an agent restarting in the same directory). A missing file is empty; an
        unreadable one is logged and ignored; a last line cut short by a crash is dropped."""
        with self._io:
            if self._loaded:
                return
            self._loaded = True
            torn = False
            newest: deque[bytes] = deque(maxlen=self.limit)  # only these are kept: parse only these
            try:
                with self.path.open("rb") as lines:
                    for line in lines:
                        if not line.endswith(b"\n"):  # the last write was cut short (a crash): drop it
                            torn = True
                            break
                        self._lines += 1
                        newest.append(line)
            except FileNotFoundError:
                return
            except OSError as exc:
                log.warning("clawctl agent: cannot read %s (%s); messages acknowledged before this start "
                            "may be handled again", self.path, exc.strerror or exc)
                return
            with self._lock:
                for line in newest:
                    key = self._parse(line)
                    if key is not None:
                        self._remember(key)
            if torn or self._lines > self.limit:
                self._torn = torn
                self._compact_quietly()

    @staticmethod
    def _parse(line: bytes) -> tuple[str, str] | None:
        try:
            value = json.loads(line)
        except ValueError:
            return None
        if isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value):
            return sys.intern(value[0]), value[1]  # few senders: share their strings
        return None

    def _remember(self, key: tuple[str, str]) -> None:
        if key in self._ids:
            return
        self._ids.add(key)
        self._order.append(key)
        while len(self._order) > self.limit:
            self._ids.discard(self._order.popleft())

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._ids

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)

    def add(self, key: tuple[str, str]) -> None:
        """``add_many([key])``."""
        self.add_many([key])

    def add_many(self, keys: Iterable[tuple[str, str]]) -> int:
        """Remember ``keys`` and append the new ones to the file with one write and one fsync, before
        returning; returns how many were new. A write that fails is logged: the keys are still
        remembered by this process."""
        with self._io:
            with self._lock:
                fresh: list[tuple[str, str]] = []
                for sender, ident in keys:
                    key = (sys.intern(sender), ident)
                    if key not in self._ids:
                        self._remember(key)
                        fresh.append(key)
            if not fresh:
                return 0
            try:
                self._append(b"".join(json.dumps(list(key)).encode() + b"\n" for key in fresh))
                self._lines += len(fresh)
            except OSError as exc:
                self._torn = True
                log.error("clawctl agent: cannot record %s in %s (%s); after a restart %s may be handled again",
                          f"acknowledged message {fresh[0][1]}" if len(fresh) == 1
                          else f"{len(fresh)} acknowledged messages", self.path, exc.strerror or exc,
                          "it" if len(fresh) == 1 else "they")
            if self._lines >= 2 * self.limit:
                self._compact_quietly()
            return len(fresh)

    def _compact_quietly(self) -> None:
        try:
            self._compact()
        except OSError as exc:
            log.error("clawctl agent: cannot rewrite %s: %s", self.path, exc.strerror or exc)

    def _append(self, data: bytes) -> None:
        if self._torn:  # a fragment may end the file: an empty line after it keeps this one whole
            data = b"\n" + data
        if self._fd is None:
            created = not self.path.exists()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            if created:
                _fsync_dir(self.path.parent)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        self._torn = False
        os.fsync(self._fd)

    def _compact(self) -> None:
        # With self._io held: the newest ``limit`` keys replace the file atomically.
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            with self._lock:
                newest = list(self._order)
            data = b"".join(json.dumps(list(key)).encode() + b"\n" for key in newest)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
        self._close_fd()
        self._lines = len(newest)
        self._torn = False

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        """Close the file (a later ``add_many`` opens it again)."""
        with self._io:
            self._close_fd()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _SessionQueues:
    """Runs tasks keyed by session (or sender, or pattern) on at most ``workers`` daemon threads,
    started only when needed: one key's tasks in submission order and never concurrently;
    different keys concurrently, round-robin."""

    def __init__(self, workers: int, name: str) -> None:
        self._workers = workers
        self._name = name
        self._cond = threading.Condition()
        self._queues: dict[_Key, deque[Callable[[], None]]] = {}  # a key is here iff ready or running
        self._ready: deque[_Key] = deque()  # keys with tasks and no thread on them, oldest first
        self._idle = 0  # threads waiting for a ready key
        self._threads: list[threading.Thread] = []
        self._stopping = False

    def submit(self, key: _Key, task: Callable[[], None]) -> None:
        """Queue ``task`` behind ``key``'s earlier tasks. Never blocks (safe in the reader thread)."""
        with self._cond:
            if self._stopping:
                return
            pending = self._queues.get(key)
            if pending is not None:
                pending.append(task)
                return
            self._queues[key] = deque((task,))
            self._schedule(key)

    def _schedule(self, key: _Key) -> None:
        # With self._cond held.
        self._ready.append(key)
        if len(self._ready) > self._idle and len(self._threads) < self._workers:
            thread = threading.Thread(target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()
        self._cond.notify()

    def _work(self) -> None:
        task: Callable[[], None] | None = None
        while True:
            with self._cond:
                if task is None:
                    self._idle += 1
                    while not self._ready and not self._stopping:
                        self._cond.wait()
                    self._idle -= 1
                    if self._stopping:
                        return
                    key = self._ready.popleft()
                    task = self._queues[key].popleft()
            try:
                task()
            except BaseException:  # a task must never end a worker  # noqa: BLE001
                log.exception("clawctl agent: an internal task failed")
            with self._cond:
                task = None
                if self._stopping:
                    return
                if not self._queues[key]:
                    del self._queues[key]
                elif self._ready:
                    self._schedule(key)  # to the back: other sessions get their turn
                else:  # nobody else waits: go on with this key here, no hand-over to another thread
                    task = self._queues[key].popleft()

    def in_worker(self) -> bool:
        """Whether the calling thread is one of the workers (a handler)."""
        with self._cond:
            return threading.current_thread() in self._threads

    def stop(self, grace: float) -> bool:
        """Drop queued tasks, let running ones finish for up to ``grace`` seconds; True if all ended."""
        with self._cond:
            self._stopping = True
            self._queues.clear()
            self._ready.clear()
            self._cond.notify_all()
            threads = list(self._threads)
        deadline = time.monotonic() + grace
        ended = True
        for thread in threads:
            if thread is threading.current_thread():
                continue
            thread.join(max(deadline - time.monotonic(), 0.0))
            ended = ended and not thread.is_alive()
        return ended


class Agent:
    """One agent's connection to its daemon, with handlers for its sessions.

    Construct it with ``Agent.from_env()`` in a program a clawctl daemon started;
    register handlers; then ``run()`` (blocking) or ``start()``/``stop()``.
    """

    def __init__(self, socket_path: str, agent_id: str, token: str, *, pool: str | None = None,
                 fleet: str | None = None, workers: int = 4, call_timeout: float = 30.0,
                 connect_timeout: float = 30.0, backoff_min: float = 0.05, backoff_max: float = 2.0,
                 stop_grace: float = 5.0, state_dir: str | os.PathLike[str] | None = None,
                 acked_limit: int = DEFAULT_ACKED_LIMIT, sleep: Callable[[float], None] | None = None,
                 rng: _random.Random | None = None, ready: Callable[[], object] | None = None) -> None:
        """An agent that is not connected yet. ``workers`` bounds concurrent handlers;
        ``call_timeout`` bounds the wait for an answer, ``connect_timeout`` the wait for a
        (re)connection; reconnects back off from ``backoff_min`` doubling to ``backoff_max``
        seconds with jitter; ``stop_grace`` is how long ``stop`` lets running handlers finish.
        ``state_dir`` (default: the working directory now) holds ``.clawctl-acked``, the ids of the
        newest ``acked_limit`` acknowledged messages. ``sleep``, ``rng`` and ``ready`` replace the
        backoff pause, its jitter source and the readiness notification (tests)."""
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if acked_limit < 1:
            raise ValueError("acked_limit must be at least 1")
        if not 0 < backoff_min <= backoff_max:
            raise ValueError("backoff needs 0 < backoff_min <= backoff_max")
        self.socket_path = socket_path
        self.agent_id = agent_id
        self.pool = pool
        self.fleet = fleet
        self.call_timeout = call_timeout
        self.connect_timeout = connect_timeout
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.stop_grace = stop_grace
        self._token = token
        self._sleep = sleep
        self._rng = rng or _random.Random()
        self._ready: Callable[[], object] = notify_ready if ready is None else ready
        self._on_open: OpenHandler | None = None
        self._on_message: MessageHandler | None = None
        self._on_closing: ClosingHandler | None = None
        self._on_direct: DirectMessageHandler | None = None
        self._subscriptions: dict[str, EventHandler] = {}  # pattern -> handler, re-sent on every connection
        self._watches: dict[str, ChangeHandler] = {}  # pattern -> handler, re-sent on every connection
        self._sessions: dict[str, Session] = {}
        self._inflight: set[str] = set()  # message ids queued or being handled: a redelivery is skipped
        self._direct_inflight: set[tuple[str, str]] = set()  # (sender, id) of durable messages, likewise,
        # until their ids are recorded on disk (then `_acked` recognises a redelivery)
        self._ack_cond = threading.Condition()  # guards the four below
        self._ack_queue: list[tuple[str, str]] = []  # handled (sender, id)s to record and acknowledge
        self._ack_thread: threading.Thread | None = None  # the flusher, started with the first ack
        self._ack_closing = False  # stop(): the flusher sends what is queued, then ends
        self._ack_busy = False  # the flusher is recording or sending a batch
        directory = Path(os.path.abspath(os.getcwd() if state_dir is None else state_dir))
        self._acked = _AckedIds(directory / ACKED_FILE, acked_limit)
        self._queues = _SessionQueues(workers, f"clawctl-agent-{agent_id}-handler")
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._conn: Connection | None = None  # said hello, published for calls
        self._connecting: Connection | None = None  # connected, hello in flight
        self._closing = False  # stop() is closing the connections: publish no more
        self._identity: Mapping[str, Any] = {}
        self._heartbeat_interval = DEFAULT_HEARTBEAT_INTERVAL
        self._connections = 0
        self._started = False
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._wake_fd: int | None = None
        self._signalled: int | None = None
        self._supervisor = threading.Thread(target=self._supervise, name=f"clawctl-agent-{agent_id}", daemon=True)

    # ------------------------------------------------------------ building
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> Agent:
        """The agent the daemon started this process as, from ``CLAWCTL_SOCKET``, ``CLAWCTL_AGENT_ID``,
        ``CLAWCTL_TOKEN`` (required) and ``CLAWCTL_POOL``/``CLAWCTL_FLEET``. Raises ``ClawctlError``
        naming every missing variable when the process was not started by a clawctl daemon.
        ``options`` go to the constructor."""
        env = os.environ if environ is None else environ
        missing = [name for name in ENV_VARS if not env.get(name)]
        if missing:
            raise ClawctlError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: this program "
                               "must be started by a clawctl daemon to use the agent SDK",
                               hint="run it as the command of an AgentPool (`clawctl apply`), or set "
                                    + ", ".join(ENV_VARS))
        return cls(env["CLAWCTL_SOCKET"], env["CLAWCTL_AGENT_ID"], env["CLAWCTL_TOKEN"],
                   pool=env.get("CLAWCTL_POOL") or None, fleet=env.get("CLAWCTL_FLEET") or None, **options)

    def on_open(self, handler: _O) -> _O:
        """Register ``handler(session, state)`` for sessions placed on this agent (usable as a decorator).
        ``state`` is the state the session carried over ({} for a new one)."""
        self._on_open = handler
        return handler

    def on_message(self, handler: _M) -> _M:
        """Register ``handler(session, message) -> reply`` (usable as a decorator). The return value
        (any JSON value) is the reply; an exception becomes an ``error`` reply and is logged."""
        self._on_message = handler
        return handler

    def on_closing(self, handler: _C) -> _C:
        """Register ``handler(session, reason, deadline)`` (usable as a decorator), called when a session
        closes; save its state there. The SDK acknowledges with ``sessions.close`` once it returns."""
        self._on_closing = handler
        return handler

    def on_direct_message(self, handler: _D) -> _D:
        """Register ``handler(message)`` for durable messages sent to this agent (usable as a decorator).
        When it returns the SDK records the message's id (``state_dir``/.clawctl-acked) and then
        acknowledges it, both batched with the other messages handled meanwhile; when it raises, the message is logged and not acknowledged: the daemon delivers it again on
        the next connection. A message whose id was acknowledged already is acknowledged again without
        calling the handler. Messages of one sender run in order, one at a time."""
        self._on_direct = handler
        return handler

    def subscribe(self, pattern: str, handler: EventHandler) -> None:
        """Call ``handler(event)`` for events published on topics matching the glob ``pattern``, one at a
        time in arrival order (per pattern). Remembered and sent again after every reconnection; before
        ``start`` it is only remembered (sent with the first connection, a refusal there is logged).
        Subscribing a pattern again replaces its handler. Raises what the daemon raised (``PolicyDenied``:
        the CommunicationPolicy's ``subscribe``), and then the pattern is forgotten."""
        self._register(self._subscriptions, "events.subscribe", pattern, handler)

    def unsubscribe(self, pattern: str) -> None:
        """Stop calling the handler of ``pattern`` (at once) and tell the daemon (when connected)."""
        with self._lock:
            known = self._subscriptions.pop(pattern, None) is not None
        if known and self._started and self.connected:
            try:
                self.call("events.unsubscribe", {"pattern": pattern})
            except DaemonUnavailable:
                pass  # the next connection does not subscribe it again

    def watch(self, pattern: str, handler: ChangeHandler) -> None:
        """Call ``handler(change)`` for each write of a shared-state key matching the glob ``pattern``
        (keys the agent may read), one at a time in order (per pattern). Re-sent after reconnections and
        refused like ``subscribe`` (``sharedState.read``)."""
        self._register(self._watches, "state.watch", pattern, handler)

    def _register(self, table: dict[str, Any], method: str, pattern: str, handler: Any) -> None:
        with self._lock:
            previous = table.get(pattern)
            table[pattern] = handler
            started = self._started
        if not started:
            return
        try:
            self.call(method, {"pattern": pattern})
        except DaemonUnavailable:
            raise  # still remembered: the next connection sends it
        except ClawctlError:
            with self._lock:
                if table.get(pattern) is handler:
                    if previous is None:
                        table.pop(pattern)
                    else:
                        table[pattern] = previous
            raise

    # ------------------------------------------------------------ lifecycle
    @property
    def connected(self) -> bool:
        """Whether a connection that said hello is up right now."""
        conn = self._conn
        return conn is not None and not conn.closed

    @property
    def identity(self) -> Mapping[str, Any]:
        """The daemon's answer to the latest successful ``hello`` ({} before the first)."""
        return self._identity

    @property
    def connections(self) -> int:
        """How many times a hello has succeeded (1 after the first connection, +1 per reconnection)."""
        return self._connections

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Block until the agent is connected (True) or ``timeout`` passes or it stops (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self.connected:
                if self._stopping.is_set():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def start(self) -> None:
        """Start connecting, heartbeating and serving events in background threads; returns at once.
        An agent starts once; after ``stop`` it cannot be started again."""
        if not self._start():
            raise ClawctlError("this agent was stopped" if self._stopping.is_set() else "this agent was already started",
                               hint="make a new Agent to connect again")

    def _start(self) -> bool:
        with self._lock:
            if self._started or self._stopping.is_set():
                return False
            self._started = True
            self._supervisor.start()  # under the lock: stop() sees an agent either not started or fully started
            return True

    def run(self) -> None:
        """Start (if not started) and block until SIGTERM/SIGINT or ``stop()``, then stop cleanly.
        Signal handlers are installed only when called from the main thread, and restored on return."""
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        previous: dict[signal.Signals, Any] = {}
        try:
            with self._lock:
                self._wake_fd = write_fd
            if threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGTERM, signal.SIGINT):
                    previous[sig] = signal.signal(sig, self._on_signal)
            self._start()  # unless started already (or stopped: then the loop ends at once)
            while not self._stopping.is_set() and self._signalled is None:
                os.read(read_fd, 64)  # a signal handler or stop() writes a byte
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)
            with self._lock:
                self._wake_fd = None
            os.close(write_fd)
            os.close(read_fd)
            self.stop()

    def _on_signal(self, signum: int, _frame: object) -> None:
        # Runs in the main thread between bytecodes: take no lock, just wake run().
        self._signalled = signum
        fd = self._wake_fd
        if fd is not None:
            try:
                os.write(fd, b"s")
            except OSError:
                pass

    def stop(self) -> None:
        """Stop: no more reconnections or new events; running handlers get ``stop_grace`` seconds to
        finish (their replies still go out), then the connection closes and the threads end.
        Idempotent and safe from any thread. From a handler it returns at once and the rest happens
        in the background, after that handler's reply."""
        with self._lock:
            first = not self._stopping.is_set()
            self._stopping.set()
            if self._wake_fd is not None:
                try:
                    os.write(self._wake_fd, b"x")
                except OSError:
                    pass
            started = self._started
            self._cond.notify_all()
        in_handler = self._queues.in_worker()
        if not first:
            if not in_handler:
                self._stopped.wait(self.stop_grace + 10.0)
            return
        if in_handler:  # it cannot wait for itself: finish the stop once this handler has replied
            threading.Thread(target=self._finish_stop, args=(started,), name=f"clawctl-agent-{self.agent_id}-stop",
                             daemon=True).start()
        else:
            self._finish_stop(started)

    def _finish_stop(self, started: bool) -> None:
        try:
            if started:
                deadline = time.monotonic() + self.stop_grace
                self._queues.stop(self.stop_grace)  # meanwhile a hello in flight may still complete
                self._stop_acks(max(deadline - time.monotonic(), 1.0))  # acks of the handlers that returned
            with self._cond:
                self._closing = True  # from here on no connection is published
                conns = [c for c in (self._conn, self._connecting) if c is not None]
                self._conn = None
                self._cond.notify_all()
            for conn in conns:
                conn.close()
            if started and threading.current_thread() is not self._supervisor:
                self._supervisor.join(self.stop_grace + 10.0)
            self._acked.close()
        finally:
            self._stopped.set()

    @property
    def stopping(self) -> bool:
        """Whether ``stop`` was called (or a signal received by ``run``)."""
        return self._stopping.is_set() or self._signalled is not None

    # ------------------------------------------------------------ calls
    def call(self, method: str, params: Mapping[str, Any] | None = None, *, timeout: float | None = None) -> Any:
        """Call ``method`` on the daemon and return its result. Waits up to ``connect_timeout`` for a
        connection while disconnected, then up to ``timeout`` (default ``call_timeout``) for the answer.
        Raises the daemon's ``ClawctlError`` subclass; ``DaemonUnavailable`` when it does not answer in
        time or the agent is stopping; ``ConnectionClosed`` when the connection drops during a call that
        is not safe to repeat (``sessions.open``, ``sessions.send``: it may or may not have happened)."""
        if not self._started:
            raise ClawctlError(f"{method}: the agent is not started", hint="call agent.start() or agent.run() first")
        wait = self.call_timeout if timeout is None else timeout
        connect_deadline = time.monotonic() + self.connect_timeout
        while True:
            conn = self._wait_connection(method, connect_deadline)
            try:
                return conn.call(method, params, timeout=wait)
            except ConnectionClosed:
                if not _retry_safe(method, params) or self._stopping.is_set():
                    raise

    def _wait_connection(self, method: str, deadline: float) -> Connection:
        with self._cond:
            while True:
                conn = self._conn
                if conn is not None and not conn.closed:
                    return conn
                if self._closing or (self._stopping.is_set() and self._connecting is None):
                    raise DaemonUnavailable(f"{method}: the agent is stopping and no longer connected")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DaemonUnavailable(f"{method}: not connected to the daemon within "
                                            f"{self.connect_timeout:g}s", hint=f"is the daemon running? "
                                            f"(socket {self.socket_path})")
                self._cond.wait(remaining)

    def get_state(self, session: SessionRef) -> dict[str, Any]:
        """The state of a session this agent owns (an object, {} when never set)."""
        result = self.call("session.state.get", {"session": _session_id(session)})
        data = result.get("data") if isinstance(result, Mapping) else None
        return dict(data) if isinstance(data, Mapping) else {}

    def set_state(self, session: SessionRef, state: Mapping[str, Any]) -> int:
        """Replace the state of a session this agent owns with ``state``; returns its new version."""
        result = self.call("session.state.set", {"session": _session_id(session), "state": dict(state)})
        version = result.get("version") if isinstance(result, Mapping) else None
        return version if isinstance(version, int) else 0

    def open_session(self, pool: str, key: str | None = None, *, fleet: str | None = None,
                     parent: SessionRef | None = None) -> Session:
        """Open a session in ``pool`` (placed by its balancing strategy; ``key`` for consistent-hash
        pools) and return it. With ``parent`` (a session this agent owns) it is that session's child:
        closing the parent closes it. The daemon checks the CommunicationPolicy (``PolicyDenied``)."""
        params: dict[str, Any] = {"pool": pool}
        if key is not None:
            params["key"] = key
        if fleet is not None:
            params["fleet"] = fleet
        if parent is not None:
            params["parent"] = _session_id(parent)
        return Session.from_wire(self.call("sessions.open", params))

    def send(self, session: SessionRef, message: Any, timeout: float | None = None) -> Any:
        """Send ``message`` (any JSON value) to ``session``'s owner and return its reply. ``timeout``
        (seconds, ≤ 3600) bounds the wait for the reply (default: the daemon's). Raises what the daemon
        raised; a ``ClawctlError`` when the owner answered with an error."""
        params: dict[str, Any] = {"session": _session_id(session), "message": message}
        if timeout is not None:
            params["timeout"] = timeout
        wait = SEND_MAX_WAIT if timeout is None else timeout + SEND_MARGIN
        result = self.call("sessions.send", params, timeout=wait)
        return result.get("reply") if isinstance(result, Mapping) else None

    def close_session(self, session: SessionRef, *, graceful: bool | None = None) -> dict[str, Any]:
        """Close a session this agent owns (or opened); returns the session object after the close."""
        params: dict[str, Any] = {"session": _session_id(session)}
        if graceful is not None:
            params["graceful"] = graceful
        result = self.call("sessions.close", params)
        return dict(result) if isinstance(result, Mapping) else {}

    def show_session(self, session: SessionRef, *, history: int | None = None) -> dict[str, Any]:
        """A session object with its ``data`` (state) and ``history`` (own sessions only)."""
        params: dict[str, Any] = {"session": _session_id(session)}
        if history is not None:
            params["history"] = history
        result = self.call("sessions.show", params)
        return dict(result) if isinstance(result, Mapping) else {}

    def list_sessions(self, **filters: Any) -> list[dict[str, Any]]:
        """This agent's sessions, newest first; ``filters``: ``pool``, ``fleet``, ``state``, ``limit``."""
        result = self.call("sessions.list", filters)
        sessions = result.get("sessions") if isinstance(result, Mapping) else None
        return [dict(s) for s in sessions] if isinstance(sessions, list) else []

    def send_message(self, to: str, payload: Any, *, id: str | None = None) -> str:
        """Send a durable message to ``to`` (``"agent/ID"`` or ``"pool/NAME"``); returns its message id
        once the daemon stored it. ``id`` (≤ 128 characters) is this sender's id for the message: the
        daemon stores a message once per id, so a call repeated with the same id after an error is
        safe. Without one the SDK makes a fresh id and reuses it when the connection drops during the
        call (it is sent again on the new connection). Policy: ``messages`` (``PolicyDenied``)."""
        client_id = _fresh_id() if id is None else id
        result = self.call("messages.send", {"to": to, "payload": payload, "id": client_id})
        message_id = result.get("message_id") if isinstance(result, Mapping) else None
        return message_id if isinstance(message_id, str) else client_id

    def send_messages(self, items: Iterable[OutgoingMessage]) -> list[str | ClawctlError]:
        """Send many durable messages with few requests (``messages.send_batch``, up to ``MAX_BATCH``
        = 1000 per request); returns, per item and in order, its message id once the daemon stored it,
        or the ``ClawctlError`` that refused it (``PolicyDenied``, ``NotFound``...). Items are
        ``(to, payload)`` pairs or ``{"to", "payload", "id"?}`` mappings; ``id`` is as in
        ``send_message`` and every item without one gets a fresh id, so a request is sent again with the
        same ids when the connection drops during it (stored once). When a whole request fails
        (``DaemonUnavailable`` after ``connect_timeout``, the agent stopping, ``RateLimited``...) its
        items and all later ones hold that error and the later ones are not sent: to retry without
        duplicates, pass your own ids and send the failed items again. A request that would exceed
        the frame limit is split; a single message too large for a frame gets a ``ProtocolError``.
        Raises ``TypeError``/``ValueError`` for a malformed item, before anything is sent."""
        wire: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            if isinstance(item, Mapping):
                if "to" not in item or "payload" not in item or not set(item) <= {"to", "payload", "id"}:
                    raise ValueError(f"send_messages: item {index} needs 'to' and 'payload' (and maybe 'id'), "
                                     f"got keys {sorted(item)!r}")
                to, payload, ident = item["to"], item["payload"], item.get("id")
            elif isinstance(item, tuple) and len(item) == 2:
                (to, payload), ident = item, None
            else:
                raise TypeError(f"send_messages: item {index} is not a (to, payload) pair or a mapping")
            if not isinstance(to, str) or not (ident is None or isinstance(ident, str)):
                raise TypeError(f"send_messages: item {index}: 'to' and 'id' must be strings")
            wire.append({"to": to, "payload": payload, "id": _fresh_id() if ident is None else ident})
        results: list[str | ClawctlError] = []
        for start in range(0, len(wire), MAX_BATCH):
            chunk = wire[start:start + MAX_BATCH]
            try:
                results += self._send_batch(chunk)
            except ClawctlError as exc:  # the whole request failed: it and the rest are not sent
                results += [exc] * (len(wire) - start)
                break
        return results

    def _send_batch(self, chunk: list[dict[str, Any]]) -> list[str | ClawctlError]:
        try:
            result = self.call("messages.send_batch", {"messages": chunk})
        except ProtocolError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, FrameError) and cause.fault is FrameFault.TOO_LARGE):
                raise
            if len(chunk) == 1:  # this message alone does not fit in a frame
                return [exc]
            half = len(chunk) // 2
            return self._send_batch(chunk[:half]) + self._send_batch(chunk[half:])
        answers = result.get("results") if isinstance(result, Mapping) else None
        if not isinstance(answers, list) or len(answers) != len(chunk):
            raise ProtocolError(f"messages.send_batch: the daemon answered {len(chunk)} messages with "
                                f"{len(answers) if isinstance(answers, list) else 'no'} results")
        out: list[str | ClawctlError] = []
        for sent, answer in zip(chunk, answers):
            if isinstance(answer, Mapping) and "error" in answer:
                try:
                    out.append(from_wire(parse_wire_error(answer["error"])))
                except ProtocolError as exc:
                    out.append(exc)
                continue
            message_id = answer.get("message_id") if isinstance(answer, Mapping) else None
            out.append(message_id if isinstance(message_id, str) else sent["id"])
        return out

    def publish(self, topic: str, data: Any = None) -> int:
        """Publish an event on ``topic`` (any JSON ``data``); returns how many subscribers it was sent to.
        At most once: not repeated when the connection drops (``ConnectionClosed``). Policy: ``publish``."""
        params: dict[str, Any] = {"topic": topic}
        if data is not None:
            params["data"] = data
        result = self.call("events.publish", params)
        delivered = result.get("delivered") if isinstance(result, Mapping) else None
        return delivered if isinstance(delivered, int) else 0

    def state_get(self, key: str) -> tuple[Any, int]:
        """A shared-state key's ``(value, version)``; ``(None, 0)`` if never written. Policy: ``read``."""
        result = self.call("state.get", {"key": key})
        if not isinstance(result, Mapping):
            return None, 0
        version = result.get("version")
        return result.get("value"), version if isinstance(version, int) else 0

    def state_set(self, key: str, value: Any, expected_version: int) -> int:
        """Write ``value`` to ``key`` if its version is still ``expected_version`` (0: never written);
        returns the new version. Raises ``Conflict`` when another writer came first, and
        ``ConnectionClosed`` when the connection dropped during the call (written or not: read again).
        Policy: ``write``."""
        result = self.call("state.set", {"key": key, "value": value, "expected_version": expected_version})
        version = result.get("version") if isinstance(result, Mapping) else None
        return version if isinstance(version, int) else 0

    def state_update(self, key: str, fn: Callable[[Any], Any], *, retries: int = 10) -> tuple[Any, int]:
        """Read ``key``, compute ``fn(value)`` (``None`` if never written) and compare-and-set it; on
        ``Conflict`` read and compute again, up to ``retries`` more times (then the ``Conflict`` is
        raised). ``fn`` may therefore run more than once: keep it free of side effects. Returns the
        written ``(value, version)``."""
        if retries < 0:
            raise ValueError("retries must be at least 0")
        for attempt in range(retries + 1):
            value, version = self.state_get(key)
            new = fn(value)
            try:
                return new, self.state_set(key, new, version)
            except Conflict:
                if attempt == retries:
                    raise
                log.debug("clawctl agent %s: %s changed meanwhile; updating again", self.agent_id, key)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ events
    def _on_event(self, event: Event) -> None:
        # In the connection's reader thread: queue, never block.
        data = event.data
        if event.event == "message.received":
            self._on_direct_event(data)
            return
        if event.event == "event.published":
            self._on_published(data)
            return
        if event.event == "state.changed":
            self._on_changed(data)
            return
        sid = data.get("session")
        if not isinstance(sid, str):
            log.warning("clawctl agent: ignored a %s event without a session", event.event)
            return
        if event.event == "session.opened":
            self._queues.submit(("session", sid), lambda: self._handle_opened(sid, data))
        elif event.event == "session.message":
            message_id = data.get("message_id")
            if isinstance(message_id, str):
                with self._lock:
                    if message_id in self._inflight:  # redelivered (e.g. on a new connection) while queued
                        log.debug("clawctl agent: message %s is already being handled", message_id)
                        return
                    self._inflight.add(message_id)
            self._queues.submit(("session", sid), lambda: self._handle_message(sid, data))
        elif event.event == "session.closing":
            self._queues.submit(("session", sid), lambda: self._handle_closing(sid, data))
        else:
            log.debug("clawctl agent: ignored unknown event %s", event.event)

    def _on_direct_event(self, data: Mapping[str, Any]) -> None:
        message_id, sender, attempt = data.get("message_id"), data.get("from"), data.get("attempt")
        if not isinstance(message_id, str):
            log.warning("clawctl agent %s: ignored a durable message without an id", self.agent_id)
            return
        message = Message(message_id, sender if isinstance(sender, str) else "", data.get("payload"),
                          attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else 1)
        key = (message.sender, message.id)
        with self._lock:
            if key in self._direct_inflight:  # redelivered (on a new connection) while queued or handled
                log.debug("clawctl agent: message %s is already being handled", message_id)
                return
            self._direct_inflight.add(key)
        self._queues.submit(("sender", message.sender), lambda: self._handle_direct(message))

    def _handle_direct(self, message: Message) -> None:
        key = (message.sender, message.id)
        queued = False
        try:
            if key in self._acked:
                log.debug("clawctl agent %s: message %s was handled already; acknowledging it again",
                          self.agent_id, message.id)
            else:
                handler = self._on_direct
                if handler is None:
                    log.warning("clawctl agent %s: no on_direct_message handler; message %s from %s is not "
                                "acknowledged", self.agent_id, message.id, message.sender or "?")
                    return
                try:
                    handler(message)
                except Exception:
                    log.exception("clawctl agent %s: on_direct_message failed for message %s from %s (attempt "
                                  "%d); not acknowledged, the daemon delivers it again on the next connection",
                                  self.agent_id, message.id, message.sender or "?", message.attempt)
                    return
            self._queue_ack(key)  # the flusher records it on disk, then acknowledges it
            queued = True
        finally:
            if not queued:
                with self._lock:
                    self._direct_inflight.discard(key)

    # ------------------------------------------------------------ acknowledgements
    def _queue_ack(self, key: tuple[str, str]) -> None:
        """Hand a handled message to the flusher (never blocks on I/O)."""
        with self._ack_cond:
            self._ack_queue.append(key)
            if self._ack_thread is None:
                self._ack_thread = threading.Thread(target=self._flush_acks_forever, daemon=True,
                                                    name=f"clawctl-agent-{self.agent_id}-acks")
                self._ack_thread.start()
            elif not self._ack_busy:
                self._ack_cond.notify()

    def _flush_acks_forever(self) -> None:
        # The flusher: whenever it is idle and something is queued, it takes everything queued
        # (batches form by themselves under load; a lone message goes at once), records the ids
        # with one write and fsync, then acknowledges them with one messages.ack per 1000.
        while True:
            with self._ack_cond:
                self._ack_busy = False
                while not self._ack_queue:
                    if self._ack_closing:
                        return
                    self._ack_cond.wait()
                batch, self._ack_queue = self._ack_queue, []
                self._ack_busy = True
            try:
                self._flush_acks(batch)
            except BaseException:  # the flusher must not die  # noqa: BLE001
                log.exception("clawctl agent %s: acknowledging %d messages failed", self.agent_id, len(batch))

    def _flush_acks(self, batch: list[tuple[str, str]]) -> None:
        try:
            self._acked.add_many(batch)  # on disk before the ack: a restart does not hand them over again
        finally:
            # From here a redelivery of these is recognised as acknowledged (``_acked``) and only
            # acknowledged again; dropping it as in flight could lose it if this ack is lost.
            with self._lock:
                self._direct_inflight.difference_update(batch)
        ids = list(dict.fromkeys(mid for _, mid in batch))
        for start in range(0, len(ids), MAX_BATCH):
            self._send_acks(ids[start:start + MAX_BATCH])

    def _send_acks(self, ids: list[str]) -> None:
        # messages.ack is safe to repeat: call() sends it again on a new connection if this one drops.
        params: dict[str, Any] = {"message_id": ids[0]} if len(ids) == 1 else {"message_ids": ids}
        try:
            self.call("messages.ack", params)
        except ProtocolError as exc:
            if len(ids) == 1 or isinstance(exc.__cause__, FrameError):
                self._ack_failed(ids, exc)
                return
            log.debug("clawctl agent %s: messages.ack with message_ids refused (%s); acknowledging one by one",
                      self.agent_id, exc.message)  # a daemon that predates message_ids
            for mid in ids:
                try:
                    self.call("messages.ack", {"message_id": mid})
                except ClawctlError as one:
                    self._ack_failed([mid], one)
        except ClawctlError as exc:
            self._ack_failed(ids, exc)

    def _ack_failed(self, ids: list[str], exc: ClawctlError) -> None:
        what = f"message {ids[0]}" if len(ids) == 1 else f"{len(ids)} messages (the first {ids[0]})"
        log.warning("clawctl agent %s: could not acknowledge %s: %s", self.agent_id, what, exc.message)

    def _stop_acks(self, timeout: float) -> None:
        """Let the flusher send what is queued (for up to ``timeout`` seconds), then end it."""
        with self._ack_cond:
            self._ack_closing = True
            self._ack_cond.notify_all()
            thread = self._ack_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(timeout, 0.0))

    def _on_published(self, data: Mapping[str, Any]) -> None:
        topic, sender = data.get("topic"), data.get("from")
        if not isinstance(topic, str):
            log.warning("clawctl agent %s: ignored an event without a topic", self.agent_id)
            return
        event = PublishedEvent(topic, data.get("data"), sender if isinstance(sender, str) else "")
        self._fan_out("subscription", self._subscriptions, topic, event)

    def _on_changed(self, data: Mapping[str, Any]) -> None:
        key, version, by = data.get("key"), data.get("version"), data.get("by")
        if not isinstance(key, str):
            log.warning("clawctl agent %s: ignored a state change without a key", self.agent_id)
            return
        change = StateChange(key, data.get("value"), version if isinstance(version, int) else 0,
                             by if isinstance(by, str) else "")
        self._fan_out("watch", self._watches, key, change)

    def _fan_out(self, kind: str, table: Mapping[str, Callable[[Any], None]], name: str, value: Any) -> None:
        # One task per local pattern matching ``name``, queued by pattern (the event does not say which
        # pattern the daemon matched). The handler is looked up when it runs: after unsubscribe, none.
        with self._lock:
            patterns = [pattern for pattern in table if glob_match(pattern, name)]
        if not patterns:
            log.debug("clawctl agent %s: no %s handler for %s", self.agent_id, kind, name)
        for pattern in patterns:
            self._queues.submit((kind, pattern), partial(self._run_pattern, kind, table, pattern, name, value))

    def _run_pattern(self, kind: str, table: Mapping[str, Callable[[Any], None]], pattern: str, name: str,
                     value: Any) -> None:
        with self._lock:
            handler = table.get(pattern)
        if handler is None:
            return
        try:
            handler(value)
        except Exception:
            log.exception("clawctl agent %s: the %s handler of %r failed on %s", self.agent_id, kind, pattern, name)

    def _session(self, sid: str) -> Session:
        with self._lock:
            known = self._sessions.get(sid)
        return known if known is not None else Session(sid, self.pool)

    def _handle_opened(self, sid: str, data: Mapping[str, Any]) -> None:
        pool, key, state = data.get("pool"), data.get("key"), data.get("state")
        session = Session(sid, pool if isinstance(pool, str) else self.pool, key if isinstance(key, str) else None)
        with self._lock:
            self._sessions[sid] = session
        handler = self._on_open
        if handler is None:
            return
        try:
            handler(session, dict(state) if isinstance(state, Mapping) else {})
        except Exception:
            log.exception("clawctl agent %s: on_open failed for session %s", self.agent_id, sid)

    def _handle_message(self, sid: str, data: Mapping[str, Any]) -> None:
        message_id = data.get("message_id")
        if not isinstance(message_id, str):
            log.warning("clawctl agent %s: ignored a message without an id in session %s", self.agent_id, sid)
            return
        try:
            self._answer(sid, message_id, data.get("message"))
        finally:
            with self._lock:
                self._inflight.discard(message_id)

    def _answer(self, sid: str, message_id: str, message: Any) -> None:
        session = self._session(sid)
        handler = self._on_message
        params: dict[str, Any] = {"session": sid, "message_id": message_id}
        if handler is None:
            params["error"] = f"agent {self.agent_id} has no message handler"
        else:
            try:
                params["message"] = handler(session, message)
            except Exception as exc:
                log.exception("clawctl agent %s: on_message failed for session %s, message %s",
                              self.agent_id, sid, message_id)
                params["error"] = error_text(exc)
        try:
            self.call("sessions.reply", params)
        except ClawctlError as exc:
            if "message" in params and isinstance(exc.__cause__, FrameError):  # the reply itself cannot be sent
                log.error("clawctl agent %s: the reply to message %s cannot be sent: %s",
                          self.agent_id, message_id, exc.message)
                params.pop("message")
                params["error"] = error_text(exc)
                self._reply_quietly(params)
            else:
                log.warning("clawctl agent %s: the reply to message %s was not delivered: %s",
                            self.agent_id, message_id, exc.message)

    def _reply_quietly(self, params: Mapping[str, Any]) -> None:
        try:
            self.call("sessions.reply", params)
        except ClawctlError as exc:
            log.warning("clawctl agent %s: the error reply to message %s was not delivered: %s",
                        self.agent_id, params.get("message_id"), exc.message)

    def _handle_closing(self, sid: str, data: Mapping[str, Any]) -> None:
        session = self._session(sid)
        reason, deadline = data.get("reason"), data.get("deadline")
        handler = self._on_closing
        if handler is not None:
            try:
                handler(session, reason if isinstance(reason, str) else "",
                        float(deadline) if isinstance(deadline, (int, float)) else 0.0)
            except Exception:
                log.exception("clawctl agent %s: on_closing failed for session %s", self.agent_id, sid)
        with self._lock:
            self._sessions.pop(sid, None)
        try:
            self.call("sessions.close", {"session": sid})
        except ClawctlError as exc:
            log.warning("clawctl agent %s: could not acknowledge the close of session %s: %s",
                        self.agent_id, sid, exc.message)

    # ------------------------------------------------------------ connection
    def _supervise(self) -> None:
        self._acked.load()  # before the first connection: its deliveries are checked against it
        delay = self.backoff_min
        failures = 0
        while not self._stopping.is_set():
            try:
                conn, lost = self._connect_once()
            except ClawctlError as exc:
                failures += 1
                if failures == 1:
                    log.warning("clawctl agent %s: cannot reach the daemon (%s); retrying with backoff",
                                self.agent_id, exc.message)
                self._pause(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            if failures:
                log.warning("clawctl agent %s: connected after %d failed attempts", self.agent_id, failures)
            failures = 0
            up = time.monotonic()
            self._heartbeat_until_closed(conn, lost)
            with self._cond:
                if self._conn is conn:
                    self._conn = None
                self._cond.notify_all()  # callers waiting while stopping must not wait for a reconnection
            conn.close()
            if self._stopping.is_set():
                break
            log.warning("clawctl agent %s: lost the connection to the daemon; reconnecting", self.agent_id)
            if time.monotonic() - up >= self.backoff_max:
                delay = self.backoff_min  # it was a healthy connection: start over
            self._pause(delay)  # never hammer a daemon that accepts then drops us
            delay = min(delay * 2, self.backoff_max)

    def _pause(self, delay: float) -> None:
        jittered = delay * (0.5 + 0.5 * self._rng.random())  # "equal jitter": in [delay/2, delay]
        if self._sleep is not None:
            self._sleep(jittered)
        else:
            self._stopping.wait(jittered)

    def _connect_once(self) -> tuple[Connection, threading.Event]:
        """Connect, say hello and publish the connection; the event is set when it closes."""
        lost = threading.Event()
        conn = Connection.connect(self.socket_path, on_event=self._on_event, on_close=lost.set)
        with self._lock:
            closing = self._closing
            if not closing:
                self._connecting = conn
        if closing:
            conn.close()
            raise DaemonUnavailable("the agent is stopping")
        try:
            identity = conn.hello(agent_id=self.agent_id, token=self._token, client=CLIENT,
                                  timeout=self.call_timeout)
            self._restore(conn)
        except ClawctlError:
            conn.close()
            raise
        finally:
            with self._cond:
                self._connecting = None
                self._cond.notify_all()
        interval = identity.get("heartbeat_interval")
        self._heartbeat_interval = (float(interval) if isinstance(interval, (int, float)) and interval > 0
                                    else DEFAULT_HEARTBEAT_INTERVAL)
        with self._cond:
            closing = self._closing  # stopping alone is no reason: running handlers may still reply on it
            if not closing:
                self._publish(conn, identity)
        if closing:
            conn.close()
            raise DaemonUnavailable("the agent is stopping")
        try:
            self._ready()
        except Exception:
            log.exception("clawctl agent %s: could not notify readiness", self.agent_id)
        return conn, lost

    def _restore(self, conn: Connection) -> None:
        """Subscribe and watch again on a new connection (the daemon keeps them per connection), before
        it is published: once ``connected``, they are in place. A refusal is logged and the pattern kept."""
        with self._lock:
            wanted = [("events.subscribe", p) for p in self._subscriptions]
            wanted += [("state.watch", p) for p in self._watches]
        for method, pattern in wanted:
            try:
                conn.call(method, {"pattern": pattern}, timeout=self.call_timeout)
            except DaemonUnavailable:
                raise  # the connection is gone or hangs: connect again
            except ClawctlError as exc:
                log.warning("clawctl agent %s: %s %r refused: %s", self.agent_id, method, pattern, exc.message)

    def _publish(self, conn: Connection, identity: Mapping[str, Any]) -> None:
        """Make ``conn`` the one calls use (with ``self._cond`` held)."""
        self._identity = identity
        for name in ("pool", "fleet"):
            value = identity.get(name)
            if isinstance(value, str) and getattr(self, name) is None:
                setattr(self, name, value)
        self._conn = conn
        self._connections += 1
        self._cond.notify_all()

    def _heartbeat_until_closed(self, conn: Connection, lost: threading.Event) -> None:
        while not lost.wait(self._heartbeat_interval):
            try:
                conn.call("heartbeat", timeout=max(self._heartbeat_interval * 2, 5.0))
            except ConnectionClosed:
                return
            except ClawctlError as exc:
                log.warning("clawctl agent %s: heartbeat failed: %s", self.agent_id, exc.message)
