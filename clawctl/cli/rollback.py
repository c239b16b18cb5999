"""``clawctl rollback REV``: record a new revision whose content is that of revision REV."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from clawctl.errors import ExitCode


def rollback_command(
    revision: Annotated[int, typer.Argument(help="Revision number (see `clawctl history`).", min=1)],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; record nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Allow removing pools without asking.")] = False,
    message: Annotated[Optional[str], typer.Option("--message", "-m", help="Why: stored with the revision.")] = None,
) -> int:
    """Roll a fleet back to the content of revision REV, recorded as a new revision.

    Shows the plan first; removing pools needs --yes (or a confirmation on a terminal).
    Exit 0 rolled back or nothing to do, 1 failed.
    """
    from clawctl.cli.configset import report_invalid
    from clawctl.cli.confirm import approve_removals
    from clawctl.cli.render import plan as render
    from clawctl.cli.render.style import arrow, palette, use_color
    from clawctl.registry.apply import record, revision_meta, rollback_plan
    from clawctl.registry.engine import Registry
    from clawctl.registry.records import RevisionKind

    out = sys.stdout
    with Registry() as registry:
        change, info, loaded = rollback_plan(registry, revision)
        if loaded.fleet is None:
            sys.stderr.write(f"revision {revision} of fleet {info.fleet} no longer validates with this clawctl:\n")
            report_invalid(loaded)
            return ExitCode.FAILED
        out.write(f"rollback of fleet {info.fleet} to the content of revision {revision}\n")
        out.write(render.render_text(change, colors=palette(use_color(out)), arrow=arrow(out)))
        if not change.changed or dry_run:
            if dry_run and change.changed:
                out.write("dry run: nothing recorded\n")
            return ExitCode.OK
        approved = approve_removals(change, yes=yes)
        meta = revision_meta(RevisionKind.ROLLBACK, message=message or f"rollback to revision {revision}",
                             rollback_of=revision)
        outcome = record(registry, change, meta=meta, approved_removals=approved)
    if outcome.revision is None:
        out.write(f"fleet {info.fleet} already holds that content: nothing recorded\n")
    else:
        out.write(f"rolled back: fleet {info.fleet} is at revision {outcome.revision} "
                  f"(content of revision {revision}; {render.done_text(outcome.plan)})\n")
        from clawctl.cli.supervise import notify_daemon

        notify_daemon()
    return ExitCode.OK
