"""Where an agent's files live under CLAWCTL_HOME (shared by the daemon and the CLI)."""

from __future__ import annotations

from pathlib import Path

READY_FILE = ".clawctl-ready"


def agent_workdir(home: Path, fleet: str, agent_id: str) -> Path:
    """The agent's working directory (its cwd)."""
    return home / "agents" / fleet / agent_id


def agent_logs_root(home: Path) -> Path:
    """The directory holding one log directory per fleet."""
    return home / "logs" / "agents"


def agent_log_dir(home: Path, fleet: str) -> Path:
    """Where the agents of ``fleet`` write stdout and stderr."""
    return agent_logs_root(home) / fleet


def ready_file(home: Path, fleet: str, agent_id: str) -> Path:
    """The file a ``readiness: notify`` agent creates to say it is ready ($CLAWCTL_READY_FILE)."""
    return agent_workdir(home, fleet, agent_id) / READY_FILE


CONTROL_SOCKET = "control.sock"


def control_socket(home: Path) -> Path:
    """The daemon's control socket ($CLAWCTL_SOCKET for agents; the CLI connects here)."""
    return home / CONTROL_SOCKET
