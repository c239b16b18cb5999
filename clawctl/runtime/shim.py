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

Standard library only and nothing imported that a step does not need: this runs
for every spawn, and a restart must stay fast.
"""

from __future__ import annotations

import os
import sys

SETUP_FAILED = 125
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


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
        if arg == "--probe":
            options["probe"] = [""]
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


def main(args: list[str]) -> int:
    try:
        options, argv = parse(args)
    except ValueError as exc:
        _fail("bad arguments", exc)
        return SETUP_FAILED
    if "probe" in options:
        return probe(options)
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
        os.execv(exe, argv)
    except OSError as exc:
        os.write(2, f"clawctl-shim: cannot execute {exe}: {exc.strerror or exc}\n".encode(errors="replace"))
        os._exit(127 if isinstance(exc, FileNotFoundError) else 126)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
