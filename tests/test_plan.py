"""The planner is pure: documents in, actions out; no database, no files."""

from __future__ import annotations

from typing import Any

import pytest

from clawctl.config.normalize import content_hash, fleet_to_documents
from clawctl.plan import ABSENT, FieldChange, FleetSnapshot, Op, diff_values, plan, plan_delete, plan_documents
from tests.builders import fleet_docs
from tests.registry.fleets import load


def snapshot(docs: list[dict[str, Any]], revision: int = 1) -> FleetSnapshot:
    fleet = load(docs)
    normalized = fleet_to_documents(fleet)
    return FleetSnapshot(fleet.name, revision, content_hash(normalized), tuple(normalized))


def test_new_fleet_plans_a_create_for_every_object() -> None:
    result = plan(load(fleet_docs(2)), None)
    assert [(a.op, a.kind, a.name) for a in result.actions] == [
        (Op.CREATE, "Fleet", "demo"),
        (Op.CREATE, "AgentPool", "pool-1"),
        (Op.CREATE, "AgentPool", "pool-2"),
        (Op.CREATE, "CommunicationPolicy", "traffic"),
    ]
    assert result.base_revision is None and result.changed
    assert all(a.document is not None for a in result.actions)


def test_converged_state_plans_nothing() -> None:
    docs = fleet_docs(3)
    result = plan(load(docs), snapshot(docs, revision=7))
    assert not result.changed and result.actions == ()
    assert result.base_revision == 7
    assert result.counts() == {"create": 0, "update": 0, "delete": 0}


def test_same_meaning_spelled_differently_plans_nothing() -> None:
    before = fleet_docs(1, isolation={"memory": "4Gi", "cpu": 2})
    after = fleet_docs(1, isolation={"memory": "4096Mi", "cpu": "2000m", "level": "shared"})
    assert not plan(load(after), snapshot(before)).changed


def test_update_names_each_changed_field_with_canonical_units() -> None:
    before = fleet_docs(2, isolation={"memory": "4Gi"})
    after = fleet_docs(2, isolation={"memory": "4Gi"})
    after[2]["spec"]["isolation"] = {"memory": "8Gi"}
    after[2]["spec"]["replicas"] = 5
    result = plan(load(after), snapshot(before))
    assert [(a.op, a.name) for a in result.actions] == [(Op.UPDATE, "pool-2")]
    assert result.actions[0].changes == (
        FieldChange("spec.isolation.memory", "4Gi", "8Gi"),
        FieldChange("spec.replicas", 2, 5),
    )


def test_fleet_defaults_reach_every_pool_as_updates() -> None:
    before = fleet_docs(2, defaults={"health": {"heartbeatInterval": "5s"}})
    after = fleet_docs(2, defaults={"health": {"heartbeatInterval": "10s", "heartbeatTimeout": "30s"}})
    result = plan(load(after), snapshot(before))
    assert {a.name for a in result.actions} == {"pool-1", "pool-2"}
    paths = [c.path for c in result.actions[0].changes]
    assert paths == ["spec.health.heartbeatInterval", "spec.health.heartbeatTimeout"]


def test_removed_pool_is_a_delete_and_is_listed_for_confirmation() -> None:
    before = fleet_docs(3, policy=False)
    after = fleet_docs(2, policy=False)
    result = plan(load(after), snapshot(before))
    assert [(a.op, a.kind, a.name) for a in result.actions] == [(Op.DELETE, "AgentPool", "pool-3")]
    assert result.removed_pools == ("pool-3",)


def test_fleet_fields_and_labels_are_updates_of_the_fleet() -> None:
    before = fleet_docs(1)
    after = fleet_docs(1)
    after[0]["spec"] = {"description": "new words"}
    after[0]["metadata"]["labels"] = {"app.kubernetes.io/team": "ops"}
    result = plan(load(after), snapshot(before))
    assert result.actions[0].kind == "Fleet" and result.actions[0].op is Op.UPDATE
    assert result.actions[0].changes == (
        FieldChange("metadata.labels", ABSENT, {"app.kubernetes.io/team": "ops"}),
        FieldChange("spec.description", "", "new words"),
    )


def test_policy_rules_are_compared_item_by_item() -> None:
    before = fleet_docs(2)
    after = fleet_docs(2)
    after[-1]["spec"]["rules"][0]["messages"] = ["pool-1"]
    result = plan(load(after), snapshot(before))
    assert result.actions[0].changes == (FieldChange("spec.rules[0].messages", ["pool-2"], ["pool-1"]),)


def test_added_and_removed_policy() -> None:
    before = fleet_docs(2, policy=False)
    with_policy = fleet_docs(2)
    assert [(a.op, a.kind) for a in plan(load(with_policy), snapshot(before)).actions] == [
        (Op.CREATE, "CommunicationPolicy")]
    assert [(a.op, a.kind) for a in plan(load(before), snapshot(with_policy)).actions] == [
        (Op.DELETE, "CommunicationPolicy")]
    assert plan(load(before), snapshot(with_policy)).removed_pools == ()


def test_plan_delete_removes_everything_and_the_fleet_last() -> None:
    current = snapshot(fleet_docs(2))
    result = plan_delete(current)
    assert result.deletes_fleet and result.documents == ()
    assert [(a.op, a.kind) for a in result.actions][-1] == (Op.DELETE, "Fleet")
    assert result.removed_pools == ("pool-1", "pool-2")
    assert result.counts() == {"create": 0, "update": 0, "delete": 4}


def test_plan_documents_matches_plan_on_the_model() -> None:
    fleet = load(fleet_docs(2))
    current = snapshot(fleet_docs(1))
    assert plan_documents(fleet_to_documents(fleet), current) == plan(fleet, current)


def test_plan_is_deterministic() -> None:
    docs = fleet_docs(4)
    current = snapshot(fleet_docs(2, isolation={"memory": "1Gi"}))
    assert plan(load(docs), current) == plan(load(list(reversed(docs))), current)


@pytest.mark.parametrize(("old", "new", "expected"), [
    ({"a": 1}, {"a": 1}, []),
    ({"a": 1}, {"a": 2}, [FieldChange("a", 1, 2)]),
    ({"a": {"b": 1}}, {"a": {}}, [FieldChange("a.b", 1, ABSENT)]),
    ({}, {"x.y": 1}, [FieldChange('["x.y"]', ABSENT, 1)]),
    ({"l": [1, 2]}, {"l": [2, 1]}, [FieldChange("l", [1, 2], [2, 1])]),
    ({"n": 1}, {"n": 1.0}, []),
    ({"n": "1"}, {"n": 1}, [FieldChange("n", "1", 1)]),
    ({"r": [{"a": 1}]}, {"r": [{"a": 1}, {"a": 2}]}, [FieldChange("r[1]", ABSENT, {"a": 2})]),
    ({"r": [{"a": 1}, {"a": 2}]}, {"r": [{"a": 3}]}, [FieldChange("r[0].a", 1, 3), FieldChange("r[1]", {"a": 2}, ABSENT)]),
    ({"r": []}, {"r": [{"a": 1}]}, [FieldChange("r", [], [{"a": 1}])]),
])
def test_diff_values(old: Any, new: Any, expected: list[FieldChange]) -> None:
    assert diff_values(old, new) == expected


def test_plan_module_stays_pure() -> None:
    import ast
    from pathlib import Path

    import clawctl.plan as module

    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    allowed = {"__future__", "re", "collections.abc", "dataclasses", "enum", "typing",
               "clawctl.config.model", "clawctl.config.normalize"}
    assert imported <= allowed, imported - allowed
