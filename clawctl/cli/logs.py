"""``clawctl logs agent/ID [-f] [--tail N]``: an agent's stdout and stderr."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated, BinaryIO, Optional

import typer

from clawctl.errors import ExitCode, NotFound


def logs_command(
    target: Annotated[str, typer.Argument(help="agent/ID (agent/FLEET/ID when several fleets have that id).")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")] = False,
    tail: Annotated[Optional[int], typer.Option("--tail", "-n", min=0, help="Only the last N lines.")] = None,
) -> int:
    """Print an agent's stdout and stderr (older, rotated copies sit beside it as .1, .2, …)."""
    from clawctl.cli.targets import parse_target

    _, name = parse_target(target, allowed=("agent",))
    path = _find_log(name)
    with path.open("rb") as fh:
        if tail is not None:
            _write_tail(fh, tail)
        else:
            _copy(fh)
        while follow:
            if not _copy(fh):
                time.sleep(0.2)
                if _truncated(fh, path):
                    fh.seek(0)  # rotation copies the log aside and truncates it in place
    return ExitCode.OK


def _find_log(name: str) -> Path:
    from clawctl.daemon.paths import agent_log_dir, agent_logs_root
    from clawctl.home import clawctl_home
    from clawctl.runtime.logs import log_path

    home = clawctl_home()
    fleet, _, agent = name.rpartition("/")
    if fleet:
        fleets = [fleet]
    else:
        root = agent_logs_root(home)
        fleets = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    found = [log_path(agent_log_dir(home, f), agent) for f in fleets]
    found = [p for p in found if p.exists()]
    if not found:
        raise NotFound(f"no log for agent {name}", hint="see `clawctl status` for agent ids")
    if len(found) > 1:
        raise NotFound(f"agent {name} exists in several fleets",
                       hint="name it as agent/FLEET/ID: " + ", ".join(f"agent/{p.parent.name}/{agent}" for p in found))
    return found[0]


def _copy(fh: BinaryIO) -> bool:
    data = fh.read(1 << 16)
    if data:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return bool(data)


def _write_tail(fh: BinaryIO, lines: int) -> None:
    size = fh.seek(0, os.SEEK_END)
    block, data = 1 << 14, b""
    position = size
    while position > 0 and data.count(b"\n") <= lines:
        step = min(block, position)
        position -= step
        fh.seek(position)
        data = fh.read(step) + data
    chunk = b"\n".join(data.split(b"\n")[-lines - 1:]) if lines else b""
    sys.stdout.buffer.write(chunk)
    sys.stdout.flush()
    fh.seek(size)


def _truncated(fh: BinaryIO, path: Path) -> bool:
    try:
        return os.stat(path).st_size < fh.tell()
    except OSError:
        return False
