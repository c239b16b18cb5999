"""The environment an agent process starts with (pure).

An agent does not inherit the daemon's environment: secrets and settings of the
operator's shell stay out. It gets a few variables every program needs, the
proxy / CA settings needed to reach model APIs, then the pool's own ``env``,
then the runtime's variables. The pool's ``env`` wins over inherited values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

INHERITED: frozenset[str] = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR",
        "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
        "SSL_CERT_FILE", "SSL_CERT_DIR",
    }
)
"""Variables passed through from the daemon's environment when set there."""

INHERITED_PREFIXES: tuple[str, ...] = ("LC_",)

DEFAULTS: Mapping[str, str] = {"PYTHONUNBUFFERED": "1"}
"""Set unless the pool's env says otherwise: stdout is a log file, and a Python
agent's heartbeat lines should reach it as they happen, not per 8 KiB block."""

FALLBACK_PATH = "/usr/local/bin:/usr/bin:/bin"


def agent_environment(
    agent_env: Mapping[str, str],
    *,
    agent_id: str,
    parent_env: Mapping[str, str],
    python_dir: str,
) -> dict[str, str]:
    """The full environment for one agent.

    Guarantees: ``CLAWCTL_AGENT_ID`` is the agent's id; ``PATH`` starts with
    ``python_dir`` (the directory of the daemon's interpreter, so ``python3 -m
    clawctl.agent...`` runs this installation) exactly once; nothing from
    ``parent_env`` outside ``INHERITED`` / ``LC_*`` is present.
    """
    env = {
        key: value
        for key, value in parent_env.items()
        if key in INHERITED or key.startswith(INHERITED_PREFIXES)
    }
    env.update(DEFAULTS)
    env.update(agent_env)
    env["CLAWCTL_AGENT_ID"] = agent_id
    env["PATH"] = prepend_path(python_dir, env.get("PATH") or FALLBACK_PATH)
    return env


def prepend_path(directory: str, path: str) -> str:
    """``path`` with ``directory`` first and not repeated later."""
    rest = [entry for entry in path.split(os.pathsep) if entry and entry != directory]
    return os.pathsep.join([directory, *rest])
