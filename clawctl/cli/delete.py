"""``clawctl delete FLEET``: remove a fleet's desired state (its history is kept)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from clawctl.errors import Conflict, ExitCode


def delete_command(
    fleet: Annotated[str, typer.Argument(help="Name of the fleet to delete.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be removed; record nothing.")] = False,
) -> int:
    """Delete a fleet: remove all its pools and policies from the desired state.

    Recorded as a revision, so `clawctl history` keeps it and `clawctl rollback` can
    restore an earlier one. Needs --yes (or a confirmation on a terminal).
    """
    from clawctl.cli.confirm import ask
    from clawctl.cli.render import plan as render
    from clawctl.cli.render.style import palette, use_color
    from clawctl.registry.apply import delete_plan, record, revision_meta
    from clawctl.registry.engine import Registry
    from clawctl.registry.records import RevisionKind

    out = sys.stdout
    with Registry() as registry:
        change = delete_plan(registry, fleet)
        out.write(render.render_text(change, colors=palette(use_color(out))))
        if dry_run:
            out.write("dry run: nothing recorded\n")
            return ExitCode.OK
        pools = len(change.removed_pools)
        policies = change.counts()["delete"] - pools - 1
        what = f"{_count(pools, 'pool')} and {_count(policies, 'policy', 'policies')}"
        if not ask(f"delete fleet {fleet} ({what})?", yes=yes):
            raise Conflict(f"deleting fleet {fleet} removes its {what}", hint="re-run with --yes to delete it")
        approved = change.removed_pools
        outcome = record(registry, change, meta=revision_meta(RevisionKind.DELETE, message=f"delete fleet {fleet}"),
                         approved_removals=approved)
    out.write(f"deleted: fleet {fleet} (revision {outcome.revision}); its history is kept\n")
    from clawctl.daemon.client import wake
    from clawctl.home import clawctl_home

    if wake(clawctl_home()):
        out.write("the daemon is stopping the fleet's agents\n")
    return ExitCode.OK


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"
