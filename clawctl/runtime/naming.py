"""Names derived from agent ids for files and cgroups."""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_name(agent_id: str) -> str:
    """``agent_id`` as one path component: unsafe characters become ``_``, at most
    120 characters, never empty, never starting with a dot."""
    name = _UNSAFE.sub("_", agent_id)[:120]
    return "_" + name if name.startswith(".") or not name else name
