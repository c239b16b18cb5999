"""``clawctl validate``: check config sets and report every problem."""

from __future__ import annotations

import os
import sys
from enum import Enum
from typing import Annotated

import typer

from clawctl.cli.options import FileOption, PathsArgument, collect_paths
from clawctl.cli.render.style import use_color
from clawctl.errors import ExitCode


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
    from clawctl.cli.render import validation as render
    from clawctl.config.loader import load_paths

    combined = collect_paths(paths, files)
    groups = [[p] for p in combined] if each else [combined]
    results = [load_paths(group) for group in groups]
    summary = render.summarize(results, strict=strict)
    diagnostics = [d for r in results for d in r.diagnostics]
    if output_format is ReportFormat.JSON:
        text = render.render_json(diagnostics, summary, strict=strict)
    elif output_format is ReportFormat.GITHUB:
        text = render.render_github(diagnostics, summary, strict=strict)
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if step_summary:
            with open(step_summary, "a", encoding="utf-8") as fh:
                fh.write(render.render_step_summary(diagnostics, summary, strict=strict))
    elif output_format is ReportFormat.JUNIT:
        text = render.render_junit(results, summary, strict=strict)
    else:
        text = render.render_text(diagnostics, summary, strict=strict, color=use_color(sys.stdout))
    sys.stdout.write(text)
    return ExitCode.OK if summary.valid else ExitCode.FAILED
