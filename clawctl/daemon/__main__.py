"""``python -m clawctl.daemon [--detach]``: the daemon without the CLI loaded.

``clawctl daemon run`` and ``clawctl daemon start`` end up here, so the long-lived
process does not carry typer and the command modules (about 8 MB of RSS).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from clawctl.daemon.instance import FAILED_FILE, InstanceLock
from clawctl.errors import ClawctlError, Conflict
from clawctl.home import clawctl_home


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clawctl-daemon", description="Run the clawctl supervisor daemon.")
    parser.add_argument("--detach", action="store_true", help="fork into the background")
    args = parser.parse_args(argv)
    home = clawctl_home()
    if args.detach and os.fork() > 0:
        # Fork before the heavy imports: the launching command goes on at once, and the
        # daemon is not its child (it outlives it, and never becomes its zombie).
        os._exit(0)
    try:
        lock = InstanceLock(home)
        lock.acquire()  # before the heavy imports: a concurrent start sees it at once
    except Conflict as exc:
        if args.detach:
            return 0  # lost a race with another start: whoever waits for a daemon gets that one
        sys.stderr.write(f"error: {exc.message}\n" + (f"hint: {exc.hint}\n" if exc.hint else ""))
        return int(exc.exit_code)
    try:
        from clawctl.daemon.service import run_daemon

        return run_daemon(home, lock=lock, detach=args.detach)
    except ClawctlError as exc:
        sys.stderr.write(f"error: {exc.message}\n" + (f"hint: {exc.hint}\n" if exc.hint else ""))
        if args.detach:  # `clawctl daemon start` is waiting: tell it why at once
            (home / FAILED_FILE).write_text(json.dumps({"message": exc.message, "hint": exc.hint}))
        return int(exc.exit_code)


if __name__ == "__main__":
    raise SystemExit(main())
