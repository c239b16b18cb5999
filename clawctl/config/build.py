"""Schema-valid documents → the typed model, applying fleet defaults and isolation presets.

Precedence for every policy field: the pool's own value, then the fleet's
``spec.defaults``, then the isolation ``level`` preset (isolation only), then
the built-in default.
"""

from __future__ import annotations

from typing import Any

from clawctl.config.model import (
    ISOLATION_PRESETS,
    POLICY_BLOCKS,
    AgentPool,
    CommunicationPolicy,
    CommunicationRule,
    Fleet,
    IsolationLevel,
    Policies,
    block_from_raw,
)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A new mapping: ``override`` wins key by key, nested mappings merge, lists replace.

    Neither input is modified; unchanged values are shared, not copied (the model
    built from the result is immutable, so sharing is safe).
    """
    out = dict(base)
    for key, value in override.items():
        current = out.get(key)
        out[key] = deep_merge(current, value) if isinstance(value, dict) and isinstance(current, dict) else value
    return out


def effective_pool_spec(spec: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The pool's spec with fleet defaults and the isolation preset folded in (still config-language)."""
    merged = dict(spec)
    for block in POLICY_BLOCKS:
        combined = deep_merge(defaults.get(block, {}), spec.get(block, {}))
        if block == "isolation":
            level = IsolationLevel(combined.get("level", IsolationLevel.SHARED.value))
            combined = deep_merge({"level": level.value, **ISOLATION_PRESETS[level]}, combined)
        merged[block] = combined
    env = dict(defaults.get("env", {}))
    env.update(spec.get("env", {}))
    merged["env"] = env
    return merged


def build_pool(name: str, spec: dict[str, Any], defaults: dict[str, Any], labels: dict[str, str] | None = None) -> AgentPool:
    """One AgentPool from its (schema-valid) spec. Raises ValueError for a unit that does not parse."""
    eff = effective_pool_spec(spec, defaults)
    policies = block_from_raw(Policies, {block: eff[block] for block in POLICY_BLOCKS})
    return AgentPool(
        name=name,
        command=tuple(eff["command"]),
        replicas=eff.get("replicas", 1),
        env=tuple(sorted(eff["env"].items())),
        capacity=eff.get("capacity", 10),
        priority=eff.get("priority", 0),
        capabilities=tuple(eff.get("capabilities", ())),
        depends_on=tuple(eff.get("dependsOn", ())),
        policies=policies,
        labels=tuple(sorted((labels or {}).items())),
    )


def build_policy(name: str, spec: dict[str, Any], labels: dict[str, str] | None = None) -> CommunicationPolicy:
    """One CommunicationPolicy from its (schema-valid) spec."""
    rules = []
    for raw in spec["rules"]:
        events = raw.get("events", {})
        state = raw.get("sharedState", {})
        rules.append(CommunicationRule(
            source=raw["from"],
            message_targets=tuple(raw.get("messages", ())),
            publish=tuple(events.get("publish", ())),
            subscribe=tuple(events.get("subscribe", ())),
            state_read=tuple(state.get("read", ())),
            state_write=tuple(state.get("write", ())),
        ))
    return CommunicationPolicy(name=name, rules=tuple(rules), labels=tuple(sorted((labels or {}).items())))


def build_fleet(fleet_doc: dict[str, Any], pool_docs: list[dict[str, Any]], policy_docs: list[dict[str, Any]]) -> Fleet:
    """The whole fleet; pools and policies sorted by name so equal configs give equal models."""
    spec = fleet_doc.get("spec", {})
    defaults = spec.get("defaults", {})
    pools = [build_pool(d["metadata"]["name"], d["spec"], defaults, d["metadata"].get("labels")) for d in pool_docs]
    policies = [build_policy(d["metadata"]["name"], d["spec"], d["metadata"].get("labels")) for d in policy_docs]
    return Fleet(
        name=fleet_doc["metadata"]["name"],
        description=spec.get("description", ""),
        pools=tuple(sorted(pools, key=lambda p: p.name)),
        policies=tuple(sorted(policies, key=lambda p: p.name)),
        labels=tuple(sorted(fleet_doc["metadata"].get("labels", {}).items())),
    )
