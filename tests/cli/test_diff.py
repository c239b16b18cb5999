"""``clawctl diff``: exit 0 no changes, 1 changes, 2 error; readable text, stable JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from clawctl.cli.render.plan import render_text
from clawctl.cli.render.style import COLOR
from tests.builders import fleet_docs, to_yaml, write_fleet, write_text
from tests.cli.conftest import Run

CLI = Callable[..., Run]


def test_new_fleet_shows_creates_and_exits_1(cli: CLI, tmp_path: Path, clawctl_home: Path) -> None:
    path = write_fleet(tmp_path, 2)
    result = cli("diff", path)
    assert result.code == 1, result.err
    assert result.out.splitlines() == [
        "fleet demo: new fleet",
        "  + fleet demo",
        "  + pool pool-1 (2 replicas: python3 -m clawctl.agent.examples.echo)",
        "  + pool pool-2 (2 replicas: python3 -m clawctl.agent.examples.echo)",
        "  + policy traffic (2 rules)",
        "plan: 4 to create, 0 to update, 0 to remove",
    ]
    assert "\x1b[" not in result.out
    assert not (clawctl_home / "registry.db").exists(), "diff must not create a registry"


def test_no_changes_exits_0(cli: CLI, tmp_path: Path) -> None:
    path = write_fleet(tmp_path, 2)
    assert cli("apply", path).code == 0
    result = cli("diff", "-f", path)
    assert result.code == 0
    assert result.out == "fleet demo is up to date at revision 1: no changes\n"


def test_field_changes_are_shown_by_path(cli: CLI, tmp_path: Path) -> None:
    write_fleet(tmp_path, 3, isolation={"memory": "4Gi"})
    assert cli("apply", tmp_path).code == 0
    docs = fleet_docs(2, isolation={"memory": "4Gi"})
    docs[1]["spec"]["isolation"] = {"memory": "8Gi"}
    write_text(tmp_path / "fleet.yaml", to_yaml(docs))
    result = cli("diff", tmp_path)
    assert result.code == 1
    assert "  ~ pool pool-1\n      spec.isolation.memory: 4Gi → 8Gi\n" in result.out
    assert "  - pool pool-3\n" in result.out
    assert "      spec.rules[1].messages: [pool-3] → [pool-1]\n" in result.out
    assert "      spec.rules[2]: {from: pool-3, messages: [pool-1]," in result.out
    assert "} → (unset)\n" in result.out
    assert result.out.endswith("plan: 0 to create, 2 to update, 1 to remove\n")


def test_json_output(cli: CLI, tmp_path: Path) -> None:
    write_fleet(tmp_path, 2, policy=False)
    cli("apply", tmp_path)
    docs = fleet_docs(1, policy=False)
    docs[1]["spec"]["replicas"] = 4
    write_text(tmp_path / "fleet.yaml", to_yaml(docs))
    result = cli("diff", tmp_path, "-o", "json")
    assert result.code == 1
    data = json.loads(result.out)
    assert data["version"] == 1 and data["fleet"] == "demo" and data["revision"] == 1 and data["changed"]
    assert data["summary"] == {"create": 0, "update": 1, "delete": 1}
    assert data["removed_pools"] == ["pool-2"]
    assert data["actions"] == [
        {"action": "update", "kind": "AgentPool", "name": "pool-1",
         "changes": [{"path": "spec.replicas", "old": 2, "new": 4}]},
        {"action": "delete", "kind": "AgentPool", "name": "pool-2"},
    ]


def test_invalid_config_prints_the_validate_report_and_exits_2(cli: CLI, tmp_path: Path) -> None:
    docs = fleet_docs(2)
    docs[1]["spec"]["replicas"] = "three"
    path = write_text(tmp_path / "fleet.yaml", to_yaml(docs))
    validate = cli("validate", path)
    result = cli("diff", path)
    assert result.code == 2 and validate.code == 1
    assert result.out == validate.out
    assert cli("apply", path).out == validate.out
    as_json = cli("diff", path, "-o", "json")
    assert as_json.code == 2 and json.loads(as_json.out)["valid"] is False


def test_registry_error_exits_2(cli: CLI, tmp_path: Path, clawctl_home: Path) -> None:
    (clawctl_home / "registry.db").write_bytes(b"not sqlite at all" * 100)
    result = cli("diff", write_fleet(tmp_path))
    assert result.code == 2
    assert result.err.startswith("error: ") and "not a clawctl registry" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize("args", [["diff"], ["diff", "/no/such/dir"]])
def test_usage_errors_exit_2(cli: CLI, args: list[str]) -> None:
    result = cli(*args)
    assert result.code == 2 and result.err.startswith("error: ")


def test_colors_on_a_terminal(tmp_path: Path) -> None:
    from clawctl.plan import plan
    from tests.registry.fleets import load

    text = render_text(plan(load(fleet_docs(1)), None), colors=COLOR)
    assert "\x1b[32m+ pool pool-1" in text
