"""Ask before destructive changes: --yes, or a confirmation when both ends are a terminal."""

from __future__ import annotations

import sys

from clawctl.errors import ClawctlError
from clawctl.plan import Plan


def ask(question: str, *, yes: bool) -> bool:
    """True with ``yes`` or once the operator confirms on a terminal; False when there is no
    terminal to ask on. Declining raises ClawctlError (exit 1, nothing recorded)."""
    if yes:
        return True
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return False
    import typer

    if typer.confirm(question, default=False):
        return True
    raise ClawctlError("not confirmed: nothing was recorded")


def approve_removals(change: Plan, *, yes: bool) -> tuple[str, ...]:
    """The pools the operator allows ``change`` to remove: all of them with ``yes`` or once
    confirmed, none when nobody can be asked (the registry then refuses the change with a
    message that names the pools and --yes)."""
    removed = change.removed_pools
    if not removed:
        return ()
    names = ", ".join(removed)
    question = f"remove {len(removed)} pool{'s' if len(removed) > 1 else ''} ({names}) from fleet {change.fleet}?"
    return removed if ask(question, yes=yes) else ()
