"""A fake clawctl daemon for SDK tests: a real AF_UNIX socket server in threads that speaks
the framing of ``clawctl.protocol.framing`` and checks every request against the method
table (``methods.check_call``), so an SDK request the real daemon would refuse fails here
too. It authenticates agents by token only, keeps sessions and their state in memory,
routes ``sessions.send`` to the owner's connection and records every request.

Issue 6: it stores durable messages (once per sender id), pushes ``message.received``
to the recipient and again, unacknowledged ones, after each of its hellos; it keeps
subscriptions and watches per connection, publishes events to matching subscribers
(the daemon's ``glob_match``), and keeps shared state with compare-and-set. ``denied`` methods are
refused with ``PolicyDenied``; ``lose_answer`` drops a connection instead of answering.
``messages.send_batch`` answers each message on its own (``refuse_targets``: targets refused
with ``PolicyDenied`` per message); ``messages.ack`` takes ``message_id`` or ``message_ids``.

It can stop and start again on the same path (a daemon restart) and drop its
connections while listening. Nothing here sleeps to wait: tests wait on conditions.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from clawctl.errors import ClawctlError, Conflict, NotFound, PolicyDenied, ProtocolError, Unauthenticated
from clawctl.policies.access import glob_match
from clawctl.protocol import methods
from clawctl.protocol.methods import MAX_BATCH
from clawctl.protocol.framing import FrameDecoder, FrameError, encode_frame
from clawctl.protocol.messages import PROTOCOL_VERSION, error_response, parse_request, to_wire

PATIENCE = 30.0
"""Upper bound for waits that normally end in milliseconds (a loaded CI VM can be very slow)."""


@dataclass
class Record:
    """One request the fake received: on which connection (1, 2, ...), from whom, what."""

    conn: int
    agent_id: str | None
    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Client:
    number: int
    sock: socket.socket
    write: threading.Lock = field(default_factory=threading.Lock)
    agent_id: str | None = None
    closed: bool = False
    subscriptions: set[str] = field(default_factory=set)
    watches: set[str] = field(default_factory=set)

    def send(self, message: Mapping[str, Any]) -> None:
        frame = encode_frame(message)
        with self.write:
            try:
                self.sock.sendall(frame)
            except OSError:
                self.closed = True

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class FakeDaemon:
    """See the module docstring. ``heartbeat_interval`` is what hello answers."""

    def __init__(self, path: str, *, heartbeat_interval: float = 0.05, fleet: str = "test") -> None:
        self.path = path
        self.heartbeat_interval = heartbeat_interval
        self.fleet = fleet
        self.agents: dict[str, tuple[str, str]] = {}  # agent id -> (pool, token)
        self.records: list[Record] = []
        self.states: dict[str, tuple[dict[str, Any], int]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.replies: dict[str, dict[str, Any]] = {}  # message id -> sessions.reply params
        self.before_hello: Callable[[str | None], None] | None = None
        self.messages: dict[str, dict[str, Any]] = {}  # message id -> message (see _store_message)
        self.sender_ids: dict[tuple[str, str], str] = {}  # (sender, sender's id) -> message id
        self.shared: dict[str, tuple[Any, int]] = {}  # shared-state key -> (value, version)
        self.denied: set[str] = set()  # methods refused with PolicyDenied (a CommunicationPolicy)
        self.refuse_targets: set[str] = set()  # message targets refused per message with PolicyDenied
        self.on_request: Callable[[Record], None] | None = None  # sees each request before it is handled
        self.lose_answer: Callable[[Record], bool] | None = None  # True: drop the connection, no answer
        self.cond = threading.Condition()
        self._clients: list[_Client] = []
        self._numbers = itertools.count(1)
        self._ids = itertools.count(1)
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []  # failures inside the fake itself (a test asserts none)

    # ------------------------------------------------------------ control
    def add_agent(self, agent_id: str, pool: str, token: str | None = None) -> dict[str, str]:
        """Register an agent; returns the environment a daemon would give its process."""
        token = token or f"token-of-{agent_id}"
        self.agents[agent_id] = (pool, token)
        return {"CLAWCTL_SOCKET": self.path, "CLAWCTL_AGENT_ID": agent_id, "CLAWCTL_TOKEN": token,
                "CLAWCTL_POOL": pool, "CLAWCTL_FLEET": self.fleet}

    def start(self) -> None:
        """Listen on ``path`` (again, after ``stop``)."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(64)
        listener.settimeout(0.05)
        self._listener = listener
        self._acceptor = self._spawn(self._accept_loop, listener)

    def stop(self) -> None:
        """Stop listening, drop every connection and remove the socket file (a daemon going away)."""
        listener, self._listener = self._listener, None
        if self._acceptor is not None:
            self._acceptor.join(PATIENCE)  # it notices within one accept timeout; then close its socket
            self._acceptor = None
        if listener is not None:
            listener.close()
        self.drop()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        for thread in list(self._threads):
            if thread is not threading.current_thread():
                thread.join(PATIENCE)
        self._threads = [t for t in self._threads if t.is_alive()]

    def drop(self) -> None:
        """Close every client connection (the agents see ConnectionClosed), keep listening."""
        with self.cond:
            clients = list(self._clients)
        for client in clients:
            client.close()

    def calls(self, method: str | None = None, agent_id: str | None = None) -> list[Record]:
        """The recorded requests, optionally only of ``method`` and/or from ``agent_id``."""
        with self.cond:
            return [r for r in self.records
                    if (method is None or r.method == method) and (agent_id is None or r.agent_id == agent_id)]

    def wait(self, predicate: Callable[[], Any], what: str, timeout: float = PATIENCE) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked on every request and at least every 50 ms)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
                self.cond.wait(min(remaining, 0.05))

    def connected_agents(self) -> set[str]:
        """Agents with a live connection that said hello."""
        with self.cond:
            return {c.agent_id for c in self._clients if c.agent_id is not None and not c.closed}

    def client_of(self, agent_id: str, timeout: float = PATIENCE) -> _Client:
        """The agent's newest live connection that said hello (waits for one)."""
        def live() -> _Client | None:
            for client in reversed(self._clients):
                if client.agent_id == agent_id and not client.closed:
                    return client
            return None
        return self.wait(live, f"{agent_id} to be connected", timeout)

    def push(self, agent_id: str, event: str, data: Mapping[str, Any]) -> None:
        """Send an event to the agent's live connection."""
        self.client_of(agent_id).send({"event": event, "data": dict(data)})

    def open_session(self, pool: str, key: str | None = None, state: Mapping[str, Any] | None = None,
                     agent_id: str | None = None, announce: bool = True) -> str:
        """Open a session on ``agent_id`` (default: the first agent of ``pool``) and push session.opened
        (unless not ``announce``: as if the agent had missed it)."""
        owner = agent_id or next(a for a, (p, _) in self.agents.items() if p == pool)
        sid = f"s-{next(self._ids)}"
        with self.cond:
            self.sessions[sid] = {"id": sid, "fleet": self.fleet, "pool": pool, "agent_id": owner, "key": key,
                                  "state": "Open"}
            self.states[sid] = (dict(state or {}), 0)
        data: dict[str, Any] = {"session": sid, "pool": pool, "state": dict(state or {})}
        if key is not None:
            data["key"] = key
        if announce:
            self.push(owner, "session.opened", data)
        return sid

    def post(self, sid: str, message: Any) -> str:
        """Push a message to the session's owner; returns its message id (see ``reply_to``)."""
        mid = f"m-{next(self._ids)}"
        self.push(self.sessions[sid]["agent_id"], "session.message",
                  {"session": sid, "message_id": mid, "message": message})
        return mid

    def send_direct(self, to_agent: str, payload: Any, sender: str = "sender-0", sender_id: str | None = None) -> str:
        """Store a durable message from ``sender`` to ``to_agent`` and push it if connected; its id."""
        return self._store_message(sender, sender_id, to_agent, f"agent/{to_agent}", payload)[0]

    def redeliver(self, mid: str) -> None:
        """Push message ``mid`` to its recipient again (as a daemon might, e.g. after a lost ack)."""
        with self.cond:
            message = self.messages[mid]
            message["attempts"] += 1
            data = self._received(message)
        self.push(message["recipient"], "message.received", data)

    def acked(self) -> list[str]:
        """The message ids acknowledged, in order (repeats included; a batch ack gives each of its ids)."""
        return [mid for r in self.calls("messages.ack") for mid in ack_ids(r.params)]

    def publish(self, topic: str, data: Any = None, sender: str = "pub-0") -> int:
        """Send ``event.published`` to every live connection subscribed to a matching pattern."""
        event = {"topic": topic, "data": data, "from": sender}
        with self.cond:
            targets = [c for c in self._clients if not c.closed and any(glob_match(p, topic) for p in c.subscriptions)]
        for client in targets:
            client.send({"event": "event.published", "data": event})
        return len(targets)

    def reply_to(self, mid: str, timeout: float = PATIENCE) -> dict[str, Any]:
        """The sessions.reply params answering message ``mid`` (waits for them)."""
        return self.wait(lambda: self.replies.get(mid), f"the reply to {mid}", timeout)

    def message(self, sid: str, message: Any, timeout: float = PATIENCE) -> dict[str, Any]:
        """``post`` then ``reply_to``."""
        return self.reply_to(self.post(sid, message), timeout)

    # ------------------------------------------------------------ serving
    def _spawn(self, target: Callable[..., None], *args: Any) -> threading.Thread:
        def guarded() -> None:
            try:
                target(*args)
            except BaseException as exc:  # noqa: BLE001 - reported by the test, not lost in a thread
                self.errors.append(exc)
        thread = threading.Thread(target=guarded, daemon=True, name=f"fake-daemon-{target.__name__}")
        self._threads.append(thread)
        thread.start()
        return thread

    def _accept_loop(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(None)
            client = _Client(next(self._numbers), sock)
            with self.cond:
                self._clients.append(client)
            self._spawn(self._serve, client)

    def _serve(self, client: _Client) -> None:
        decoder = FrameDecoder()
        try:
            while not client.closed:
                try:
                    chunk = client.sock.recv(65536)
                except OSError:
                    break
                if not chunk:
                    break
                try:
                    frames = decoder.feed(chunk)
                except FrameError as exc:
                    raise AssertionError(f"the SDK sent a bad frame: {exc}") from exc
                for obj in frames:
                    self._request(client, obj)
        finally:
            client.closed = True
            client.sock.close()
            with self.cond:
                self.cond.notify_all()

    def _request(self, client: _Client, obj: dict[str, Any]) -> None:
        request = parse_request(obj)
        role = methods.Role.AGENT if client.agent_id is not None else None
        claimed = request.params.get("agent_id") if request.method == "hello" else client.agent_id
        record = Record(client.number, claimed, request.method, dict(request.params))
        with self.cond:
            self.records.append(record)
            self.cond.notify_all()
        if self.on_request is not None:
            self.on_request(record)
        try:
            methods.check_call(request, role)  # what the real daemon refuses, the fake refuses
            if request.method == "sessions.send":  # waits for another agent: not in the reader
                self._spawn(self._answer_send, client, request.id, dict(request.params))
                return
            result = self._handle(client, request.method, dict(request.params))
        except ClawctlError as exc:
            client.send(error_response(request.id, exc).to_json())
            if request.method == "hello":
                client.close()
            return
        if self.lose_answer is not None and self.lose_answer(record):
            client.close()
            return
        client.send({"id": request.id, "result": result})
        if request.method == "hello":
            self._deliver_pending(client)

    def _received(self, message: dict[str, Any]) -> dict[str, Any]:
        return {"message_id": message["id"], "from": message["from"], "payload": message["payload"],
                "attempt": message["attempts"]}

    def _store_message(self, sender: str, sender_id: str | None, recipient: str, to: str,
                       payload: Any) -> tuple[str, bool]:
        with self.cond:
            known = self.sender_ids.get((sender, sender_id)) if sender_id is not None else None
            if known is not None:
                return known, True
            mid = f"dm-{next(self._ids)}"
            if sender_id is not None:
                self.sender_ids[(sender, sender_id)] = mid
            self.messages[mid] = {"id": mid, "from": sender, "to": to, "recipient": recipient, "payload": payload,
                                  "attempts": 0, "acked": False}
            live = [c for c in self._clients if c.agent_id == recipient and not c.closed]
            if live:
                self.messages[mid]["attempts"] = 1
                data = self._received(self.messages[mid])
        if live:
            live[-1].send({"event": "message.received", "data": data})
        return mid, False

    def _deliver_pending(self, client: _Client) -> None:
        with self.cond:
            pending = [m for m in self.messages.values() if m["recipient"] == client.agent_id and not m["acked"]]
            events = []
            for message in pending:
                message["attempts"] += 1
                events.append(self._received(message))
        for data in events:
            client.send({"event": "message.received", "data": data})

    def _handle(self, client: _Client, method: str, params: dict[str, Any]) -> Any:
        if method == "hello":
            agent_id = params.get("agent_id")
            known = self.agents.get(agent_id) if isinstance(agent_id, str) else None
            if params["version"] != PROTOCOL_VERSION or known is None or known[1] != params.get("token"):
                raise Unauthenticated("agent authentication failed")
            if self.before_hello is not None:
                self.before_hello(agent_id)
            with self.cond:
                client.agent_id = agent_id
                self.cond.notify_all()
            return {"version": PROTOCOL_VERSION, "role": "agent", "agent_id": agent_id, "fleet": self.fleet,
                    "pool": known[0], "max_frame": 1 << 20, "heartbeat_interval": self.heartbeat_interval}
        if method == "heartbeat":
            return {"ok": True}
        if method in self.denied:
            raise PolicyDenied(f"{method}: no CommunicationPolicy rule allows it")
        if method in {"messages.send", "messages.send_batch", "messages.ack", "events.publish", "events.subscribe", "events.unsubscribe",
                      "state.get", "state.set", "state.watch"}:
            return self._handle_issue6(client, method, params)
        if method == "sessions.reply":
            if ("message" in params) == ("error" in params):
                raise ProtocolError("sessions.reply needs message or error, not both")
            with self.cond:
                self.replies[params["message_id"]] = params
                self.cond.notify_all()
            return {"ok": True}
        if method == "sessions.open":
            pool = params["pool"]
            if not any(p == pool for p, _ in self.agents.values()):
                raise NotFound(f"pool {pool} not found")
            parent = params.get("parent")
            if parent is not None:
                if parent not in self.sessions:
                    raise NotFound(f"session {parent} not found")
                if self.sessions[parent]["agent_id"] != client.agent_id:
                    raise PolicyDenied(f"session {parent} is not yours")
            owner = next(a for a, (p, _) in self.agents.items() if p == pool)
            sid = self.open_session(pool, key=params.get("key"), agent_id=owner)
            self.sessions[sid]["parent_id"] = parent
            return self.sessions[sid]
        session = self.sessions.get(params.get("session", ""))
        if session is None:
            raise NotFound(f"session {params.get('session')} not found")
        sid = session["id"]
        if method == "sessions.close":
            session["state"] = "Closed"
            return session
        if method == "sessions.show":
            return {**session, "data": self.states[sid][0], "history": []}
        if method == "session.state.get":
            data, version = self.states[sid]
            return {"session": sid, "data": data, "version": version}
        if method == "session.state.set":
            with self.cond:
                version = self.states[sid][1] + 1
                self.states[sid] = (params["state"], version)
            return {"session": sid, "version": version}
        raise ProtocolError(f"the fake daemon does not serve {method}")

    def _handle_issue6(self, client: _Client, method: str, params: dict[str, Any]) -> Any:
        sender = client.agent_id or "operator"
        if method == "messages.send":
            return self._send_one(sender, params)
        if method == "messages.send_batch":
            items = params["messages"]
            if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
                raise ProtocolError(f"messages.send_batch: 'messages' must be a list of 1 to {MAX_BATCH} messages")
            for item in items:
                if not isinstance(item, dict) or not set(item) <= {"to", "payload", "id"} or \
                        not isinstance(item.get("to"), str) or "payload" not in item:
                    raise ProtocolError(f"messages.send_batch: bad message {item!r:.80}")
            results: list[Any] = []
            for item in items:
                try:
                    results.append(self._send_one(sender, item))
                except ClawctlError as exc:
                    results.append({"error": to_wire(exc).to_json()})
            return {"results": results}
        if method == "messages.ack":
            ids = ack_ids(params)
            if not 1 <= len(ids) <= MAX_BATCH or ("message_id" in params) == ("message_ids" in params):
                raise ProtocolError("messages.ack: give message_id or 1 to 1000 message_ids")
            with self.cond:
                for mid in ids:
                    message = self.messages.get(mid)
                    if message is None or message["recipient"] != client.agent_id:
                        raise NotFound(f"message {mid} not found")
                for mid in ids:
                    self.messages[mid]["acked"] = True
            return {"ok": True}
        if method == "events.publish":
            return {"delivered": self.publish(params["topic"], params.get("data"), sender)}
        if method in {"events.subscribe", "events.unsubscribe", "state.watch"}:
            with self.cond:
                table = client.watches if method == "state.watch" else client.subscriptions
                if method == "events.unsubscribe":
                    table.discard(params["pattern"])
                else:
                    table.add(params["pattern"])
            return {"ok": True}
        key = params["key"]
        if method == "state.get":
            with self.cond:
                value, version = self.shared.get(key, (None, 0))
            return {"key": key, "value": value, "version": version}
        with self.cond:  # state.set
            current = self.shared.get(key, (None, 0))[1]
            if params["expected_version"] != current:
                raise Conflict(f"state {key} is at version {current}, not {params['expected_version']}")
            self.shared[key] = (params["value"], current + 1)
            change = {"key": key, "value": params["value"], "version": current + 1, "by": sender}
            watchers = [c for c in self._clients if not c.closed and any(glob_match(p, key) for p in c.watches)]
        for watcher in watchers:
            watcher.send({"event": "state.changed", "data": change})
        return {"key": key, "version": current + 1}

    def _send_one(self, sender: str, params: Mapping[str, Any]) -> dict[str, Any]:
        kind, _, name = params["to"].partition("/")
        if params["to"] in self.refuse_targets:
            raise PolicyDenied(f"{sender} may not message {params['to']}")
        if kind == "agent" and name in self.agents:
            recipient = name
        elif kind == "pool" and any(p == name for p, _ in self.agents.values()):
            recipient = next(a for a, (p, _) in self.agents.items() if p == name)
        else:
            raise NotFound(f"{params['to']} not found")
        mid, duplicate = self._store_message(sender, params.get("id"), recipient, params["to"], params["payload"])
        return {"message_id": mid, "recipient": recipient, "duplicate": duplicate}

    def _answer_send(self, client: _Client, request_id: int, params: dict[str, Any]) -> None:
        try:
            session = self.sessions.get(params["session"])
            if session is None:
                raise NotFound(f"session {params['session']} not found")
            mid = self.post(session["id"], params["message"])
            reply = self.reply_to(mid, params.get("timeout", PATIENCE))
            if "error" in reply:
                raise ClawctlError(f"agent {session['agent_id']} failed to handle the message: {reply['error']}")
            result = {"session": session["id"], "message_id": mid, "agent_id": session["agent_id"],
                      "reply": reply["message"]}
        except ClawctlError as exc:
            client.send(error_response(request_id, exc).to_json())
            return
        client.send({"id": request_id, "result": result})


def ack_ids(params: Mapping[str, Any]) -> list[str]:
    """The ids a ``messages.ack`` request acknowledges (``message_id`` or ``message_ids``)."""
    if "message_ids" in params:
        ids = params["message_ids"]
        return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []
    return [params["message_id"]] if isinstance(params.get("message_id"), str) else []
