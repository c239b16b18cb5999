"""Argument checks shared by several commands, free of typer (the fast start path uses them)."""

from __future__ import annotations

from clawctl.errors import UsageError


def collect_paths(paths: list[str] | None, files: list[str] | None) -> list[str]:
    """PATH arguments and -f options together, in order; at least one is required."""
    combined = list(paths or []) + list(files or [])
    if not combined:
        raise UsageError("no config path given", hint="name files or directories, e.g. clawctl validate fleet/")
    if combined.count("-") > 1:
        raise UsageError("'-' (standard input) can be given only once")
    return combined
