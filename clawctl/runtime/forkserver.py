"""The launcher's fork server: one ``python -I -S shim.py --serve`` per launcher.

A Python interpreter start costs ~15 ms of CPU, and a cold start of 200 agents
paid it 200 times for the exec shim alone. The fork server pays it once: for
each agent it clones itself (``CLONE_PARENT``), and the clone runs the shim's
steps (session, workdir, cgroups, fds, rlimits, network namespace, signals) and
execs the agent. ``CLONE_PARENT`` makes the agent a child of the daemon, not of
the server, so exits arrive as SIGCHLD and ``reap()`` collects them exactly as
before. The reply comes as soon as the clone exists, while it sets itself up
(as the ``Launcher`` protocol allows: "its exec follows within milliseconds");
a signal sent meanwhile still reaches it by pid. The server is single-threaded,
so cloning it is safe where forking the daemon is not.

The daemon holds one socket to it (never one per agent). Where the server
cannot work (no ctypes, an unknown architecture, clone refused by a sandbox)
the launcher falls back to starting the shim per agent.
"""

from __future__ import annotations

import marshal
import os
import signal
import socket
import sys
import time

from clawctl.runtime.host import SHIM_PATH

REPLY_TIMEOUT = 60.0
"""How long to wait for the server's answer (a clone waits for the agent's setup and exec,
which a loaded host can slow down) before giving up on the server."""

SERVER_PIDS: set[int] = set()
"""Fork servers this process started and has not reaped: ``reap()`` must not report them."""


DEFAULT_SIGNALS = frozenset(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP}
"""Reset to default dispositions in a spawned child: an ignored signal (Python ignores
SIGPIPE) would otherwise stay ignored across exec."""


class Unavailable(Exception):
    """The fork server cannot spawn here (or died twice): start the shim per agent instead."""


class ForkServer:
    """One fork server process and the socket to it; started on first use. Not thread-safe:
    the launcher serializes calls."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._greeted = False
        self.pid: int | None = None
        self.broken: str | None = None
        """Why this server is not used any more (None while it is usable)."""

    def start(self) -> None:
        """Start the server process if none runs, without waiting for it to be ready (it boots
        while the caller does other work; the first ``spawn`` waits for its greeting)."""
        if self._sock is None and self.broken is None:
            try:
                self._launch()
            except Unavailable:
                pass  # recorded in ``broken``; spawn() says so

    def spawn(self, shim_args: list[str], env: dict[str, str], log: str) -> int:
        """Start one agent: ``shim_args`` as the shim takes them (``--cwd …  --exe EXE -- ARGV``),
        stdout and stderr appended to ``log``. Returns its pid once the process exists; its
        setup and exec follow (a failing step is reported in its log and exit code, as the
        shim does).

        Raises OSError when the agent could not be started (the log cannot be opened, clone
        failed for lack of resources) and ``Unavailable`` when the server cannot be used.
        """
        for attempt in range(2):  # a server that died is replaced once
            if self.broken is not None:
                raise Unavailable(self.broken)
            if self._sock is None:
                self._launch()
            try:
                if not self._greeted:
                    self._greet()
                reply = self._call((shim_args, env, log))
            except (OSError, EOFError, ValueError) as exc:
                self.close()
                if attempt:
                    self.broken = f"the fork server stopped answering: {exc}"
                continue
            if reply[0] == "pid":
                return int(reply[1])  # type: ignore[call-overload]  # marshal gives back what was sent
            if reply[0] == "error":
                raise OSError(int(reply[1]), str(reply[2]))  # type: ignore[call-overload]
            self.broken = f"the fork server cannot clone here: {reply[1]}"
            self.close()
        raise Unavailable(self.broken or "the fork server is not available")

    def close(self) -> None:
        """Stop the server (it exits when its socket closes) and collect its exit."""
        sock, self._sock = self._sock, None
        pid, self.pid = self.pid, None
        self._greeted = False
        if sock is not None:
            sock.close()
        if pid is not None:
            _collect(pid)

    def __del__(self) -> None:
        # A launcher dropped without close(): the server exits at EOF; reap() skips its exit.
        if self._sock is not None:
            self._sock.close()

    def _launch(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            argv = [sys.executable, "-I", "-S", str(SHIM_PATH), "--serve"]
            actions = [(os.POSIX_SPAWN_DUP2, theirs.fileno(), 0)]
            # Its own session: a Ctrl-C meant for a foreground daemon must not end it.
            try:
                pid = os.posix_spawn(argv[0], argv, dict(os.environ), file_actions=actions, setsid=True,
                                     setsigmask=(), setsigdef=DEFAULT_SIGNALS)
            except NotImplementedError:
                pid = os.posix_spawn(argv[0], argv, dict(os.environ), file_actions=actions, setpgroup=0,
                                     setsigmask=(), setsigdef=DEFAULT_SIGNALS)
        except OSError as exc:
            ours.close()
            self.broken = f"cannot start the fork server: {exc.strerror or exc}"
            raise Unavailable(self.broken) from exc
        finally:
            theirs.close()
        SERVER_PIDS.add(pid)
        self._sock, self.pid = ours, pid
        ours.settimeout(REPLY_TIMEOUT)

    def _greet(self) -> None:
        """Wait for the server's first message: ready, or why it cannot clone here."""
        try:
            hello = self._receive()
        except (OSError, EOFError, ValueError) as exc:
            hello = ("unsupported", f"no greeting ({exc})")
        self._greeted = True
        if hello[0] != "ready":
            self.broken = f"the fork server cannot clone here: {hello[1]}"
            self.close()
            raise Unavailable(self.broken)

    def _call(self, request: tuple[object, ...]) -> tuple[object, ...]:
        assert self._sock is not None
        data = marshal.dumps(request)  # type: ignore[arg-type]  # plain values only, by construction
        self._sock.sendall(len(data).to_bytes(4, "big") + data)
        return self._receive()

    def _receive(self) -> tuple[object, ...]:
        header = self._read(4)
        reply = marshal.loads(self._read(int.from_bytes(header, "big")))
        if not isinstance(reply, tuple) or not reply:
            raise ValueError(f"unexpected reply {reply!r}")
        return reply

    def _read(self, size: int) -> bytes:
        assert self._sock is not None
        chunks = []
        while size:
            chunk = self._sock.recv(size)
            if not chunk:
                raise EOFError("the fork server closed its socket")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)



def _collect(pid: int, timeout: float = 2.0) -> None:
    """Wait for a server that was told to stop (EOF); SIGKILL it after ``timeout``. One that
    survives even that is left to ``reap()``, which skips it."""
    deadline = time.monotonic() + timeout
    killed = False
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid  # collected by reap() meanwhile
        if done == pid:
            SERVER_PIDS.discard(pid)
            return
        now = time.monotonic()
        if now > deadline:
            if killed:
                return
            os.kill(pid, signal.SIGKILL)  # still our unreaped child: the pid cannot be reused
            killed, deadline = True, now + 5.0
        time.sleep(0.005)
