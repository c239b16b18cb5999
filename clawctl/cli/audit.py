"""``clawctl audit``: the audit log (operator actions and every denial), oldest first.

Reads the registry directly, so it works without a running daemon. The JSON
shape is documented in docs/audit.md and stable within ``"version": 1``.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from clawctl.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from clawctl.registry.audit import AuditEntry

DETAIL_WIDTH = 100
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


class AuditFormat(str, Enum):
    TABLE = "table"
    JSON = "json"


class Outcome(str, Enum):
    ALLOWED = "allowed"
    DENIED = "denied"


def audit_command(
    since: Annotated[Optional[str], typer.Option(
        "--since", help="Only entries this recent (10m, 1h, 2d) or at/after an ISO 8601 time.")] = None,
    action: Annotated[Optional[str], typer.Option(
        "--action", help="Only this action (apply, rollback, delete, retry, hello, sessions.open…).")] = None,
    outcome: Annotated[Optional[Outcome], typer.Option("--outcome", help="Only allowed or only denied.")] = None,
    actor: Annotated[Optional[str], typer.Option("--actor", help="Only actors containing this text.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many of the newest entries.")] = 100,
    output: Annotated[AuditFormat, typer.Option("--output", "-o", help="Output format.")] = AuditFormat.TABLE,
) -> int:
    """Show the audit log: operator actions (apply, rollback, delete, retry, sessions) and every denial.

    The newest LIMIT entries that match, oldest first. Reads the registry; no daemon needed.
    """
    from clawctl.registry import audit
    from clawctl.registry.engine import Registry

    start = parse_since(since, datetime.now(timezone.utc)) if since is not None else None
    with Registry() as registry, registry.reading() as conn:
        entries = [] if conn is None else audit.recent(
            conn, limit=limit, since=start, action=action, outcome=outcome.value if outcome else None, actor=actor)
    if output is AuditFormat.JSON:
        sys.stdout.write(render_json(entries))
    else:
        sys.stdout.write(render_table(entries))
    return ExitCode.OK


def parse_since(text: str, now: datetime) -> datetime:
    """``10m``/``1h30m``/``2d`` before ``now``, or an ISO 8601 time (local time when it names no zone)."""
    from clawctl.config.units import parse_duration

    value = text.strip()
    try:
        return now - timedelta(seconds=parse_duration(value))
    except (ValueError, OverflowError):
        pass
    try:
        when = datetime.fromisoformat(value)
        return when if when.tzinfo is not None else when.astimezone()
    except (ValueError, OverflowError):
        raise UsageError(f"--since '{text}' is neither a duration nor an ISO 8601 time",
                         hint="write e.g. --since 10m, --since 2d, --since 2024-05-01 "
                              "or --since 2024-05-01T12:00:00Z") from None


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {"at": entry.at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"), "actor": entry.actor,
            "action": entry.action, "target": entry.target, "outcome": entry.outcome,
            "detail": dict(entry.detail) if entry.detail is not None else None}


def render_json(entries: Sequence[AuditEntry]) -> str:
    return json.dumps({"version": 1, "entries": [entry_json(e) for e in entries]}, indent=2,
                      ensure_ascii=False) + "\n"


def render_table(entries: Sequence[AuditEntry]) -> str:
    if not entries:
        return "no audit entries\n"
    from clawctl.cli.render.table import format_table

    rows = [[e.at.astimezone().strftime("%Y-%m-%d %H:%M:%S"), _cell(e.actor), _cell(e.action), _cell(e.target),
             _cell(e.outcome), compact_detail(e.detail)] for e in entries]
    return format_table(["TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME", "DETAIL"], rows)


def compact_detail(detail: Mapping[str, Any] | None, *, width: int = DETAIL_WIDTH) -> str:
    """``key=value`` pairs on one line (None values left out), cut at ``width`` characters."""
    if not detail:
        return ""
    text = " ".join(f"{key}={_value(value)}" for key, value in detail.items() if value is not None)
    text = _cell(text)
    return text if len(text) <= width else text[:width - 1] + "…"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str) and _COMMIT.fullmatch(value):
        return value[:10]  # a git commit, abbreviated as `clawctl history` shows it
    if isinstance(value, str) and value and not any(c.isspace() or c in "\"=" for c in value):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _cell(text: str) -> str:
    """``text`` with control characters escaped: the log holds strings that peers chose."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
