"""Exec shim: applies an agent's isolation to itself, then becomes the agent.

Runs as ``python -I -S .../shim.py [options] -- ARGV...`` between spawn and the
agent's exec, in the child, single-threaded, so nothing here races with the
daemon's threads (unlike ``preexec_fn``). Steps, in this order:

1. ``--cwd DIR``: chdir to the agent's workdir.
2. ``--cgroup DIR`` (repeatable): move itself into each per-agent cgroup, so the
   agent and everything it ever forks is accounted and limited there.
3. close every fd above 2 (only stdin=/dev/null and stdout/stderr=log survive).
4. ``--nofile N``: RLIMIT_NOFILE soft = hard = N.
5. ``--net none|loopback``: unshare a new network namespace; for ``loopback``
   bring ``lo`` up (ioctl SIOCSIFFLAGS), for ``none`` leave it down.
6. reset SIGPIPE/SIGXFSZ (Python ignores them; exec would keep that) and
   ``execv(--exe, ARGV)``.

A failing step writes ``clawctl-shim: ...`` to stderr (the agent's log) and exits
125; a failing exec exits 127 (not found) or 126. ``--probe`` instead reports, one
line each on stdout, whether joining each ``--cgroup`` and a network namespace
work, and exits 0.

``--serve`` makes it the launcher's fork server instead (see
clawctl/runtime/forkserver.py): it reads spawn requests on fd 0 and, for each,
clones a child whose parent is the *daemon* (``CLONE_PARENT``) and which runs
the same steps before its exec, so an agent costs a clone instead of an
interpreter start (~1 ms against ~15 ms of CPU).

Standard library only and nothing imported that a step does not need: this runs
for every spawn, and a restart must stay fast.
"""

from __future__ import annotations

import os
import sys

SETUP_FAILED = 125
CLONE_NEWNET = 0x40000000
CLONE_PARENT = 0x8000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
SYS_CLONE = {"x86_64": 56, "aarch64": 220, "riscv64": 220}
"""Number of the clone system call on the architectures the fork server supports."""


def _fail(what: str, exc: BaseException) -> None:
    message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    os.write(2, f"clawctl-shim: {what}: {message}\n".encode(errors="replace"))
    os._exit(SETUP_FAILED)


def join_cgroup(directory: str) -> None:
    """Move this process into the cgroup at ``directory``."""
    fd = os.open(os.path.join(directory, "cgroup.procs"), os.O_WRONLY)
    try:
        os.write(fd, str(os.getpid()).encode())
    finally:
        os.close(fd)


def unshare_network() -> None:
    """Enter a new, empty network namespace (os.unshare exists from Python 3.12)."""
    if hasattr(os, "unshare"):
        os.unshare(CLONE_NEWNET)
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def loopback_up() -> None:
    """Set IFF_UP on ``lo`` in the current network namespace."""
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def parse(args: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Options (each a list of values; flags get ``[""]``) and the agent argv after ``--``."""
    options: dict[str, list[str]] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return options, args[i + 1 :]
        if arg in ("--probe", "--serve"):
            options[arg[2:]] = [""]
            i += 1
            continue
        if not arg.startswith("--") or i + 1 >= len(args):
            raise ValueError(f"unexpected argument {arg!r}")
        options.setdefault(arg[2:], []).append(args[i + 1])
        i += 2
    return options, []


def probe(options: dict[str, list[str]]) -> int:
    """Report which isolation steps work for a child of the daemon; never execs."""
    for directory in options.get("cgroup", []):
        try:
            join_cgroup(directory)
            print("cgroup-ok", directory)
        except OSError as exc:
            print(f"cgroup-error {directory}\t{exc.strerror or exc}")
    try:
        unshare_network()
        loopback_up()
        print("netns-ok")
    except OSError as exc:
        print("netns-error", exc.strerror or exc)
    return 0


def become_agent(options: dict[str, list[str]], argv: list[str], env: dict[str, str] | None = None) -> None:
    """Steps 1-6 on this process, then exec the agent (``env``: its environment, else
    this one's). Never returns: a failing step exits SETUP_FAILED, a failing exec 126/127."""
    if not argv or "exe" not in options:
        _fail("bad arguments", ValueError("need --exe PATH and -- ARGV"))
    if "setsid" in options:
        try:
            os.setsid()
        except OSError as exc:
            _fail("setsid", exc)
    for directory in options.get("cwd", []):
        try:
            os.chdir(directory)
        except OSError as exc:
            _fail(f"cannot enter workdir {directory}", exc)
    for directory in options.get("cgroup", []):
        try:
            join_cgroup(directory)
        except OSError as exc:
            _fail(f"cannot join cgroup {directory}", exc)
    os.closerange(3, 1 << 20)
    for value in options.get("nofile", []):
        try:
            import resource

            limit = int(value)
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
        except (OSError, ValueError) as exc:
            _fail(f"cannot set open files limit {value}", exc)
    for mode in options.get("net", []):
        try:
            unshare_network()
            if mode == "loopback":
                loopback_up()
        except OSError as exc:
            _fail(f"cannot isolate the network ({mode})", exc)
    import signal

    for name in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    exe = options["exe"][-1]
    try:
        if env is None:
            os.execv(exe, argv)
        else:
            os.execve(exe, argv, env)
    except OSError as exc:
        os.write(2, f"clawctl-shim: cannot execute {exe}: {exc.strerror or exc}\n".encode(errors="replace"))
        os._exit(127 if isinstance(exc, FileNotFoundError) else 126)


def main(args: list[str]) -> int:
    try:
        options, argv = parse(args)
    except ValueError as exc:
        _fail("bad arguments", exc)
        return SETUP_FAILED
    if "probe" in options:
        return probe(options)
    if "serve" in options:
        return serve()
    become_agent(options, argv)
    return 0  # not reached


# -- fork server -------------------------------------------------------------------------


def _clone_function() -> tuple[object | None, str]:
    """A function that clones this process as a sibling (CLONE_PARENT: the child's parent is
    the daemon) and returns the child's pid (0 in the child); or None and why it is not
    available here. The server does not wait for the child's exec (no CLONE_VFORK): the
    daemon's pass goes on while the agent sets itself up, on the other CPU if there is one."""
    number = SYS_CLONE.get(os.uname().machine)
    if number is None:
        return None, f"no clone system call number known for {os.uname().machine}"
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        syscall = libc.syscall
    except (ImportError, OSError, AttributeError) as exc:
        return None, f"ctypes unavailable: {exc}"
    syscall.restype = ctypes.c_long
    zero = ctypes.c_long(0)
    # Every argument as a C long: syscall() is variadic and reads each one as a long.
    args = (ctypes.c_long(number), ctypes.c_long(CLONE_PARENT | int(signal.SIGCHLD)), zero, zero, zero, zero)

    def clone() -> int:
        pid = int(syscall(*args))
        if pid < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return pid

    return clone, ""


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _send(fd: int, message: object) -> None:
    import marshal

    data = marshal.dumps(message)  # type: ignore[arg-type]  # plain values only, by construction
    view = memoryview(len(data).to_bytes(4, "big") + data)
    while view:
        view = view[os.write(fd, view) :]


def _receive(fd: int) -> object | None:
    import marshal

    header = _read_exactly(fd, 4)
    if header is None:
        return None
    body = _read_exactly(fd, int.from_bytes(header, "big"))
    return None if body is None else marshal.loads(body)


def serve(fd: int = 0) -> int:
    """The fork server's loop: answers each request ``(shim args, env, log path)`` on ``fd``
    with ``("pid", pid)``, ``("error", errno, text)`` or ``("unsupported", text)``; exits 0
    when the daemon closes its end."""
    os.closerange(max(fd, 2) + 1, 1 << 20)  # hold nothing of the daemon's but the socket
    clone, why = _clone_function()
    try:
        _send(fd, ("ready", "") if clone is not None else ("unsupported", why))
    except (ConnectionResetError, BrokenPipeError):
        return 0
    if clone is None:
        return 0
    import resource  # noqa: F401 - loaded once here, so a child's rlimit step costs no import
    import signal  # noqa: F401

    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        while True:
            request = _receive(fd)
            if request is None:
                return 0
            _send(fd, _spawn_one(clone, devnull, request))  # type: ignore[arg-type]
    except (ConnectionResetError, BrokenPipeError):
        return 0  # the daemon is gone (it may have closed before reading the greeting): so are we


def _spawn_one(clone: object, devnull: int, request: tuple[list[str], dict[str, str], str]) -> tuple[object, ...]:
    args, env, log = request
    try:
        options, argv = parse(args)
    except ValueError as exc:
        return ("error", 22, str(exc))
    if "loopback" in options.get("net", []):
        import fcntl  # noqa: F401 - as above: imported by the server once, not by every child
        import socket  # noqa: F401
        import struct  # noqa: F401
    try:
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    except OSError as exc:
        return ("error", exc.errno or 0, exc.strerror or str(exc))
    try:
        pid = clone()  # type: ignore[operator]
        if pid == 0:  # the child: a copy of this process, parented to the daemon
            try:
                os.dup2(devnull, 0)
                os.dup2(out, 1)
                os.dup2(out, 2)
                os.setsid()
                become_agent(options, argv, env)
            except BaseException as exc:  # noqa: BLE001 - the child must never return to the loop
                _fail("setup", exc)
            finally:
                os._exit(SETUP_FAILED)
        return ("pid", pid)
    except OSError as exc:
        if exc.errno in (1, 22, 38):  # EPERM, EINVAL, ENOSYS: clone itself is refused here
            return ("unsupported", f"clone: {exc.strerror}")
        return ("error", exc.errno or 0, exc.strerror or str(exc))
    finally:
        os.close(out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
