"""``clawctl validate``: check config sets and report every problem."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from clawctl.cli.options import FileOption, PathsArgument
from clawctl.cli.validate_run import run_validate


class ReportFormat(str, Enum):
    TEXT = "text"
    JSON = "json"
    GITHUB = "github"
    JUNIT = "junit"


def validate_command(
    paths: PathsArgument = None,
    files: FileOption = None,
    output_format: Annotated[ReportFormat, typer.Option("--format", "-o", help="Report format.")] = ReportFormat.TEXT,
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings as errors.")] = False,
    each: Annotated[bool, typer.Option("--each", help="Treat every PATH as its own config set (one fleet each).")] = False,
) -> int:
    """Validate config files: every error in every file, with file:line:col and a hint.

    Exit 0 valid, 1 invalid, 2 usage error or unreadable path.
    """
    # Usually not reached: cli/fast_path.py runs validate without typer; this is the
    # path for --help and for arguments the fast parser leaves to typer.
    return run_validate(paths, files, output_format=output_format.value, strict=strict, each=each)
