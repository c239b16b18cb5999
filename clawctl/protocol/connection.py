"""A blocking client connection to the control socket, shared by the CLI and the agent SDK.

One reader thread per connection turns frames into responses (matched to waiting
calls by id) and events (handed to ``on_event`` in the reader thread; a handler
that does real work should queue it). Calls may come from any thread. Standard
library only, so an agent loads it cheaply.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from clawctl.errors import ClawctlError, DaemonUnavailable, ProtocolError
from clawctl.protocol.framing import FrameDecoder, FrameError, encode_frame
from clawctl.protocol.messages import (
    PROTOCOL_VERSION,
    ErrorResponse,
    Event,
    Request,
    Response,
    from_wire,
    parse_server_message,
)

EventHandler = Callable[[Event], None]

READ_CHUNK = 256 * 1024


class ConnectionClosed(DaemonUnavailable):
    """The daemon closed the connection (it stopped, restarted, or refused the peer)."""


class _Pending:
    __slots__ = ("done", "result", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: ClawctlError | None = None


class Connection:
    """One authenticated-or-not connection. ``call`` sends a request and waits for its answer;
    a daemon error is raised as the same ``ClawctlError`` class the daemon raised."""

    def __init__(self, sock: socket.socket, *, on_event: EventHandler | None = None,
                 on_close: Callable[[], None] | None = None) -> None:
        self._sock = sock
        self._on_event = on_event
        self._on_close = on_close
        self._ids = itertools.count(1)
        self._write = threading.Lock()
        self._state = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._closed: ClawctlError | None = None
        self.identity: Mapping[str, Any] = {}
        self._reader = threading.Thread(target=self._read_loop, name="clawctl-conn-reader", daemon=True)
        self._reader.start()

    # ---------------------------------------------------------------- opening
    @classmethod
    def connect(cls, path: Path | str, *, timeout: float = 5.0, on_event: EventHandler | None = None,
                on_close: Callable[[], None] | None = None) -> Connection:
        """Connect to the socket at ``path``; ``DaemonUnavailable`` when nothing listens there."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise DaemonUnavailable(f"the daemon is not listening on {path}",
                                    hint="start it with `clawctl daemon start` (or `clawctl apply`)") from exc
        except OSError as exc:
            sock.close()
            raise DaemonUnavailable(f"cannot connect to {path}: {exc.strerror or exc}") from exc
        sock.settimeout(None)
        return cls(sock, on_event=on_event, on_close=on_close)

    def hello(self, *, agent_id: str | None = None, token: str | None = None, client: str | None = None,
              timeout: float | None = 10.0) -> Mapping[str, Any]:
        """Say hello (as the operator without ``agent_id``/``token``); returns the daemon's answer
        (``version``, ``role``, ``agent_id``, ``max_frame``). Raises ``Unauthenticated`` when refused."""
        params: dict[str, Any] = {"version": PROTOCOL_VERSION}
        if agent_id is not None:
            params["agent_id"] = agent_id
        if token is not None:
            params["token"] = token
        if client is not None:
            params["client"] = client
        result = self.call("hello", params, timeout=timeout)
        self.identity = result if isinstance(result, Mapping) else {}
        return self.identity

    # ---------------------------------------------------------------- calling
    def call(self, method: str, params: Mapping[str, Any] | None = None, *, timeout: float | None = None) -> Any:
        """Send ``method(params)`` and wait for the result. ``timeout`` (seconds) bounds the wait:
        ``DaemonUnavailable`` after it, or when the connection closes first."""
        request_id = next(self._ids)
        pending = _Pending()
        with self._state:
            if self._closed is not None:
                raise self._closed
            self._pending[request_id] = pending
        try:
            self._send(Request(request_id, method, dict(params or {})).to_json())
            if not pending.done.wait(timeout):
                raise DaemonUnavailable(f"{method}: no answer from the daemon within {timeout:g}s",
                                        hint="see `clawctl daemon status` and the daemon log")
        finally:
            with self._state:
                self._pending.pop(request_id, None)
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _send(self, message: Mapping[str, Any]) -> None:
        try:
            frame = encode_frame(message)
        except FrameError as exc:
            raise ProtocolError(f"cannot send the request: {exc}",
                                hint="keep each request under the frame limit (1 MiB of JSON)") from exc
        with self._write:
            try:
                self._sock.sendall(frame)
            except OSError as exc:
                raise self._fail(ConnectionClosed(f"the connection to the daemon broke: {exc.strerror or exc}"))

    # ---------------------------------------------------------------- reading
    def _read_loop(self) -> None:
        decoder = FrameDecoder()
        reason: ClawctlError = ConnectionClosed("the daemon closed the connection",
                                                hint="it may have stopped or restarted; see `clawctl daemon status`")
        try:
            while True:
                try:
                    chunk = self._sock.recv(READ_CHUNK)
                except OSError:
                    break
                if not chunk:
                    break
                try:
                    frames = decoder.feed(chunk)
                except FrameError as exc:
                    for obj in exc.frames:
                        self._dispatch(obj)
                    reason = ProtocolError(f"the daemon sent a malformed frame ({exc})")
                    break
                for obj in frames:
                    self._dispatch(obj)
        finally:
            self._fail(reason)
            if self._on_close is not None:
                self._on_close()

    def _dispatch(self, obj: dict[str, Any]) -> None:
        try:
            message = parse_server_message(obj)
        except ProtocolError:
            return  # a message we cannot read answers nothing we wait for
        if isinstance(message, Event):
            if self._on_event is not None:
                try:
                    self._on_event(message)
                except Exception:  # noqa: BLE001 - a handler's bug must not kill the reader
                    logging.getLogger("clawctl.protocol").exception("event handler failed on %s", message.event)
            return
        if message.id is None:  # the daemon refused the stream itself: every waiter gets it
            assert isinstance(message, ErrorResponse)
            self._fail(from_wire(message.error))
            return
        with self._state:
            pending = self._pending.get(message.id)
        if pending is None:
            return
        if isinstance(message, Response):
            pending.result = message.result
        else:
            pending.error = from_wire(message.error)
        pending.done.set()

    def _fail(self, error: ClawctlError) -> ClawctlError:
        with self._state:
            if self._closed is None:
                self._closed = error
            waiting = list(self._pending.values())
        for pending in waiting:
            if not pending.done.is_set():
                pending.error = self._closed
                pending.done.set()
        return self._closed

    # ---------------------------------------------------------------- closing
    @property
    def closed(self) -> bool:
        return self._closed is not None

    def close(self) -> None:
        """Close the socket; waiting calls fail with ``ConnectionClosed``. Idempotent."""
        self._fail(ConnectionClosed("the connection was closed"))
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        if threading.current_thread() is not self._reader:
            self._reader.join(timeout=5.0)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
