"""``clawctl apply``: validate, plan, and record the fleet's desired state as a new revision."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from clawctl.cli.options import FileOption, PathsArgument, collect_paths
from clawctl.errors import ExitCode


def apply_command(
    paths: PathsArgument = None,
    files: FileOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; record nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Allow removing pools without asking.")] = False,
    message: Annotated[Optional[str], typer.Option("--message", "-m",
                                                   help="Why: stored with the revision.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the daemon has every pool ready.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds --wait waits before failing.")] = 300.0,
) -> int:
    """Apply config files: show the plan, then record it as one new revision (all or nothing).

    Applying files that match the registry records nothing. Removing pools needs
    --yes (or a confirmation on a terminal). Starts the daemon if none runs and
    wakes it. Exit 0 applied or unchanged (and converged with --wait), 1 failed.
    """
    from clawctl.cli.configset import load_fleet
    from clawctl.cli.confirm import approve_removals
    from clawctl.cli.render import plan as render
    from clawctl.cli.render.style import arrow, palette, use_color
    from clawctl.registry.apply import plan_fleet, record, revision_meta
    from clawctl.registry.engine import Registry
    from clawctl.registry.records import RevisionKind

    combined = collect_paths(paths, files)
    fleet = load_fleet(combined)
    if fleet is None:
        return ExitCode.FAILED
    if not dry_run:
        from clawctl.cli.supervise import prestart_daemon

        prestart_daemon()
    out = sys.stdout
    with Registry() as registry:
        change = plan_fleet(registry, fleet)
        out.write(render.render_text(change, colors=palette(use_color(out)), arrow=arrow(out)))
        if dry_run:
            if change.changed:
                out.write("dry run: nothing recorded\n")
            return ExitCode.OK
        if not change.changed:
            return _supervise(fleet.name, wait=wait, timeout=timeout)
        approved = approve_removals(change, yes=yes)
        meta = revision_meta(RevisionKind.APPLY, message=message, paths=combined)
        outcome = record(registry, change, meta=meta, approved_removals=approved)
    if outcome.revision is None:
        out.write(f"fleet {fleet.name} already matches (revision {outcome.plan.base_revision}): nothing recorded\n")
    else:
        out.write(f"applied: fleet {fleet.name} is at revision {outcome.revision} "
                  f"({render.done_text(outcome.plan)})\n")
    return _supervise(fleet.name, wait=wait, timeout=timeout)


def _supervise(fleet: str, *, wait: bool, timeout: float) -> int:
    from clawctl.cli.supervise import notify_daemon, wait_for_fleet

    running = notify_daemon()
    if wait and running:
        wait_for_fleet(fleet, timeout=timeout, out=sys.stdout)
    return ExitCode.OK
