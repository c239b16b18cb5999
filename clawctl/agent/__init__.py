"""The agent side of clawctl: what an agent program calls, and example agents.

Importing this package stays cheap (stdlib only, a few modules): example agents
start through it for every spawn. The control-socket SDK (``Agent``, ``Session``,
``Message``, ``PublishedEvent``, ``StateChange``, in ``clawctl.agent.sdk``) is loaded
on first use of those names. See docs/sdk.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clawctl.agent.sdk import Agent, Message, PublishedEvent, Session, StateChange

__all__ = ["Agent", "Session", "Message", "PublishedEvent", "StateChange", "notify_ready"]

READY_FILE_ENV = "CLAWCTL_READY_FILE"

_LAZY = frozenset({"Agent", "Session", "Message", "PublishedEvent", "StateChange"})


def notify_ready() -> bool:
    """Tell the daemon this agent is ready (pools with ``health.readiness: notify``).

    Returns False when not started by a clawctl daemon (nothing to tell). Safe to
    call more than once. The SDK calls it after each successful ``hello``.
    """
    path = os.environ.get(READY_FILE_ENV)
    if not path:
        return False
    Path(path).touch()
    return True


def __getattr__(name: str) -> Any:
    """The SDK's names load it (and the protocol client) only when first used."""
    if name in _LAZY:
        from clawctl.agent import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
