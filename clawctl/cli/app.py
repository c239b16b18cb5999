"""The typer application: global options and the explicit list of commands."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

import clawctl


def _version(value: bool) -> None:
    if value:
        typer.echo(f"clawctl {clawctl.__version__}")
        raise typer.Exit(0)


def _root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
    home: Annotated[Optional[str], typer.Option("--home", envvar="CLAWCTL_HOME", show_envvar=True,
                                                help="State directory (registry, socket, logs).")] = None,
    registry: Annotated[Optional[str], typer.Option("--registry", envvar="CLAWCTL_REGISTRY", show_envvar=True,
                                                    help="SQLAlchemy URL of the registry (default: SQLite in the home).")] = None,
) -> None:
    """Declarative operator CLI for fleets of AI agents."""
    # Commands and the libraries below read these; setting them once keeps one source of truth.
    if home:
        os.environ["CLAWCTL_HOME"] = home
    if registry:
        os.environ["CLAWCTL_REGISTRY"] = registry


def build_app() -> typer.Typer:
    """The CLI with every command registered (explicitly, no import side effects)."""
    from clawctl.cli import (apply, audit, daemon, delete, diff, drain, events, history, logs, messages, policy,
                             retry, rollback, schema, sessions, status, validate)

    app = typer.Typer(
        name="clawctl",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    app.command("validate")(validate.validate_command)
    app.command("schema")(schema.schema_command)
    app.command("diff")(diff.diff_command)
    app.command("apply")(apply.apply_command)
    app.command("status")(status.status_command)
    app.command("history")(history.history_command)
    app.command("rollback")(rollback.rollback_command)
    app.command("delete")(delete.delete_command)
    app.command("events")(events.events_command)
    app.command("logs")(logs.logs_command)
    app.command("retry")(retry.retry_command)
    app.command("drain")(drain.drain_command)
    app.command("uncordon")(drain.uncordon_command)
    app.command("audit")(audit.audit_command)
    app.command("messages")(messages.messages_command)
    app.add_typer(daemon.daemon_app, name="daemon")
    app.add_typer(sessions.sessions_app, name="sessions")
    app.add_typer(policy.policy_app, name="policy")
    return app
