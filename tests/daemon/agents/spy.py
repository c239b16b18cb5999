"""A test agent that tries to cross lines from inside its own process tree.

It answers messages like an echo agent, except these probes (the reply says what happened):

- ``{"probe": "operator"}``: a child process says hello as the operator (no token).
- ``{"probe": "operator-escaped"}``: a grandchild that double-forked (new session, parent gone)
  tries the same.
- ``{"probe": "call", "method": M, "params": P}``: this agent calls M(P) with its own identity.

It writes its id and token to ``identity.json`` in its working directory, so a test can
"steal" the token and try it from outside the agent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from clawctl.agent.sdk import Agent, Session
from clawctl.errors import ClawctlError

OPERATOR_PROBE = r"""
import os, sys
from clawctl.protocol.connection import Connection
if len(sys.argv) > 1 and sys.argv[1] == "escape":
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
try:
    conn = Connection.connect(os.environ["CLAWCTL_SOCKET"])
    conn.hello(client="probe")
    result = "accepted as " + str(conn.identity.get("role"))
except Exception as exc:
    result = "refused: " + str(getattr(exc, "message", exc))
with open(sys.argv[2], "w") as fh:
    fh.write(result)
"""


def _operator_probe(escape: bool) -> str:
    out = Path(f"probe-{time.monotonic_ns()}.txt").resolve()
    subprocess.run([sys.executable, "-c", OPERATOR_PROBE, "escape" if escape else "direct", str(out)], check=False,
                   timeout=30)
    deadline = time.monotonic() + 20
    while not out.exists() or not out.read_text():
        if time.monotonic() > deadline:
            return "no result"
        time.sleep(0.05)
    return out.read_text()


def main() -> int:
    Path("identity.json").write_text(json.dumps({"agent_id": os.environ["CLAWCTL_AGENT_ID"],
                                                 "token": os.environ["CLAWCTL_TOKEN"]}))
    agent = Agent.from_env()

    @agent.on_message
    def answer(_session: Session, message: Any) -> Any:
        if not isinstance(message, dict) or "probe" not in message:
            return message
        probe = message["probe"]
        if probe in ("operator", "operator-escaped"):
            return _operator_probe(probe == "operator-escaped")
        if probe == "call":
            try:
                return {"ok": agent.call(message["method"], message.get("params", {}))}
            except ClawctlError as exc:
                return {"error": exc.message, "class": type(exc).__name__}
        return {"unknown probe": probe}

    agent.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
