"""``clawctl history [FLEET]``: the recorded revisions, oldest first."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated, Optional

import typer

from clawctl.errors import ExitCode


class HistoryFormat(str, Enum):
    TABLE = "table"
    JSON = "json"


def history_command(
    fleet: Annotated[Optional[str], typer.Argument(help="Only this fleet's revisions.")] = None,
    output: Annotated[HistoryFormat, typer.Option("--output", "-o", help="Output format.")] = HistoryFormat.TABLE,
) -> int:
    """List applied revisions: number, fleet, kind, time, user, changes, git commit, message."""
    from clawctl.cli.render import registry as render
    from clawctl.registry.engine import Registry
    from clawctl.registry.history import history

    with Registry() as registry:
        revisions = history(registry, fleet)
    if output is HistoryFormat.JSON:
        sys.stdout.write(render.render_history_json(revisions))
    else:
        sys.stdout.write(render.render_history_table(revisions))
    return ExitCode.OK
