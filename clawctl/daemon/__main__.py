"""``python -m clawctl.daemon [--detach]``: the daemon without the CLI loaded.

``clawctl daemon run`` and ``clawctl daemon start`` end up here, so the long-lived
process does not carry typer and the command modules (about 8 MB of RSS).
"""

from __future__ import annotations

import argparse
import sys

from clawctl.daemon.service import run_daemon
from clawctl.errors import ClawctlError
from clawctl.home import clawctl_home


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clawctl-daemon", description="Run the clawctl supervisor daemon.")
    parser.add_argument("--detach", action="store_true", help="fork into the background")
    args = parser.parse_args(argv)
    try:
        return run_daemon(clawctl_home(), detach=args.detach)
    except ClawctlError as exc:
        sys.stderr.write(f"error: {exc.message}\n" + (f"hint: {exc.hint}\n" if exc.hint else ""))
        return int(exc.exit_code)


if __name__ == "__main__":
    raise SystemExit(main())
