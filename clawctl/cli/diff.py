"""``clawctl diff``: what ``apply`` would change in the registry."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated

import typer

from clawctl.cli.options import FileOption, PathsArgument, collect_paths
from clawctl.errors import ClawctlError, ExitCode


class DiffFormat(str, Enum):
    TEXT = "text"
    JSON = "json"


def diff_command(
    paths: PathsArgument = None,
    files: FileOption = None,
    output: Annotated[DiffFormat, typer.Option("--output", "-o", help="Output format.")] = DiffFormat.TEXT,
) -> int:
    """Show what apply would change: created, updated (field by field) and removed objects.

    Exit 0 no changes, 1 changes, 2 error (invalid config, unreadable path, registry problem).
    """
    try:
        return _diff(collect_paths(paths, files), output)
    except ClawctlError as exc:
        exc.exit_code = ExitCode.USAGE  # diff reserves 1 for "there are changes"
        raise


def _diff(paths: list[str], output: DiffFormat) -> int:
    from clawctl.cli.configset import load_fleet
    from clawctl.cli.render import plan as render
    from clawctl.cli.render.style import arrow, palette, use_color
    from clawctl.registry.apply import plan_fleet
    from clawctl.registry.engine import Registry

    fleet = load_fleet(paths, as_json=output is DiffFormat.JSON)
    if fleet is None:
        return ExitCode.USAGE
    with Registry() as registry:
        change = plan_fleet(registry, fleet)
    if output is DiffFormat.JSON:
        sys.stdout.write(render.render_json(change))
    else:
        sys.stdout.write(render.render_text(change, colors=palette(use_color(sys.stdout)), arrow=arrow(sys.stdout)))
    return ExitCode.FAILED if change.changed else ExitCode.OK
