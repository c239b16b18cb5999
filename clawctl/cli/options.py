"""Options shared by several commands."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from clawctl.cli.arguments import collect_paths

__all__ = ["FileOption", "PathsArgument", "collect_paths"]

PathsArgument = Annotated[
    Optional[list[str]],
    typer.Argument(help="Config files or directories ('-' reads standard input).", show_default=False),
]
FileOption = Annotated[
    Optional[list[str]],
    typer.Option("-f", "--filename", help="Config file or directory (may repeat; same as a PATH argument).",
                 show_default=False),
]

