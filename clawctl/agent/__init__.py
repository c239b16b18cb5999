"""The agent side of clawctl: example agents now, the agent SDK (control socket) later.

Importing this package stays cheap: example agents start through it for every
spawn.
"""

from __future__ import annotations

__all__: list[str] = []
