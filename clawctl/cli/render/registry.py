"""Render revision history and desired status as tables, JSON or YAML.

The JSON shapes are documented in docs/registry.md and are stable within
``"version": 1``. Times are ISO 8601 UTC in machine output, local time in tables.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from clawctl.cli.render.style import Palette
from clawctl.cli.render.table import format_table
from clawctl.registry.records import FleetStatus, PoolStatus, RevisionInfo


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _local(when: datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _changes(summary: dict[str, int]) -> str:
    return f"+{summary.get('create', 0)} ~{summary.get('update', 0)} -{summary.get('delete', 0)}"


def _git(info: RevisionInfo) -> str:
    if info.git is None:
        return "-"
    commit = info.git.commit[:10] if info.git.commit else "(no commit)"
    return commit + ("+dirty" if info.git.dirty else "")


def _message(info: RevisionInfo) -> str:
    text = (info.message or "").strip().splitlines()
    return text[0] if text else ""


def render_history_table(revisions: Sequence[RevisionInfo]) -> str:
    """One line per revision, oldest first."""
    if not revisions:
        return "no revisions recorded yet\n"
    rows = [[str(r.number), r.fleet, r.kind.value + (f" to {r.rollback_of}" if r.rollback_of else ""),
             _local(r.created_at), r.applied_by, _changes(r.summary), _git(r), _message(r)] for r in revisions]
    return format_table(["REV", "FLEET", "KIND", "APPLIED", "BY", "CHANGES", "GIT", "MESSAGE"], rows)


def revision_json(info: RevisionInfo) -> dict[str, Any]:
    return {
        "revision": info.number,
        "fleet": info.fleet,
        "kind": info.kind.value,
        "rollback_of": info.rollback_of,
        "created_at": _iso(info.created_at),
        "applied_by": info.applied_by,
        "message": info.message,
        "content_hash": info.content_hash,
        "summary": info.summary,
        "source": list(info.source),
        "git": None if info.git is None else {"root": info.git.root, "commit": info.git.commit,
                                               "dirty": info.git.dirty},
        "clawctl_version": info.clawctl_version,
    }


def render_history_json(revisions: Sequence[RevisionInfo]) -> str:
    return json.dumps({"version": 1, "revisions": [revision_json(r) for r in revisions]}, indent=2) + "\n"


def _isolation(pool: PoolStatus) -> str:
    iso = pool.document["spec"].get("isolation", {})
    parts = [str(iso.get("level", "-"))]
    if "memory" in iso:
        parts.append(f"mem {iso['memory']}")
    if "cpu" in iso:
        parts.append(f"cpu {iso['cpu']}")
    return " ".join(parts)


def _pool_row(pool: PoolStatus) -> list[str]:
    spec = pool.document["spec"]
    return [pool.name, str(pool.replicas), str(spec.get("capacity", "")), _isolation(pool),
            str(spec.get("loadBalancing", {}).get("strategy", "")), str(spec.get("failover", {}).get("strategy", "")),
            str(pool.revision)]


def render_status_table(fleets: Sequence[FleetStatus], *, colors: Palette, where: str) -> str:
    """Per fleet: a heading line, then one row per pool of its desired state."""
    if not fleets:
        return f"no fleets in the registry {where}\n"
    out = io.StringIO()
    for i, fleet in enumerate(fleets):
        if i:
            out.write("\n")
        policies = f", policies: {', '.join(fleet.policies)}" if fleet.policies else ""
        out.write(f"{colors.bold}fleet {fleet.name}{colors.reset}  revision {fleet.revision}, applied "
                  f"{_local(fleet.updated_at)} by {fleet.applied_by}{policies}\n")
        rows = [_pool_row(p) for p in fleet.pools]
        if rows:
            out.write(format_table(["POOL", "REPLICAS", "CAPACITY", "ISOLATION", "BALANCING", "FAILOVER", "REV"],
                                   rows, indent="  "))
        else:
            out.write("  (no pools)\n")
    return out.getvalue()


def status_data(fleets: Sequence[FleetStatus]) -> dict[str, Any]:
    """Desired status as JSON/YAML-ready data (``"version": 1``)."""
    return {
        "version": 1,
        "fleets": [
            {
                "name": f.name,
                "revision": f.revision,
                "content_hash": f.content_hash,
                "applied_at": _iso(f.updated_at),
                "applied_by": f.applied_by,
                "description": f.description,
                "pools": [{"name": p.name, "replicas": p.replicas, "revision": p.revision,
                           "desired": p.document["spec"]} for p in f.pools],
                "policies": list(f.policies),
            }
            for f in fleets
        ],
    }


def render_status_json(fleets: Sequence[FleetStatus]) -> str:
    return json.dumps(status_data(fleets), indent=2, ensure_ascii=False) + "\n"


def render_status_yaml(fleets: Sequence[FleetStatus]) -> str:
    return render_yaml(status_data(fleets))


def render_yaml(data: Any) -> str:
    """Block-style YAML of JSON-ready ``data``, keys in the order given."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]  # keep our key order
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    return buffer.getvalue()


