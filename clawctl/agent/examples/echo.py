"""Example agent: logs a start line, then a heartbeat line every few seconds; exits 0
promptly on SIGTERM.

    python3 -m clawctl.agent.examples.echo --role NAME [--interval SECONDS]
"""

from __future__ import annotations

import argparse

from clawctl.agent import notify_ready
from clawctl.agent.examples._common import say, stop_event


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="echo", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--role", default="echo", help="a name to show in the log")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between heartbeats")
    args = parser.parse_args(argv)
    stop = stop_event()
    say("echo", f"role={args.role} started")
    notify_ready()
    beats = 0
    while not stop.wait(args.interval):
        beats += 1
        say("echo", f"role={args.role} heartbeat {beats}")
    say("echo", f"role={args.role} stopping on signal")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
