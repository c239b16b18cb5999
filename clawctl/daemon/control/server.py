"""The control server: a Unix socket (mode 0600) under CLAWCTL_HOME, served by one asyncio loop.

Every connection starts with ``hello``, judged by ``protocol.auth.authorize`` from
the kernel's word on the peer (SO_PEERCRED, its ancestry and cgroups) and, for an
agent, its token. Requests are checked against the method table, then handed to
the session service. A connection that breaks the protocol (bad frame, oversized
frame, too many requests in flight, a peer that does not read) is answered once
and closed; the daemon and every other connection carry on.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from clawctl.daemon.control.db import Database
from clawctl.daemon.control.directory import AgentView, Directory
from clawctl.daemon.control.caller import Caller, PolicyBook
from clawctl.daemon.control.messaging import MessagingService
from clawctl.daemon.control.sessions import SessionService
from clawctl.errors import ClawctlError, DaemonUnavailable, ProtocolError, RateLimited
from clawctl.policies.limits import Bucket, take
from clawctl.protocol import auth
from clawctl.protocol.framing import MAX_FRAME, FrameDecoder, FrameError, encode_frame
from clawctl.protocol.messages import (
    PROTOCOL_VERSION,
    Event,
    Request,
    Response,
    error_for_frame,
    error_response,
    parse_request,
    request_id_of,
)
from clawctl.protocol.methods import check_call
from clawctl.registry import audit
from clawctl.runtime.host import CgroupMount, cgroup_dir, parse_proc_cgroup

log = logging.getLogger("clawctl.daemon.control")

MAX_INFLIGHT = 256
"""Requests one connection may have unanswered at once; more are refused (rate-limited)."""
MAX_WRITE_BUFFER = 16 * 1024 * 1024
"""Bytes queued for a peer that does not read; beyond this the connection is closed."""
MAX_CONNECTIONS = 4096
AGENT_RATE = float(os.environ.get("CLAWCTL_AGENT_RATE", "5000"))
"""Requests per second one agent may make on average (all its connections together)…"""
AGENT_BURST = float(os.environ.get("CLAWCTL_AGENT_BURST", "10000"))
"""…in bursts of up to this many; beyond, requests are refused as rate-limited."""
STOP_BUDGET_ENV = "CLAWCTL_STOP_BUDGET"
DEFAULT_STOP_BUDGET = 10.0
"""Seconds a stopping daemon gives requests already under way to be answered (it answers new ones
"stopping" at once); with the rest of the shutdown it fits systemd's default 90 s stop timeout and
the 30 s of the unit in docs/daemon.md."""
UNMETERED = frozenset({"heartbeat", "sessions.reply", "messages.ack"})
"""Answers to what the daemon sent (and the sign of life): refusing them would stall the sender or
make a busy agent look hung; they are bounded by what was sent, and cost no registry query."""
RATE_AUDIT_SECONDS = 10.0
"""At most one audit row per agent per this many seconds for refused requests (with their count)."""
READ_CHUNK = 256 * 1024


def peer_cgroups(pid: int, mounts: Sequence[CgroupMount]) -> tuple[PurePosixPath, ...]:
    """The cgroup directories of process ``pid`` (empty when unreadable)."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return ()
    dirs = (cgroup_dir(entry, mounts) for entry in parse_proc_cgroup(text))
    return tuple(PurePosixPath(d) for d in dirs if d is not None)


class Peer:
    """One connection: its kernel credentials, and who it proved to be."""

    def __init__(self, number: int, writer: asyncio.StreamWriter, creds: auth.PeerCredentials | None) -> None:
        self.number = number
        self.writer = writer
        self.creds = creds
        self.caller: Caller | None = None
        self.inflight = 0
        self.closed = False
        self._out: list[bytes] = []
        self._queued = 0

    @property
    def describe(self) -> str:
        pid = self.creds.pid if self.creds else "?"
        if self.caller is None:
            return f"pid {pid}"
        return self.caller.describe

    def send(self, message: dict[str, Any]) -> bool:
        """Queue ``message``; False (and the connection closed) when the peer is gone or not reading."""
        if self.closed:
            return False
        try:
            frame = encode_frame(message)
        except FrameError as exc:
            frame = encode_frame(error_response(message.get("id") if isinstance(message.get("id"), int) else None,
                                                ProtocolError(f"the answer is too large to send ({exc.detail})",
                                                              hint="ask for less (e.g. a smaller history)")).to_json())
        transport = self.writer.transport
        if transport.is_closing():
            self.closed = True
            return False
        if transport.get_write_buffer_size() + self._queued + len(frame) > MAX_WRITE_BUFFER:
            log.warning("%s does not read its answers; closing its connection", self.describe)
            self.close()
            return False
        if not self._out:
            # Frames queued during one turn of the event loop leave in one write (one system call).
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(frame)
        self._queued += len(frame)
        return True

    def _flush(self) -> None:
        if self._out and not self.writer.transport.is_closing():
            self.writer.write(b"".join(self._out))
        self._out.clear()
        self._queued = 0

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._flush()
            self.writer.close()


class ControlServer:
    """Serves the control socket on its own thread until ``stop``."""

    def __init__(self, home: Path, registry: Any, directory: Directory, *, clock: Callable[[], float] = time.time,
                 cgroup_mounts: Callable[[], Sequence[CgroupMount]] = lambda: (),
                 daemon_uid: int | None = None, socket_path: Path | None = None) -> None:
        from clawctl.daemon.paths import control_socket

        self.home = home
        self.path = socket_path or control_socket(home)
        self.directory = directory
        self.clock = clock
        self.cgroup_mounts = cgroup_mounts
        self.daemon_uid = os.getuid() if daemon_uid is None else daemon_uid
        self.db = Database(registry)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.sessions: SessionService | None = None
        self.messaging: MessagingService | None = None
        self._buckets: dict[str, Bucket] = {}
        self._throttled: dict[str, tuple[float, int]] = {}
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._peers: dict[int, Peer] = {}
        self._by_agent: dict[str, list[Peer]] = {}
        """Agent key → its connections that said hello, oldest first (a push looks up its agent's only)."""
        self._serving: set[asyncio.Task[Any]] = set()
        self._answering: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._budget = 0.0
        self._numbers = 0

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Bind the socket and serve it on a new thread; raises ``DaemonUnavailable`` when it cannot."""
        sock = self._bind()
        self._thread = threading.Thread(target=self._run, args=(sock,), name="clawctl-control", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._failure is not None:
            raise DaemonUnavailable(f"the control server did not start: {self._failure}")

    def stop(self, budget: float = 0.0) -> None:
        """Stop serving: take no new connection, answer the operator's new requests "stopping", give
        the requests already under way up to ``budget`` seconds to be answered (agents are still
        served, so they can finish them), write what is pending, close every connection, then the
        socket."""
        self._budget = budget
        if self.loop is not None and self._stopping is not None:
            self.loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=budget + 10)
        self.db.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def _bind(self) -> socket.socket:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # We hold the daemon's instance lock, so a socket file left here is a dead daemon's.
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.path))
        except OSError as exc:
            sock.close()
            raise DaemonUnavailable(f"cannot listen on {self.path}: {exc.strerror or exc}",
                                    hint="a Unix socket path must be under 108 bytes; use a shorter CLAWCTL_HOME"
                                    ) from exc
        os.chmod(self.path, 0o600)
        sock.listen(512)
        sock.setblocking(False)
        return sock

    def _run(self, sock: socket.socket) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            loop.run_until_complete(self._main(sock))
        except BaseException as exc:  # noqa: BLE001 - reported to start() or logged
            self._failure = exc
            log.exception("the control server stopped")
        finally:
            self._ready.set()
            loop.close()

    async def _main(self, sock: socket.socket) -> None:
        self._stopping = asyncio.Event()
        policies = PolicyBook(self.db)
        self.sessions = SessionService(self.db, self.directory, clock=self.clock, push=self._push, policies=policies)
        self.messaging = MessagingService(self.db, self.directory, policies, clock=self.clock, push=self._push,
                                          push_peer=self._push_peer)
        await self.sessions.start()
        await self.messaging.start()
        # What was made since the daemon froze its imports (the registry, the restored agents,
        # these services) lives as long as it too: out of the collector's full passes, which
        # under a stream of messages run every few seconds and stall every request meanwhile.
        gc.freeze()
        server = await asyncio.start_unix_server(self._serve, sock=sock, limit=READ_CHUNK)
        loop = asyncio.get_running_loop()

        def published(_snapshot: object) -> None:
            loop.call_soon_threadsafe(self._on_snapshot)

        self.directory.subscribe(published)
        log.info("control socket listening on %s", self.path)
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            self._closing = True
            if self._answering and self._budget > 0:
                log.info("stopping: %d request(s) under way get up to %gs", len(self._answering), self._budget)
                await asyncio.wait(set(self._answering), timeout=self._budget)
            for peer in list(self._peers.values()):
                peer.close()
            # A closed connection ends its reader by itself; cancelling a connection's task would
            # make asyncio's stream callback log the cancellation as an error.
            if self._serving:
                await asyncio.wait(set(self._serving), timeout=1.0)
            for task in list(self._serving):
                task.cancel()
            await asyncio.gather(*self._serving, return_exceptions=True)
            await self.sessions.stop()
            await self.messaging.stop()
            await server.wait_closed()

    def _on_snapshot(self) -> None:
        assert self.sessions is not None
        for peer in list(self._peers.values()):  # an agent process that ended loses its connections' identity
            caller = peer.caller
            if caller is not None and caller.agent is not None:
                current = self.directory.snapshot.agents.get(caller.agent.key)
                if current is None or not current.process.same_as(caller.agent.process):
                    peer.close()
        self.sessions.on_snapshot()
        assert self.messaging is not None
        self.messaging.on_snapshot()

    # ---------------------------------------------------------------- pushing
    def _push(self, agent_key: str, event: Event) -> bool:
        """Send ``event`` to the oldest live connection of agent ``agent_key``; False if none."""
        for peer in self._by_agent.get(agent_key, ()):
            if not peer.closed and peer.send(event.to_json()):
                return True
        return False

    def _index(self, peer: Peer) -> None:
        """Add an agent's connection (just past hello) to ``_by_agent``, in connection order."""
        assert peer.caller is not None and peer.caller.agent is not None
        peers = self._by_agent.setdefault(peer.caller.agent.key, [])
        peers.append(peer)
        peers.sort(key=lambda p: p.number)

    def _unindex(self, peer: Peer) -> None:
        caller = peer.caller
        if caller is None or caller.agent is None:
            return
        peers = self._by_agent.get(caller.agent.key)
        if peers is not None and peer in peers:
            peers.remove(peer)
            if not peers:
                del self._by_agent[caller.agent.key]

    def _push_peer(self, number: int, event: Event) -> bool:
        """Send ``event`` on connection ``number``; False if it is gone."""
        peer = self._peers.get(number)
        return peer is not None and peer.send(event.to_json())

    # ---------------------------------------------------------------- serving
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._numbers += 1
        task = asyncio.current_task()
        if task is not None:
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)
        sock = writer.get_extra_info("socket")
        try:
            creds: auth.PeerCredentials | None = auth.peer_credentials(sock)
        except ClawctlError:
            creds = None
        peer = Peer(self._numbers, writer, creds)
        if len(self._peers) >= MAX_CONNECTIONS:
            peer.send(error_response(None, RateLimited("too many connections to the daemon")).to_json())
            peer.close()
            return
        self._peers[peer.number] = peer
        decoder = FrameDecoder(max_frame=MAX_FRAME)
        try:
            while not peer.closed:
                try:
                    chunk = await reader.read(READ_CHUNK)
                except (ConnectionError, OSError):
                    break
                if not chunk:
                    break
                try:
                    frames = decoder.feed(chunk)
                except FrameError as exc:
                    for obj in exc.frames:
                        await self._on_frame(peer, obj)
                    log.warning("%s sent a bad frame (%s); closing its connection", peer.describe, exc.fault.value)
                    peer.send(error_response(None, error_for_frame(exc)).to_json())
                    break
                for obj in frames:
                    await self._on_frame(peer, obj)
        finally:
            self._peers.pop(peer.number, None)
            self._unindex(peer)
            peer.close()
            if peer.caller is not None and self.sessions is not None and self.messaging is not None:
                self.sessions.on_disconnect(peer.caller)
                self.messaging.on_disconnect(peer.number)

    async def _on_frame(self, peer: Peer, obj: dict[str, Any]) -> None:
        try:
            request = parse_request(obj)
        except ClawctlError as exc:
            peer.send(error_response(request_id_of(obj), exc).to_json())
            return
        # Agents keep being served while stopping: their requests finish the work under way
        # (a handler saving its session's state before it answers).
        if self._closing and (peer.caller is None or peer.caller.agent is None):
            peer.send(error_response(request.id, DaemonUnavailable(
                "the daemon is stopping", hint="send it again once the daemon is back")).to_json())
            return
        if request.method == "hello" or peer.caller is None:
            await self._answer(peer, request)  # in order: nothing else may run before hello is judged
            return
        if peer.caller.key is not None and request.method not in UNMETERED and not self._allow(peer.caller):
            peer.send(error_response(request.id, RateLimited(
                f"agent {peer.caller.agent.agent_id if peer.caller.agent else '?'} makes more than "
                f"{AGENT_RATE:g} requests per second", hint="slow down; retry later")).to_json())
            return
        if peer.inflight >= MAX_INFLIGHT:
            peer.send(error_response(request.id, RateLimited(
                f"more than {MAX_INFLIGHT} requests in flight on one connection",
                hint="wait for answers before sending more")).to_json())
            return
        peer.inflight += 1
        task = asyncio.get_running_loop().create_task(self._answer(peer, request))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _answer(self, peer: Peer, request: Request) -> None:
        try:
            role = peer.caller.role if peer.caller is not None else None
            check_call(request, role)
            if request.method == "hello":
                result = await self._hello(peer, request.params)
            elif request.method.startswith(("messages.", "events.", "state.")):
                assert peer.caller is not None and self.messaging is not None
                result = await self.messaging.handle(peer.caller, peer.number, request.method, request.params)
            else:
                assert peer.caller is not None and self.sessions is not None
                result = await self.sessions.handle(peer.caller, request.method, request.params)
            peer.send(Response(request.id, result).to_json())
        except ClawctlError as exc:
            peer.send(error_response(request.id, exc).to_json())
        except Exception as exc:  # noqa: BLE001 - the daemon must outlive any one request
            log.exception("%s failed while serving %s from %s", type(exc).__name__, request.method, peer.describe)
            peer.send(error_response(request.id, exc).to_json())
        finally:
            if request.method == "hello" and peer.caller is None:
                peer.close()  # a failed hello ends the connection
            if peer.caller is not None and request.method != "hello":
                peer.inflight -= 1

    # ---------------------------------------------------------------- hello
    async def _hello(self, peer: Peer, params: dict[str, Any] | Any) -> dict[str, Any]:
        version = params["version"]
        if version != PROTOCOL_VERSION:
            raise ProtocolError(f"protocol version {version} is not spoken by this daemon (it speaks "
                                f"{PROTOCOL_VERSION})", hint="upgrade the older of the two: clawctl and the agent SDK")
        claim = auth.Claim(params.get("agent_id"), params.get("token"))
        decision = self._judge(peer, claim)
        if isinstance(decision, auth.Denial):
            await self._audit(peer.describe, "hello", claim.agent_id or "operator", "denied",
                              {"reason": decision.reason.value, "detail": decision.detail})
            log.warning("refused a connection: %s", decision.detail)
            raise decision.to_error()
        agent = self.directory.snapshot.agents.get(decision.agent_id) if decision.agent_id else None
        peer.caller = Caller(decision.role, agent, decision.peer)
        assert self.sessions is not None
        if agent is not None:
            self._index(peer)
            self.directory.saw(agent.key, agent.process.pid, self.clock())
            self.sessions.on_hello(peer.caller)
            assert self.messaging is not None
            self.messaging.on_hello(peer.caller)
        pool = self.directory.snapshot.pool(agent.fleet, agent.pool) if agent else None
        return {"version": PROTOCOL_VERSION, "role": decision.role.value,
                "agent_id": agent.agent_id if agent else None, "fleet": agent.fleet if agent else None,
                "pool": agent.pool if agent else None, "max_frame": MAX_FRAME,
                "heartbeat_interval": pool.model.policies.health.heartbeat_interval if pool else None}

    def _judge(self, peer: Peer, claim: auth.Claim) -> auth.Identity | auth.Denial:
        if peer.creds is None:
            return auth.Denial(auth.DenialReason.PEER_UNKNOWN, "the kernel gave no peer credentials")
        ancestry = auth.process_ancestry(peer.creds.pid)
        agents = self.directory.snapshot.agents
        if claim.agent_id is None and claim.token is None:
            known = {view.key: view.known() for view in agents.values()}
            return auth.authorize(claim, peer.creds, known, ancestry, daemon_uid=self.daemon_uid,
                                  peer_cgroups=peer_cgroups(peer.creds.pid, self.cgroup_mounts()))
        # An agent names itself by its id (unique in its fleet) or by fleet/id: try each match.
        matches = [v for v in agents.values() if claim.agent_id in (v.agent_id, v.key)] if claim.agent_id else []
        first: auth.Identity | auth.Denial | None = None
        tries: list[AgentView | None] = list(matches) or [None]
        for view in tries:
            known = {view.key: view.known()} if view is not None else {}
            named = auth.Claim(view.key if view is not None else claim.agent_id, claim.token)
            decision = auth.authorize(named, peer.creds, known, ancestry, daemon_uid=self.daemon_uid)
            if isinstance(decision, auth.Identity):
                return decision
            first = first or decision
        assert first is not None
        return first

    def _allow(self, caller: Caller) -> bool:
        """The agent's token bucket (all its connections): may this request go now? A refusal is
        audited at most once per RATE_AUDIT_SECONDS per agent, with the count refused since."""
        key = caller.key
        assert key is not None
        now = time.monotonic()
        ok, self._buckets[key] = take(self._buckets.get(key), now=now, rate=AGENT_RATE, burst=AGENT_BURST)
        if ok:
            return True
        last, count = self._throttled.get(key, (0.0, 0))
        count += 1
        if now - last >= RATE_AUDIT_SECONDS:
            asyncio.get_running_loop().create_task(self._audit(caller.describe, "rate-limit", key, "denied",
                                                               {"refused": count}))
            last, count = now, 0
        self._throttled[key] = (last, count)
        return False

    async def _audit(self, actor: str, action: str, target: str, outcome: str, detail: dict[str, Any]) -> None:
        entry = audit.AuditEntry(datetime.now(timezone.utc), actor, action, target, outcome, detail)
        try:
            await self.db.run(lambda conn: audit.record(conn, [entry]))
        except ClawctlError as exc:
            log.warning("could not write the audit log: %s", exc.message)

