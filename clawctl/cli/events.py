"""``clawctl events``: what the daemon did and saw (starts, exits, restarts, crash loops…)."""

from __future__ import annotations

import json
import sys
from enum import Enum
from typing import Annotated, Optional

import typer

from clawctl.errors import ExitCode


class EventsFormat(str, Enum):
    TABLE = "table"
    JSON = "json"


def events_command(
    fleet: Annotated[Optional[str], typer.Option("--fleet", help="Only this fleet.")] = None,
    target: Annotated[Optional[str], typer.Option("--agent", help="Only this agent (or pool) id.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many of the newest events.")] = 50,
    output: Annotated[EventsFormat, typer.Option("--output", "-o", help="Output format.")] = EventsFormat.TABLE,
) -> int:
    """Show the newest supervision events, oldest first."""
    from clawctl.cli.render.table import format_table
    from clawctl.registry import supervision as store
    from clawctl.registry.engine import Registry

    with Registry() as registry, registry.reading() as conn:
        rows = store.recent_events(conn, fleet=fleet, target=target, limit=limit) if conn is not None else []
    if output is EventsFormat.JSON:
        data = [{"at": r["at"].isoformat().replace("+00:00", "Z"), "fleet": r["fleet"], "target": r["target"],
                 "reason": r["reason"], "level": r["level"], "message": r["message"]} for r in rows]
        sys.stdout.write(json.dumps({"version": 1, "events": data}, indent=2) + "\n")
        return ExitCode.OK
    if not rows:
        sys.stdout.write("no events recorded\n")
        return ExitCode.OK
    table = [[r["at"].astimezone().strftime("%H:%M:%S.%f")[:-3], r["fleet"], r["target"], r["reason"], r["message"]]
             for r in rows]
    sys.stdout.write(format_table(["TIME", "FLEET", "TARGET", "REASON", "MESSAGE"], table))
    return ExitCode.OK
