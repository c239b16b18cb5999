"""``clawctl messages``: durable agent messages as the daemon holds them (e.g. the dead letters)."""

from __future__ import annotations

import json
import sys
from enum import Enum
from typing import Annotated, Any, Optional

import typer

from clawctl.errors import ExitCode


class Output(str, Enum):
    TABLE = "table"
    JSON = "json"


def messages_command(
    state: Annotated[Optional[str], typer.Option("--state", help="Only this state: queued, delivered, acked, "
                                                                 "dead.")] = None,
    agent: Annotated[Optional[str], typer.Option("--agent", help="Only messages to this agent id.")] = None,
    fleet: Annotated[Optional[str], typer.Option("--fleet", help="The fleet (needed only when several are "
                                                                 "applied).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000, help="At most this many.")] = 50,
    output: Annotated[Output, typer.Option("--output", "-o", help="Output format.")] = Output.TABLE,
) -> int:
    """List durable messages between agents, newest first (ask the daemon)."""
    from clawctl.cli.render.table import format_table
    from clawctl.daemon.client import operator_connection
    from clawctl.home import clawctl_home

    params: dict[str, Any] = {"limit": limit}
    for name, value in (("state", state), ("agent", agent), ("fleet", fleet)):
        if value is not None:
            params[name] = value
    with operator_connection(clawctl_home()) as conn:
        result = conn.call("messages.list", params)
    if output is Output.JSON:
        sys.stdout.write(json.dumps({"version": 1, **result}, indent=2, ensure_ascii=False) + "\n")
        return ExitCode.OK
    rows = [[m["id"][:12], m["from"], m["to"], m["recipient"], m["state"], str(m["attempts"]),
             (m["created_at"] or "-").replace("T", " ")[:19],
             json.dumps(m["payload"], ensure_ascii=False)[:60]] for m in result["messages"]]
    if not rows:
        sys.stdout.write("no messages\n")
        return ExitCode.OK
    sys.stdout.write(format_table(["ID", "FROM", "TO", "RECIPIENT", "STATE", "DELIVERIES", "SENT", "PAYLOAD"], rows))
    return ExitCode.OK
