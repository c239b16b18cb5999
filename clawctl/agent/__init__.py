"""The agent side of clawctl: what an agent program calls, and example agents.

Importing this package stays cheap (stdlib only): example agents start through it
for every spawn. The control-socket SDK joins this module later.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["notify_ready"]

READY_FILE_ENV = "CLAWCTL_READY_FILE"


def notify_ready() -> bool:
    """Tell the daemon this agent is ready (pools with ``health.readiness: notify``).

    Returns False when not started by a clawctl daemon (nothing to tell). Safe to
    call more than once.
    """
    path = os.environ.get(READY_FILE_ENV)
    if not path:
        return False
    Path(path).touch()
    return True
