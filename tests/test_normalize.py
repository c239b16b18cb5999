"""Normalized documents: every default written out, canonical units, and a lossless round trip."""

from __future__ import annotations

import json
from typing import Any

import pytest

from clawctl.config.loader import load_sources
from clawctl.config.normalize import canonical_json, content_hash, documents_to_yaml_stream, fleet_to_documents
from clawctl.config.sources import Source
from tests.builders import fleet_doc, fleet_docs, policy_doc, pool_doc
from tests.registry.fleets import load

RICH = [
    fleet_doc("support", description="Customer support agents", defaults={
        "env": {"LOG_LEVEL": "info"},
        "isolation": {"level": "moderate", "memory": "4GB", "cpu": "1500m"},
        "sessions": {"idleTimeout": "90s", "creation": "eager"},
        "failover": {"backoff": {"initial": "500ms", "max": "1h30m"}},
    }),
    pool_doc("triage", replicas=4, isolation={"memory": "1.5Gi", "cpu": 2, "level": "strict", "network": "host"},
             loadBalancing={"strategy": "weighted", "weights": [3, 1, 1]}, capabilities=["search", "tickets"],
             env={"MODEL": "small"}, priority=5, capacity=3),
    pool_doc("support", replicas=3, dependsOn=["triage"], failover={"strategy": "hot-standby", "standbys": 1},
             rollout={"maxUnavailable": "25%", "maxSurge": 0}, health={"heartbeatTimeout": "1m"}),
    pool_doc("fallback", replicas=1, failover={"strategy": "degrade", "minReady": 1, "fallbackPool": "support"},
             isolation={"disk": "10G", "openFiles": 4096, "processes": 32}),
    policy_doc("basic", [{"from": "triage", "messages": ["support"], "events": {"publish": ["ticket.*"]}},
                         {"from": "*", "sharedState": {"read": ["kb/*"], "write": []}}]),
]
RICH[2]["metadata"]["labels"] = {"tier": "gold", "app.kubernetes.io/name": "support"}
RICH[2]["metadata"]["annotations"] = {"note": "annotations are not part of the model"}

CASES = {"rich": RICH, "minimal": fleet_docs(1, policy=False), "plain": fleet_docs(3),
         "no-pools": [fleet_doc("empty")]}


def reload(documents: list[dict[str, Any]]) -> Any:
    result = load_sources([Source("normalized.yaml", documents_to_yaml_stream(documents))])
    assert result.errors == (), [d.message for d in result.errors]
    return result.fleet


@pytest.mark.parametrize("name", CASES)
def test_normalized_documents_load_back_into_an_equal_model(name: str) -> None:
    fleet = load(CASES[name])
    documents = fleet_to_documents(fleet)
    assert reload(documents) == fleet


@pytest.mark.parametrize("name", CASES)
def test_normalizing_is_idempotent(name: str) -> None:
    documents = fleet_to_documents(load(CASES[name]))
    assert fleet_to_documents(reload(documents)) == documents


def test_every_default_is_written_out_with_canonical_units() -> None:
    documents = fleet_to_documents(load(RICH))
    assert [(d["kind"], d["metadata"]["name"]) for d in documents] == [
        ("Fleet", "support"), ("AgentPool", "fallback"), ("AgentPool", "support"), ("AgentPool", "triage"),
        ("CommunicationPolicy", "basic")]
    support = documents[2]["spec"]
    assert support["env"] == {"LOG_LEVEL": "info"}
    assert support["isolation"] == {"level": "moderate", "memory": "4G", "cpu": "1.5", "network": "loopback",
                                    "openFiles": 1024, "processes": 256}
    assert support["sessions"]["idleTimeout"] == "1m30s" and support["sessions"]["creation"] == "eager"
    assert support["failover"]["backoff"] == {"initial": "500ms", "max": "1h30m", "factor": 2.0, "jitter": 0.2,
                                              "resetAfter": "5m"}
    assert support["drain"] == {"gracePeriod": "30s"}
    assert documents[2]["metadata"] == {"name": "support",
                                        "labels": {"app.kubernetes.io/name": "support", "tier": "gold"}}
    triage = documents[3]["spec"]
    assert triage["isolation"]["memory"] == "1536Mi" and triage["isolation"]["network"] == "host"
    rule = documents[4]["spec"]["rules"][1]
    assert rule == {"from": "*", "messages": [], "events": {"publish": [], "subscribe": []},
                    "sharedState": {"read": ["kb/*"], "write": []}}


def test_content_hash_ignores_spelling_and_document_order() -> None:
    a = fleet_docs(2, isolation={"memory": "4Gi"})
    b = list(reversed(fleet_docs(2, isolation={"memory": "4096Mi"})))
    assert content_hash(fleet_to_documents(load(a))) == content_hash(fleet_to_documents(load(b)))
    c = fleet_docs(2, isolation={"memory": "8Gi"})
    assert content_hash(fleet_to_documents(load(a))) != content_hash(fleet_to_documents(load(c)))


def test_canonical_json_sorts_keys_and_keeps_unicode() -> None:
    assert canonical_json({"b": 1, "a": ["é"]}) == '{"a":["é"],"b":1}'
    assert json.loads(canonical_json({"x": 0.3})) == {"x": 0.3}
