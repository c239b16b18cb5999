"""Example agent: logs a start line, then a heartbeat line every few seconds; exits 0
promptly on SIGTERM. Started by a clawctl daemon (``CLAWCTL_SOCKET`` set), it also
connects through the agent SDK and replies to every message with the message itself.

    python3 -m clawctl.agent.examples.echo --role NAME [--interval SECONDS]
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from clawctl.agent import notify_ready
from clawctl.agent.examples._common import say, stop_event


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="echo", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--role", default="echo", help="a name to show in the log")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between heartbeat log lines")
    args = parser.parse_args(argv)
    stop = stop_event()
    say("echo", f"role={args.role} started")
    agent = None
    if os.environ.get("CLAWCTL_SOCKET"):
        from clawctl.agent.sdk import Agent, Session  # only now: without a daemon, start stays cheap

        from clawctl.errors import ClawctlError

        try:
            agent = Agent.from_env()
        except ClawctlError as exc:
            print(f"echo: {exc.message}", file=sys.stderr)
            return 2

        @agent.on_message
        def echo(_session: Session, message: Any) -> Any:
            return message

        agent.start()  # the SDK notifies readiness once it has said hello
    else:
        notify_ready()
    beats = 0
    try:
        while not stop.wait(args.interval):
            beats += 1
            say("echo", f"role={args.role} heartbeat {beats}")
    finally:
        if agent is not None:
            agent.stop()
    say("echo", f"role={args.role} stopping on signal")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
