"""Example agent for the SDK: forwards each message to a session in another pool and
replies ``{"coordinator": AGENT_ID, "via": TARGET_SESSION, "result": TARGET_REPLY}``.
It opens one target session per session of its own, as a child of that session
(closing it closes the target too), remembered in that session's state (so a move
to another coordinator keeps the same target). After each forward it publishes the
event ``plan.dispatched`` ({"session", "target_pool"}) and counts it in the shared
state key ``plan/dispatched``; a daemon that refuses either (the CommunicationPolicy)
costs one log line, never the reply. Needs a clawctl daemon (``CLAWCTL_SOCKET``) and a
CommunicationPolicy that lets it reach the pool.

    python3 -m clawctl.agent.examples.coordinator [--target-pool POOL] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any

from clawctl.agent.examples._common import say
from clawctl.agent.sdk import Agent, Session
from clawctl.errors import ClawctlError, NotFound

DISPATCHED_TOPIC = "plan.dispatched"
"""The event published after each forwarded message."""

DISPATCHED_KEY = "plan/dispatched"
"""The shared-state counter of forwarded messages (all coordinators of the fleet)."""


def _count(value: Any) -> int:
    return (value if isinstance(value, int) and not isinstance(value, bool) else 0) + 1


def build(agent: Agent, target_pool: str = "worker", timeout: float | None = None) -> Agent:
    """Register the coordinator's handlers on ``agent``; returns it."""
    targets: dict[str, str] = {}  # own session id -> target session id (cache of the state)
    lock = threading.Lock()

    def target_of(session: Session, *, renew: bool = False) -> str:
        with lock:
            known = None if renew else targets.get(session.id)
        if known is None:
            state = agent.get_state(session)
            remembered = state.get("target")
            if isinstance(remembered, str) and not renew:
                known = remembered
            else:
                known = agent.open_session(target_pool, key=session.id, parent=session.id).id
                agent.set_state(session, {**state, "target": known})
        with lock:
            targets[session.id] = known
        return known

    def dispatched(session: Session) -> None:
        # Bookkeeping after the forward: a refusal (PolicyDenied) or an old daemon must not cost the reply.
        try:
            agent.publish(DISPATCHED_TOPIC, {"session": session.id, "target_pool": target_pool})
        except ClawctlError as exc:
            say("coordinator", f"event {DISPATCHED_TOPIC} not published: {exc.message}")
        try:
            agent.state_update(DISPATCHED_KEY, _count)
        except ClawctlError as exc:
            say("coordinator", f"counter {DISPATCHED_KEY} not updated: {exc.message}")

    @agent.on_open
    def opened(session: Session, state: dict[str, Any]) -> None:
        remembered = state.get("target")
        if isinstance(remembered, str):
            with lock:
                targets[session.id] = remembered

    @agent.on_message
    def forward(session: Session, message: Any) -> Any:
        via = target_of(session)
        try:
            result = agent.send(via, message, timeout=timeout)
        except NotFound:  # the target session is gone (closed, expired): open a new one once
            via = target_of(session, renew=True)
            result = agent.send(via, message, timeout=timeout)
        dispatched(session)
        return {"coordinator": agent.agent_id, "via": via, "result": result}

    @agent.on_closing
    def closing(session: Session, _reason: str, _deadline: float) -> None:
        with lock:
            targets.pop(session.id, None)

    return agent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coordinator", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target-pool", default="worker", help="the pool messages are forwarded to")
    parser.add_argument("--timeout", type=float, default=None, help="seconds to wait for the target's reply")
    parser.add_argument("--workers", type=int, default=4, help="sessions handled at once")
    args = parser.parse_args(argv)
    try:
        agent = build(Agent.from_env(workers=args.workers), args.target_pool, args.timeout)
    except ClawctlError as exc:
        print(f"coordinator: {exc.message}", file=sys.stderr)
        return 2
    say("coordinator", f"started, forwarding to pool {args.target_pool}")
    agent.run()
    say("coordinator", "stopping on signal")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
