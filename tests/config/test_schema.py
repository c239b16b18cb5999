"""The JSON Schemas: valid draft-07, resolvable per-kind files, one structure shared with the
model, and a fast validator that agrees with jsonschema on every document we have."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from referencing import Registry, Resource

from clawctl.config.model import (
    POLICY_BLOCKS,
    Backoff,
    Drain,
    Failover,
    Health,
    Isolation,
    LoadBalancing,
    Rollout,
    Sessions,
)
from clawctl.config.schema import KINDS, detailed_validator, fast_validator, kind_schema, schema_dir, union_schema
from clawctl.config.sources import Source
from clawctl.config.yaml_documents import parse_source
from tests.builders import fleet_docs, pool_doc, policy_doc

REPO = Path(__file__).resolve().parents[2]
FIXTURES = sorted((REPO / "tests" / "fixtures").rglob("*.yaml"))
SAMPLES = sorted((REPO / "sample-configs").rglob("*.yaml"))
KIND_FILES = {"Fleet": "fleet.v1.json", "AgentPool": "agentpool.v1.json",
              "CommunicationPolicy": "communicationpolicy.v1.json"}


def documents_of(paths: list[Path]) -> list[Any]:
    """Every document that parses, from every file in ``paths``."""
    out = []
    for path in paths:
        documents, _ = parse_source(Source(str(path), path.read_bytes()))
        out += [d.data for d in documents]
    return out


def fast_accepts(document: Any) -> bool:
    try:
        fast_validator()(document)
    except Exception:  # noqa: BLE001 - fastjsonschema raises its own JsonSchemaException
        return False
    return True


def jsonschema_accepts(document: Any) -> bool:
    return next(iter(detailed_validator().iter_errors(document)), None) is None


def full_pool() -> dict[str, Any]:
    """An AgentPool using every field of the language."""
    return pool_doc(
        "workers", replicas=3, env={"A": "1"}, capacity=4, priority=10, capabilities=["ocr", "pdf.read"],
        dependsOn=["db"],
        isolation={"level": "strict", "memory": "4GB", "cpu": 1.5, "network": "loopback", "openFiles": 512,
                   "processes": 32, "disk": "10Gi"},
        sessions={"creation": "eager", "idleTimeout": "15m", "maxLifetime": "8h", "retention": "persistent",
                  "cleanup": "immediate", "recovery": "manual"},
        loadBalancing={"strategy": "weighted", "weights": [1, 2, 3], "ewmaAlpha": 0.5},
        health={"heartbeatInterval": "5s", "heartbeatTimeout": "15s", "startTimeout": "1m"},
        failover={"strategy": "hot-standby", "restart": "always", "standbys": 1, "minReady": 1, "maxRestarts": 3,
                  "window": "10m", "fallbackPool": "db",
                  "backoff": {"initial": "500ms", "max": "1m", "factor": 1.5, "jitter": 0.1, "resetAfter": "5m"}},
        drain={"gracePeriod": "45s"},
        rollout={"maxUnavailable": "25%", "maxSurge": 0},
    )


VALID = fleet_docs(3) + [full_pool(), policy_doc("p", [{"from": "*", "messages": ["*"],
                                                         "sharedState": {"read": ["a/*"], "write": ["b/[ab]?"]}}])]


def mutations(document: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Copies of ``document`` with one value replaced by something of another type or shape."""
    replacements: list[Any] = [None, True, -1, 0, 1.5, "", "x", "X_Y", [], ["a", "a"], {}, {"bogus": 1}]
    if isinstance(document, dict):
        for key, value in document.items():
            for inner_path, inner in mutations(value, path + (key,)):
                yield inner_path, {**document, key: inner}
        yield path + ("<extra key>",), {**document, "unknownKey": 1}
    elif isinstance(document, list):
        for i, value in enumerate(document):
            for inner_path, inner in mutations(value, path + (i,)):
                yield inner_path, document[:i] + [inner] + document[i + 1:]
    for replacement in replacements:
        if replacement != document or type(replacement) is not type(document):
            yield path + (repr(replacement),), copy.deepcopy(replacement)


MUTATED = [m for doc in [VALID[0], full_pool(), VALID[-1]] for m in mutations(doc)]


def test_union_schema_is_valid_draft_07() -> None:
    schema = union_schema()
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    Draft7Validator.check_schema(schema)


@pytest.mark.parametrize("kind", KINDS)
def test_kind_schema_is_valid_draft_07_and_self_contained(kind: str) -> None:
    schema = kind_schema(kind)
    Draft7Validator.check_schema(schema)
    json.dumps(schema)  # printable by `clawctl schema KIND`
    validator = Draft7Validator(schema)
    assert validator.is_valid(next(d for d in VALID if d["kind"] == kind))
    assert not validator.is_valid(next(d for d in VALID if d["kind"] != kind))


def _retrieve(uri: str) -> Resource[Any]:
    """Load schema files by file:// URI, as an editor resolving the modeline would."""
    assert uri.startswith("file://"), uri
    path = Path(uri[len("file://"):])
    return Resource.from_contents(json.loads(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("kind", KINDS)
def test_per_kind_schema_files_resolve(kind: str) -> None:
    path = schema_dir() / KIND_FILES[kind]
    contents = json.loads(path.read_text(encoding="utf-8"))
    Draft7Validator.check_schema(contents)
    validator = Draft7Validator({"$ref": path.as_uri()}, registry=Registry(retrieve=_retrieve))
    assert validator.is_valid(next(d for d in VALID if d["kind"] == kind))
    invalid = copy.deepcopy(next(d for d in VALID if d["kind"] == kind))
    invalid["metadata"]["name"] = "Not_A_Name"
    assert not validator.is_valid(invalid)


def test_every_schema_file_is_listed() -> None:
    assert sorted(p.name for p in schema_dir().glob("*.json")) == sorted([*KIND_FILES.values(), "clawctl.v1.json"])


MODEL_BLOCKS = {"isolation": Isolation, "sessions": Sessions, "loadBalancing": LoadBalancing, "health": Health,
                "failover": Failover, "backoff": Backoff, "drain": Drain, "rollout": Rollout}


@pytest.mark.parametrize("block", sorted(MODEL_BLOCKS))
def test_model_blocks_have_exactly_the_schema_keys(block: str) -> None:
    """The schema defines the structure; the model must neither miss nor invent a key."""
    model_keys = {f.metadata["key"] for f in fields(MODEL_BLOCKS[block])}
    assert model_keys == set(union_schema()["definitions"][block]["properties"])


def test_pools_and_fleet_defaults_take_every_policy_block() -> None:
    definitions = union_schema()["definitions"]
    pool_keys = set(definitions["AgentPool"]["properties"]["spec"]["properties"])
    default_keys = set(definitions["Fleet"]["properties"]["spec"]["properties"]["defaults"]["properties"])
    assert set(POLICY_BLOCKS) <= pool_keys
    assert default_keys == {*POLICY_BLOCKS, "env"}


def _walk(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}/{i}")


def test_enums_and_patterns_have_titles_for_messages() -> None:
    """Messages say "is not a valid <title>", so every enum and value pattern needs a title."""
    untitled = [path for path, node in _walk(union_schema())
                if ("enum" in node or "pattern" in node) and "title" not in node
                and "/propertyNames" not in path and "/items" not in path]
    assert untitled == []


def test_units_are_known() -> None:
    units = {node["x-unit"] for _, node in _walk(union_schema()) if "x-unit" in node}
    assert units == {"duration", "memory", "cpu"}


def test_there_are_enough_documents_to_compare() -> None:
    assert len(documents_of(FIXTURES)) >= 60
    assert len(documents_of(SAMPLES)) >= 10
    assert len(MUTATED) >= 500


@pytest.mark.parametrize("document", VALID + documents_of(SAMPLES), ids=lambda d: f"{d['kind']}-{d['metadata']['name']}")
def test_both_validators_accept_valid_documents(document: Any) -> None:
    assert fast_accepts(document)
    assert jsonschema_accepts(document)


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_validators_agree_on_fixture_documents(path: Path) -> None:
    for document in documents_of([path]):
        assert fast_accepts(document) == jsonschema_accepts(document), document


def test_validators_agree_on_mutated_documents() -> None:
    disagreements = [(path, doc) for path, doc in MUTATED if fast_accepts(doc) != jsonschema_accepts(doc)]
    assert disagreements == []


def test_most_mutations_are_invalid() -> None:
    """Guard against a schema that accepts anything (which would make agreement trivial)."""
    rejected = sum(1 for _, doc in MUTATED if not jsonschema_accepts(doc))
    assert rejected / len(MUTATED) > 0.8


@pytest.mark.parametrize("document", [None, 1, "Fleet", [], [{"kind": "Fleet"}], {}, {"kind": "Fleet"}])
def test_validators_agree_on_odd_shapes(document: Any) -> None:
    assert fast_accepts(document) is False
    assert jsonschema_accepts(document) is False


def test_cached_validator_needs_no_fastjsonschema(tmp_path: Path) -> None:
    """Run twice in fresh interpreters: the second one only loads the cached bytecode, which
    raises clawctl's own exception and never imports fastjsonschema (slow to import)."""
    import os
    import subprocess
    import sys

    probe = ("import sys; from clawctl.config.schema import CompiledSchemaFailure, fast_validator; v = fast_validator()\n"
             "try:\n    v({'kind': 'Nope'})\nexcept CompiledSchemaFailure:\n    print('failed as expected')\n"
             "print('fastjsonschema' in sys.modules)\n")
    env = {**os.environ, "CLAWCTL_HOME": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60,
                           check=True).stdout.split() for _ in range(2)]
    assert runs[0][-1] == "True"  # generated it
    assert runs[1] == ["failed", "as", "expected", "False"]
    assert [p.name.startswith("schema_") for p in (tmp_path / "cache").iterdir()] == [True]


def test_cache_directory_is_the_homes() -> None:
    from clawctl.config.schema import _cache_dir_name
    from clawctl.home import cache_dir

    assert _cache_dir_name() == str(cache_dir())
