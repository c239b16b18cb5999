"""Shared bits of the example agents: identity and a stop flag set by SIGTERM/SIGINT."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time


def agent_id() -> str:
    """This agent's id as the daemon set it, or ``-`` when started by hand."""
    return os.environ.get("CLAWCTL_AGENT_ID", "-")


def say(name: str, message: str) -> None:
    """One log line: UTC time, program, agent id, message; flushed at once."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sys.stdout.write(f"{stamp} {name} agent={agent_id()} pid={os.getpid()} {message}\n")
    sys.stdout.flush()


def stop_event() -> threading.Event:
    """An event set on SIGTERM or SIGINT, so that the main loop can end cleanly."""
    event = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        event.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return event
