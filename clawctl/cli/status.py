"""``clawctl status [POOL]``: the desired state per fleet and pool (the daemon adds the live side)."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated, Optional

import typer

from clawctl.errors import ExitCode


class StatusFormat(str, Enum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


def status_command(
    pool: Annotated[Optional[str], typer.Argument(help="Only pools with this name.")] = None,
    output: Annotated[StatusFormat, typer.Option("--output", "-o", help="Output format.")] = StatusFormat.TABLE,
) -> int:
    """Show every fleet and pool as recorded by the last apply."""
    from clawctl.cli.render import registry as render
    from clawctl.cli.render.style import palette, use_color
    from clawctl.registry.engine import Registry
    from clawctl.registry.status import desired_status

    with Registry() as registry:
        fleets = desired_status(registry, pool)
        where = registry.where
    if output is StatusFormat.JSON:
        sys.stdout.write(render.render_status_json(fleets))
    elif output is StatusFormat.YAML:
        sys.stdout.write(render.render_status_yaml(fleets))
    else:
        sys.stdout.write(render.render_status_table(fleets, colors=palette(use_color(sys.stdout)), where=where))
    return ExitCode.OK
