"""The typed model back into config-language documents, in one canonical form.

Normalized documents are what the registry stores for every revision: one
``Fleet`` document, then one ``AgentPool`` per pool and one
``CommunicationPolicy`` per policy, each sorted by name. Every policy field is
written out (fleet defaults and isolation presets already folded into each
pool), units take their shortest exact spelling, and the loader reads the
documents back into an equal model. Two config sets that mean the same thing
give the same documents and so the same content hash.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from clawctl.config.model import AgentPool, CommunicationPolicy, CommunicationRule, Fleet, block_to_raw

API_VERSION = "clawctl/v1"

Document = dict[str, Any]


def fleet_to_documents(fleet: Fleet) -> list[Document]:
    """The normalized documents of ``fleet``: Fleet first, then pools, then policies, by name."""
    docs = [_fleet_document(fleet)]
    docs += [pool_to_document(p) for p in sorted(fleet.pools, key=lambda p: p.name)]
    docs += [policy_to_document(p) for p in sorted(fleet.policies, key=lambda p: p.name)]
    return docs


def _metadata(name: str, labels: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = dict(sorted(labels))
    return meta


def _fleet_document(fleet: Fleet) -> Document:
    return {
        "apiVersion": API_VERSION,
        "kind": "Fleet",
        "metadata": _metadata(fleet.name, fleet.labels),
        "spec": {"description": fleet.description},
    }


def pool_to_document(pool: AgentPool) -> Document:
    """One AgentPool document with every field written out."""
    spec: dict[str, Any] = {
        "replicas": pool.replicas,
        "command": list(pool.command),
        "env": dict(sorted(pool.env)),
        "capacity": pool.capacity,
        "priority": pool.priority,
        "capabilities": list(pool.capabilities),
        "dependsOn": list(pool.depends_on),
    }
    spec.update(block_to_raw(pool.policies))
    return {"apiVersion": API_VERSION, "kind": "AgentPool", "metadata": _metadata(pool.name, pool.labels),
            "spec": spec}


def _rule_to_raw(rule: CommunicationRule) -> dict[str, Any]:
    return {
        "from": rule.source,
        "messages": list(rule.message_targets),
        "events": {"publish": list(rule.publish), "subscribe": list(rule.subscribe)},
        "sharedState": {"read": list(rule.state_read), "write": list(rule.state_write)},
    }


def policy_to_document(policy: CommunicationPolicy) -> Document:
    """One CommunicationPolicy document with every rule field written out."""
    return {
        "apiVersion": API_VERSION,
        "kind": "CommunicationPolicy",
        "metadata": _metadata(policy.name, policy.labels),
        "spec": {"rules": [_rule_to_raw(r) for r in policy.rules]},
    }


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no insignificant whitespace, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def content_hash(documents: list[Document]) -> str:
    """sha256 (hex) of the canonical JSON of ``documents``, in their given order."""
    return hashlib.sha256(canonical_json(documents).encode("utf-8")).hexdigest()


def documents_to_yaml_stream(documents: list[Document]) -> bytes:
    """The documents as one multi-document stream the loader accepts (JSON is YAML)."""
    return "".join(f"---\n{json.dumps(d, indent=2, ensure_ascii=False)}\n" for d in documents).encode("utf-8")
