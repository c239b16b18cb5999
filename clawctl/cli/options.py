"""Options shared by several commands."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from clawctl.errors import UsageError

PathsArgument = Annotated[
    Optional[list[str]],
    typer.Argument(help="Config files or directories ('-' reads standard input).", show_default=False),
]
FileOption = Annotated[
    Optional[list[str]],
    typer.Option("-f", "--filename", help="Config file or directory (may repeat; same as a PATH argument).",
                 show_default=False),
]


def collect_paths(paths: list[str] | None, files: list[str] | None) -> list[str]:
    """PATH arguments and -f options together, in order; at least one is required."""
    combined = list(paths or []) + list(files or [])
    if not combined:
        raise UsageError("no config path given", hint="name files or directories, e.g. clawctl validate fleet/")
    if combined.count("-") > 1:
        raise UsageError("'-' (standard input) can be given only once")
    return combined
