"""``python -m clawctl.daemon [--detach]``: the daemon without the CLI loaded.

``clawctl daemon run`` and ``clawctl daemon start`` end up here, so the long-lived
process does not carry typer and the command modules (about 8 MB of RSS). For the
same reason it parses its one option by hand (argparse is 0.5 MB), runs with
``-OO`` (see ``optimized_argv``) and, with a SQLite registry, keeps OpenSSL out
(see ``keep_openssl_out``).
"""

from __future__ import annotations

import os
import sys

USAGE = "usage: python -m clawctl.daemon [--detach]\n\nRun the clawctl supervisor daemon.\n"


def keep_openssl_out(environ: dict[str, str] | os._Environ[str]) -> bool:
    """With a SQLite registry nothing in the daemon speaks TLS, and its hashes (SHA-256, HMAC,
    BLAKE2) have built-in implementations; yet asyncio imports ``ssl`` and ``hashlib`` prefers
    OpenSSL, which maps libssl and libcrypto (~4.5 MB of the daemon's RSS). Marks both modules
    unavailable before anything imports them, so both fall back as they do on a Python built
    without OpenSSL. A registry elsewhere (``CLAWCTL_REGISTRY``) may need TLS: left alone.
    Returns whether it did so."""
    url = environ.get("CLAWCTL_REGISTRY", "")
    if url and not url.startswith("sqlite"):
        return False
    if "ssl" in sys.modules or "_hashlib" in sys.modules:
        return False  # too late: already loaded (an embedding process), nothing to gain
    sys.modules["ssl"] = None  # type: ignore[assignment]  # ImportError on import, by design
    sys.modules["_hashlib"] = None  # type: ignore[assignment]
    return True


def optimized_argv(environ: dict[str, str] | os._Environ[str]) -> list[str] | None:
    """The command line that runs this daemon again under ``python -OO``, or None to go on as is.

    Docstrings are ~3 MB of the daemon's RSS (SQLAlchemy's above all) and nothing in it reads
    them; its asserts only narrow types for mypy. Skipped when already optimized, when
    ``CLAWCTL_DAEMON_OPTIMIZE=0``, and when the ``-OO`` bytecode is neither cached nor
    cacheable: compiling the ~430 modules at every start would cost ~1 s of CPU.
    """
    if sys.flags.optimize >= 2 or environ.get("CLAWCTL_DAEMON_OPTIMIZE") == "0" or not sys.orig_argv:
        return None
    import importlib.util

    spec = importlib.util.find_spec("sqlalchemy")  # the bulk of the daemon's bytecode
    if spec is None or not spec.origin:
        return None
    cached = importlib.util.cache_from_source(spec.origin, optimization=2)
    if not os.path.exists(cached):
        directory = os.path.dirname(cached)
        writable = os.access(directory if os.path.isdir(directory) else os.path.dirname(directory), os.W_OK)
        if sys.dont_write_bytecode or not writable:
            return None
    return [sys.orig_argv[0], "-OO", *sys.orig_argv[1:]]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args in (["-h"], ["--help"]):
        sys.stdout.write(USAGE)
        return 0
    if args not in ([], ["--detach"]):
        sys.stderr.write(USAGE + f"error: unexpected arguments {' '.join(args)}\n")
        return 2
    detach = args == ["--detach"]

    import json

    from clawctl.daemon.instance import FAILED_FILE, InstanceLock
    from clawctl.errors import ClawctlError, Conflict
    from clawctl.home import clawctl_home

    home = clawctl_home()
    if detach and os.fork() > 0:
        # Fork before the heavy imports: the launching command goes on at once, and the
        # daemon is not its child (it outlives it, and never becomes its zombie).
        os._exit(0)
    try:
        lock = InstanceLock(home)
        lock.acquire()  # before the heavy imports: a concurrent start sees it at once
    except Conflict as exc:
        if detach:
            return 0  # lost a race with another start: whoever waits for a daemon gets that one
        sys.stderr.write(f"error: {exc.message}\n" + (f"hint: {exc.hint}\n" if exc.hint else ""))
        return int(exc.exit_code)
    try:
        from clawctl.daemon.service import run_daemon

        return run_daemon(home, lock=lock, detach=detach)
    except ClawctlError as exc:
        sys.stderr.write(f"error: {exc.message}\n" + (f"hint: {exc.hint}\n" if exc.hint else ""))
        if detach:  # `clawctl daemon start` is waiting: tell it why at once
            (home / FAILED_FILE).write_text(json.dumps({"message": exc.message, "hint": exc.hint}))
        return int(exc.exit_code)


if __name__ == "__main__":
    # Only as the daemon's own program, never in a process importing this module.
    again = optimized_argv(os.environ)
    if again is not None:
        os.execv(sys.executable, again)  # the same pid, the same command line, plus -OO
    keep_openssl_out(os.environ)
    raise SystemExit(main())
