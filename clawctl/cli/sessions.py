"""``clawctl sessions list|open|send|show|close``: sessions through the daemon, as the operator."""

from __future__ import annotations

import json
import sys
from enum import Enum
from typing import Annotated, Any, Optional

import typer

from clawctl.errors import ExitCode, UsageError

sessions_app = typer.Typer(help="Open, talk to, inspect and close sessions.", no_args_is_help=True)


class Output(str, Enum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


OutputOption = Annotated[Output, typer.Option("--output", "-o", help="Output format.")]
FleetOption = Annotated[Optional[str], typer.Option("--fleet", help="The fleet (needed only when several are applied).")]


def _call(method: str, params: dict[str, Any], *, timeout: float | None = None) -> Any:
    from clawctl.daemon.client import operator_connection
    from clawctl.home import clawctl_home

    with operator_connection(clawctl_home()) as conn:
        return conn.call(method, params, timeout=timeout)


def _emit(data: Any, output: Output) -> bool:
    """Print ``data`` as JSON or YAML; False for table output (the caller renders it)."""
    if output is Output.JSON:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return True
    if output is Output.YAML:
        from clawctl.cli.render.registry import render_yaml

        sys.stdout.write(render_yaml(data))
        return True
    return False


def _short_time(text: str | None) -> str:
    return text.replace("T", " ")[:19] if text else "-"


@sessions_app.command("open")
def open_command(
    pool: Annotated[str, typer.Argument(help="The pool to open the session in.")],
    key: Annotated[Optional[str], typer.Option("--key", help="Session key: the same key reaches the same "
                                                              "conversation (and agent, with consistent-hash).")] = None,
    fleet: FleetOption = None,
    output: OutputOption = Output.TABLE,
) -> int:
    """Open a session in POOL, placed by the pool's load-balancing strategy; prints its id."""
    params: dict[str, Any] = {"pool": pool}
    if key is not None:
        params["key"] = key
    if fleet is not None:
        params["fleet"] = fleet
    session = _call("sessions.open", params)
    if not _emit(session, output):
        sys.stdout.write(f"{session['id']}\n")
        sys.stderr.write(f"session {session['id']} on agent {session['agent_id']} (pool {session['pool']})\n")
    return ExitCode.OK


@sessions_app.command("send")
def send_command(
    session: Annotated[str, typer.Argument(help="Session id.")],
    message: Annotated[str, typer.Argument(help="The message (text; with --json, a JSON value).")],
    as_json: Annotated[bool, typer.Option("--json", help="Parse MESSAGE as JSON.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0, max=3600, help="Seconds to wait for the reply.")] = 60.0,
    output: OutputOption = Output.TABLE,
) -> int:
    """Send MESSAGE to the session's agent and print its reply."""
    payload: Any = message
    if as_json:
        try:
            payload = json.loads(message)
        except ValueError as exc:
            raise UsageError(f"MESSAGE is not JSON: {exc}", hint="quote it for the shell, e.g. '{\"q\": 1}'") from exc
    result = _call("sessions.send", {"session": session, "message": payload, "timeout": timeout},
                   timeout=timeout + 10)
    if not _emit(result, output):
        reply = result["reply"]
        sys.stdout.write((reply if isinstance(reply, str) else json.dumps(reply, ensure_ascii=False)) + "\n")
    return ExitCode.OK


@sessions_app.command("show")
def show_command(
    session: Annotated[str, typer.Argument(help="Session id.")],
    history: Annotated[int, typer.Option("--history", min=0, max=10_000, help="Latest history entries to show.")] = 20,
    output: OutputOption = Output.TABLE,
) -> int:
    """Show a session: where it runs, its state and its latest history."""
    from clawctl.cli.render.table import format_table

    data = _call("sessions.show", {"session": session, "history": history})
    if _emit(data, output):
        return ExitCode.OK
    fields = [("id", data["id"]), ("fleet", data["fleet"]), ("pool", data["pool"]),
              ("agent", data["agent_id"] or "-"), ("key", data["key"] or "-"), ("state", data["state"]),
              ("opened", _short_time(data["created_at"])), ("last activity", _short_time(data["last_activity_at"]))]
    if data["closed_at"]:
        fields.append(("closed", f"{_short_time(data['closed_at'])} ({data['close_reason']})"))
    if data.get("parent_id"):
        fields.append(("parent", data["parent_id"]))
    fields.append(("messages", str(data["history_len"])))
    fields.append(("state data", json.dumps(data["data"], ensure_ascii=False)))
    width = max(len(name) for name, _ in fields)
    sys.stdout.write("".join(f"{name + ':':<{width + 2}}{value}\n" for name, value in fields))
    if data.get("children"):
        sys.stdout.write("\n" + format_table(["CHILD", "POOL", "AGENT", "STATE"], [
            [c["id"], c["pool"], c["agent_id"] or "-", c["state"]] for c in data["children"]]))
    if data["history"]:
        rows = [[str(h["seq"]), _short_time(h["at"]), h["role"],
                 h["content"] if isinstance(h["content"], str) else json.dumps(h["content"], ensure_ascii=False)]
                for h in data["history"]]
        sys.stdout.write("\n" + format_table(["SEQ", "AT", "ROLE", "CONTENT"], rows))
    return ExitCode.OK


@sessions_app.command("list")
def list_command(
    pool: Annotated[Optional[str], typer.Option("--pool", help="Only this pool.")] = None,
    fleet: FleetOption = None,
    state: Annotated[Optional[str], typer.Option("--state", help="Only this state: Open, Closing, Closed, "
                                                                 "Orphaned.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000, help="At most this many.")] = 100,
    output: OutputOption = Output.TABLE,
) -> int:
    """List sessions, newest first."""
    from clawctl.cli.render.table import format_table

    params: dict[str, Any] = {"limit": limit}
    for name, value in (("pool", pool), ("fleet", fleet), ("state", state)):
        if value is not None:
            params[name] = value
    result = _call("sessions.list", params)
    if _emit(result, output):
        return ExitCode.OK
    rows = [[s["id"], s["fleet"], s["pool"], s["agent_id"] or "-", s["key"] or "-", s["state"],
             _short_time(s["created_at"]), _short_time(s["last_activity_at"])] for s in result["sessions"]]
    if not rows:
        sys.stdout.write("no sessions\n")
        return ExitCode.OK
    sys.stdout.write(format_table(["ID", "FLEET", "POOL", "AGENT", "KEY", "STATE", "OPENED", "LAST ACTIVITY"], rows))
    return ExitCode.OK


@sessions_app.command("close")
def close_command(
    session: Annotated[str, typer.Argument(help="Session id.")],
    now: Annotated[bool, typer.Option("--now", help="Close at once, without giving the agent time to save "
                                                    "state.")] = False,
    output: OutputOption = Output.TABLE,
) -> int:
    """Close a session (gracefully, as its pool's sessions.cleanup says, unless --now)."""
    params: dict[str, Any] = {"session": session}
    if now:
        params["graceful"] = False
    result = _call("sessions.close", params)
    if not _emit(result, output):
        verb = "closing (the agent is saving its state)" if result["state"] == "Closing" else "closed"
        sys.stdout.write(f"session {result['id']} {verb}\n")
    return ExitCode.OK
