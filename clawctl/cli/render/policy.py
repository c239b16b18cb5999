"""Render the CommunicationPolicy graph (``clawctl policy show``) as a table or JSON.

The JSON shape is documented in docs/policy.md and stable within ``"version": 1``:
fields may be added, none removed or renamed.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from clawctl.cli.render.style import Palette
from clawctl.cli.render.table import format_table
from clawctl.policies.access import Grant, PoolAccess, Verb


@dataclass(frozen=True)
class PolicyView:
    """One fleet's policy graph and where it was read from."""

    fleet: str
    source: str
    """``files`` (config paths) or ``registry`` (the applied head)."""
    revision: int | None
    policies: tuple[str, ...]
    matrix: tuple[PoolAccess, ...]


def _target(grant: Grant, verb: Verb) -> str:
    if verb is Verb.MESSAGE and grant.entry != grant.target:
        return f"{grant.target} (via {grant.entry})"
    return grant.target


def _heading(view: PolicyView) -> str:
    where = f"revision {view.revision}" if view.source == "registry" else "from config files"
    policies = ", ".join(view.policies) if view.policies else "none (everything is denied)"
    return f"fleet {view.fleet}  {where}, policies: {policies}"


def render_table(views: Sequence[PolicyView], *, colors: Palette, where: str | None = None) -> str:
    """Per fleet: a heading, then one row per grant (FROM, VERB, TARGET, RULE), sources in the
    order given, verbs in the order message, publish, subscribe, read, write."""
    if not views:
        return f"no fleets in the registry {where}\n" if where else "no fleets\n"
    out = io.StringIO()
    for i, view in enumerate(views):
        if i:
            out.write("\n")
        out.write(f"{colors.bold}{_heading(view)}{colors.reset}\n")
        rows: list[list[str]] = []
        for access in view.matrix:
            if access.empty:
                rows.append([access.pool, "-", "nothing (default deny)", "-"])
                continue
            for verb in Verb:
                rows += [[access.pool, verb.value, _target(g, verb), g.rule] for g in access.grants(verb)]
        if rows:
            out.write(format_table(["FROM", "VERB", "TARGET", "RULE"], rows, indent="  "))
        else:
            out.write("  (no pools)\n")
    return out.getvalue()


def _grant_json(grant: Grant, verb: Verb) -> dict[str, Any]:
    head = {"pool": grant.target, "via": grant.entry} if verb is Verb.MESSAGE else {"pattern": grant.target}
    return {**head, "rule": grant.rule, "policy": grant.policy, "index": grant.index}


def policy_data(views: Sequence[PolicyView]) -> dict[str, Any]:
    """The matrix as JSON-ready data (``"version": 1``)."""
    return {
        "version": 1,
        "fleets": [
            {
                "name": view.fleet,
                "source": view.source,
                "revision": view.revision,
                "policies": list(view.policies),
                "pools": [
                    {"name": access.pool,
                     **{verb.value: [_grant_json(g, verb) for g in access.grants(verb)] for verb in Verb}}
                    for access in view.matrix
                ],
            }
            for view in views
        ],
    }


def render_json(views: Sequence[PolicyView]) -> str:
    return json.dumps(policy_data(views), indent=2, ensure_ascii=False) + "\n"
