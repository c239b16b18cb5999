"""``clawctl retry``: give agents in CrashLoop (or stopped by their restart policy) a new start."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from clawctl.errors import ExitCode


def retry_command(
    target: Annotated[str, typer.Argument(help="agent/ID, pool/NAME or fleet/NAME.")],
) -> int:
    """Clear CrashLoop, BackOff and Exited agents of TARGET so the daemon starts them again."""
    from clawctl.cli.targets import parse_target
    from clawctl.daemon.client import wake
    from clawctl.home import clawctl_home
    from clawctl.registry import audit
    from clawctl.registry import supervision as store
    from clawctl.registry.engine import Registry
    from clawctl.registry.provenance import current_user

    kind, name = parse_target(target)
    user = current_user()
    with Registry() as registry, registry.writing() as conn:  # the command and its audit row: one transaction
        command = store.enqueue_command(conn, verb="retry", target=f"{kind}/{name}", actor=user)
        audit.record(conn, [audit.operator_entry(user, "retry", f"{kind}/{name}", {"command": command})])
    if wake(clawctl_home()):
        sys.stdout.write(f"retry of {kind}/{name} sent to the daemon\n")
    else:
        sys.stdout.write(f"retry of {kind}/{name} queued; it runs when the daemon starts\n")
    return ExitCode.OK
