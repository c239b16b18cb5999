"""Example agent for the SDK: answers each message after ``--service-time`` seconds
with ``{"worker": AGENT_ID, "echo": MESSAGE, "handled": N}``, where N counts the
messages of that session, kept in the session's state (so it survives a move to
another agent). Needs a clawctl daemon (``CLAWCTL_SOCKET``).

    python3 -m clawctl.agent.examples.worker [--service-time SECONDS] [--workers N]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

from clawctl.agent.examples._common import say
from clawctl.agent.sdk import Agent, Session
from clawctl.errors import ClawctlError


def build(agent: Agent, service_time: float = 0.0) -> Agent:
    """Register the worker's handlers on ``agent``; returns it."""
    handled: dict[str, int] = {}  # per session, written through to its state
    lock = threading.Lock()

    @agent.on_open
    def opened(session: Session, state: dict[str, Any]) -> None:
        count = state.get("handled")
        with lock:
            handled[session.id] = count if isinstance(count, int) else 0

    @agent.on_message
    def answer(session: Session, message: Any) -> Any:
        if service_time > 0:
            time.sleep(service_time)
        with lock:
            known = handled.get(session.id)
        if known is None:  # not opened on this connection (e.g. the daemon restarted): ask
            count = agent.get_state(session).get("handled")
            known = count if isinstance(count, int) else 0
        n = known + 1
        agent.set_state(session, {"handled": n})
        with lock:
            handled[session.id] = n
        return {"worker": agent.agent_id, "echo": message, "handled": n}

    @agent.on_closing
    def closing(session: Session, _reason: str, _deadline: float) -> None:
        with lock:
            handled.pop(session.id, None)  # the state is already saved after every message

    return agent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="worker", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--service-time", type=float, default=0.0, help="seconds spent on each message")
    parser.add_argument("--workers", type=int, default=4, help="sessions handled at once")
    args = parser.parse_args(argv)
    try:
        agent = build(Agent.from_env(workers=args.workers), args.service_time)
    except ClawctlError as exc:
        print(f"worker: {exc.message}", file=sys.stderr)
        return 2
    say("worker", f"started, service time {args.service_time:g}s")
    agent.run()
    say("worker", "stopping on signal")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
