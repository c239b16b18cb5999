"""Render a plan as a readable diff (colored on a terminal) or as JSON.

The JSON shape is documented in docs/registry.md and is stable within
``"version": 1``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from clawctl.cli.render.style import Palette
from clawctl.plan import ABSENT, Action, Op, Plan

KIND_WORD = {"Fleet": "fleet", "AgentPool": "pool", "CommunicationPolicy": "policy"}
_PLAIN = re.compile(r"^[A-Za-z0-9_./:%@*?\[\]-]+$")


def format_value(value: Any) -> str:
    """A short YAML-like spelling of a document value: 4Gi, [python, -m, x], "two words"."""
    if value is ABSENT:
        return "(unset)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if _PLAIN.match(value) and value not in ("true", "false", "null") else json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _create_detail(action: Action) -> str:
    doc = action.document or {}
    spec = doc.get("spec", {})
    if action.kind == "AgentPool":
        replicas = spec.get("replicas", 0)
        return f"{replicas} replica{'' if replicas == 1 else 's'}: {' '.join(spec.get('command', []))}"
    if action.kind == "CommunicationPolicy":
        rules = len(spec.get("rules", []))
        return f"{rules} rule{'' if rules == 1 else 's'}"
    return ""


def summary_text(change: Plan) -> str:
    """'2 to create, 1 to update, 0 to remove'."""
    counts = change.counts()
    return f"{counts['create']} to create, {counts['update']} to update, {counts['delete']} to remove"


def done_text(change: Plan) -> str:
    """'2 created, 1 updated, 0 removed'."""
    counts = change.counts()
    return f"{counts['create']} created, {counts['update']} updated, {counts['delete']} removed"


def render_text(change: Plan, *, colors: Palette, arrow: str = "→") -> str:
    """The plan as lines an operator reads: + created, ~ updated (one line per field), - removed."""
    c = colors
    if not change.changed:
        at = f" at revision {change.base_revision}" if change.base_revision is not None else ""
        return f"fleet {change.fleet} is up to date{at}: no changes\n"
    if change.deletes_fleet:
        head = f"{c.bold}fleet {change.fleet}{c.reset}: delete (revision {change.base_revision})"
    elif change.base_revision is None:
        head = f"{c.bold}fleet {change.fleet}{c.reset}: new fleet"
    else:
        head = f"{c.bold}fleet {change.fleet}{c.reset}: changes against revision {change.base_revision}"
    lines = [head]
    for action in change.actions:
        what = f"{KIND_WORD.get(action.kind, action.kind)} {action.name}"
        if action.op is Op.CREATE:
            detail = _create_detail(action)
            lines.append(f"  {c.green}+ {what}{c.reset}" + (f" {c.dim}({detail}){c.reset}" if detail else ""))
        elif action.op is Op.DELETE:
            lines.append(f"  {c.red}- {what}{c.reset}")
        else:
            lines.append(f"  {c.yellow}~ {what}{c.reset}")
            for ch in action.changes:
                lines.append(f"      {ch.path}: {c.red}{format_value(ch.old)}{c.reset} {arrow} "
                             f"{c.green}{format_value(ch.new)}{c.reset}")
    lines.append(f"plan: {summary_text(change)}")
    return "\n".join(lines) + "\n"


def _change_json(path: str, old: Any, new: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"path": path}
    if old is not ABSENT:
        out["old"] = old
    if new is not ABSENT:
        out["new"] = new
    return out


def _action_json(action: Action) -> dict[str, Any]:
    out: dict[str, Any] = {"action": action.op.value, "kind": action.kind, "name": action.name}
    if action.op is Op.UPDATE:
        out["changes"] = [_change_json(ch.path, ch.old, ch.new) for ch in action.changes]
    if action.op is Op.CREATE:
        out["document"] = action.document
    return out


def plan_json(change: Plan) -> dict[str, Any]:
    """The plan as JSON-ready data (``"version": 1``)."""
    return {
        "version": 1,
        "fleet": change.fleet,
        "changed": change.changed,
        "revision": change.base_revision,
        "content_hash": change.content_hash or None,
        "deletes_fleet": change.deletes_fleet,
        "summary": change.counts(),
        "removed_pools": list(change.removed_pools),
        "actions": [_action_json(a) for a in change.actions],
    }


def render_json(change: Plan) -> str:
    return json.dumps(plan_json(change), indent=2, ensure_ascii=False) + "\n"
