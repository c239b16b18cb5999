"""Load the config set a command was given, reporting problems exactly as ``clawctl validate`` does."""

from __future__ import annotations

import sys

from clawctl.cli.render.style import use_color
from clawctl.config.loader import LoadResult
from clawctl.config.model import Fleet


def report_invalid(result: LoadResult, *, as_json: bool = False) -> None:
    """Print the validate report of an invalid config set (text, or validate's JSON) on stdout."""
    from clawctl.cli.render import validation as render

    summary = render.summarize([result], strict=False)
    if as_json:
        sys.stdout.write(render.render_json(result.diagnostics, summary, strict=False))
    else:
        sys.stdout.write(render.render_text(result.diagnostics, summary, strict=False, color=use_color(sys.stdout)))


def load_fleet(paths: list[str], *, as_json: bool = False) -> Fleet | None:
    """The validated fleet of ``paths``; None after printing the report when it is invalid.

    Warnings of a valid config set go to stderr, in validate's text format.
    Raises UsageError for a path that cannot be read.
    """
    from clawctl.cli.render import validation as render
    from clawctl.config.loader import load_paths

    result = load_paths(paths)
    if result.fleet is None:
        report_invalid(result, as_json=as_json)
        return None
    if result.warnings:
        summary = render.summarize([result], strict=False)
        sys.stderr.write(render.render_text(result.warnings, summary, strict=False, color=use_color(sys.stderr)))
    return result.fleet
