"""``clawctl status [POOL]``: desired state per fleet and pool, and the live side the daemon reports."""

from __future__ import annotations

import sys
import time
from enum import Enum
from typing import Annotated, Any, Optional

import typer

from clawctl.errors import ExitCode


class StatusFormat(str, Enum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


def status_command(
    pool: Annotated[Optional[str], typer.Argument(help="Only pools with this name.")] = None,
    output: Annotated[StatusFormat, typer.Option("--output", "-o", help="Output format.")] = StatusFormat.TABLE,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Redraw every second until Ctrl-C.")] = False,
) -> int:
    """Show every fleet and pool: desired replicas, ready agents, restarts, quotas."""
    while True:
        text = _render(pool, output)
        if not watch:
            sys.stdout.write(text)
            return ExitCode.OK
        if sys.stdout.isatty():
            sys.stdout.write("\x1b[H\x1b[2J")
        sys.stdout.write(text)
        sys.stdout.flush()
        time.sleep(1.0)


def _render(pool: str | None, output: StatusFormat) -> str:
    from clawctl.cli.render import live as render_live
    from clawctl.cli.render import registry as render
    from clawctl.cli.render.style import palette, use_color
    from clawctl.daemon.instance import read_info
    from clawctl.daemon.live import agent_json, live_status, pool_json
    from clawctl.home import clawctl_home
    from clawctl.registry.engine import Registry
    from clawctl.registry.status import desired_status

    with Registry() as registry:
        fleets = desired_status(registry, pool)
        where = registry.where
        live = live_status(registry, fleets)
    daemon = read_info(clawctl_home())
    if output in (StatusFormat.JSON, StatusFormat.YAML):
        data: dict[str, Any] = render.status_data(fleets)
        data["daemon"] = {"running": daemon is not None, "pid": daemon.pid if daemon else None}
        for fleet in data["fleets"]:
            state = live.get(fleet["name"])
            if state is None:
                continue
            by_pool = {p.pool: p for p in state.pools}
            for entry in fleet["pools"]:
                progress = by_pool.get(entry["name"])
                entry["live"] = pool_json(progress) if progress else None
            fleet["agents"] = [agent_json(a) for a in state.agents if pool is None or a.pool == pool]
        if output is StatusFormat.JSON:
            import json

            return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        return render.render_yaml(data)
    colors = palette(use_color(sys.stdout))
    parts = [render.render_status_table(fleets, colors=colors, where=where)]
    for fleet in fleets:
        state = live.get(fleet.name)
        if state is not None and (state.agents or fleet.pools):
            if pool is not None:
                state = type(state)(state.fleet, [p for p in state.pools if p.pool == pool],
                                    [a for a in state.agents if a.pool == pool])
            parts.append(f"\n{colors.bold}live: fleet {fleet.name}{colors.reset}\n")
            parts.append(render_live.render_live(state, colors=colors))
    if fleets:
        parts.append("\n" + (f"daemon running (pid {daemon.pid})\n" if daemon
                             else "daemon not running: start it with `clawctl daemon start`\n"))
    return "".join(parts)
