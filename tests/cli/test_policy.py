"""``clawctl policy show|check``: the policy graph from config files or the registry; exit 0 / 1 / 2."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.builders import fleet_docs, pool_doc, to_yaml, write_fleet, write_text
from tests.cli.conftest import Run

CLI = Callable[..., Run]

MANUFACTURING = str(Path(__file__).resolve().parents[2] / "sample-configs" / "manufacturing")
POOLS = ["compliance", "coordination", "production-monitoring", "quality-control", "supply-chain"]


# -------------------------------------------------------------------- check, from files
@pytest.mark.parametrize(("source", "target", "verb", "line"), [
    ("quality-control", "lines/7/telemetry", "read",
     "allow: pool quality-control may read lines/7/telemetry (policy plant-events rule 2)"),
    ("production-monitoring", "lines/7/telemetry", "write",
     "allow: pool production-monitoring may write lines/7/telemetry (policy plant-events rule 1)"),
    ("production-monitoring", "production.line1", "publish",
     "allow: pool production-monitoring may publish production.line1 (policy plant-events rule 1)"),
    ("quality-control", "production.*", "subscribe",
     "allow: pool quality-control may subscribe to production.* (policy plant-events rule 2)"),
    ("supply-chain", "inventory/steel", "write",
     "allow: pool supply-chain may write inventory/steel (policy plant-events rule 3)"),
    ("compliance", "inventory/steel", "read",
     "allow: pool compliance may read inventory/steel (policy plant-events rule 4)"),
    ("coordination", "quality-control", "message",
     "allow: pool coordination may message quality-control (policy plant-events rule 5)"),
    ("coordination", "supply-chain", "open-session",
     "allow: pool coordination may open sessions in supply-chain (policy plant-events rule 5)"),
])
def test_check_allows_with_the_deciding_rule(cli: CLI, source: str, target: str, verb: str, line: str) -> None:
    result = cli("policy", "check", source, target, verb, MANUFACTURING)
    assert (result.code, result.out) == (0, line + "\n"), result.err


@pytest.mark.parametrize(("source", "target", "verb"), [
    ("quality-control", "lines/7/telemetry", "write"),       # reading does not imply writing
    ("production-monitoring", "lines/7/telemetry", "read"),  # writing does not imply reading
    ("quality-control", "production-monitoring", "read"),    # a key, not a pool: nothing matches
    ("quality-control", "*", "subscribe"),                   # wider than production.*
    ("supply-chain", "quality.*", "subscribe"),              # only quality.rejects.*
    ("compliance", "compliance.report", "publish"),
    ("supply-chain", "coordination", "message"),             # coordination → all does not imply back
    ("quality-control", "quality-control", "open-session"),  # no right over itself without a rule
])
def test_check_denies_with_exit_1(cli: CLI, source: str, target: str, verb: str) -> None:
    result = cli("policy", "check", source, target, verb, "-f", MANUFACTURING)
    assert result.code == 1, result.err
    assert result.out.startswith(f"deny: pool {source} may not ")
    assert result.out.endswith(f" {target}: no CommunicationPolicy rule allows it\n")


@pytest.mark.parametrize(("args", "message", "hint"), [
    (("qc", "x", "read"), "error: FROM qc is not a pool of fleet manufacturing",
     "hint: pools: compliance, coordination, production-monitoring, quality-control, supply-chain"),
    (("quality-contrl", "x", "read"), "error: FROM quality-contrl is not a pool of fleet manufacturing",
     "hint: did you mean 'quality-control'?"),
    (("coordination", "nowhere", "message"), "error: TO nowhere is not a pool of fleet manufacturing", "hint: "),
    (("quality-control", "x", "reed"), "error: unknown verb 'reed'",
     "hint: did you mean 'read'? verbs: message, open-session, publish, subscribe, read, write"),
    (("quality-control", "x", "send"), "error: unknown verb 'send'",
     "hint: verbs: message, open-session, publish, subscribe, read, write"),
])
def test_check_usage_errors_exit_2(cli: CLI, args: tuple[str, ...], message: str, hint: str) -> None:
    result = cli("policy", "check", *args, MANUFACTURING)
    assert result.code == 2 and result.out == ""
    lines = result.err.splitlines()
    assert lines[0] == message and lines[1].startswith(hint) and len(lines) == 2
    assert "Traceback" not in result.err


def test_check_json(cli: CLI) -> None:
    allowed = cli("policy", "check", "coordination", "quality.line1.*", "subscribe", MANUFACTURING, "-o", "json")
    assert allowed.code == 0
    assert json.loads(allowed.out) == {
        "version": 1, "fleet": "manufacturing", "source": "files", "revision": None,
        "from": "coordination", "verb": "subscribe", "target": "quality.line1.*", "allowed": True,
        "rule": "policy plant-events rule 5", "policy": "plant-events", "index": 5,
    }
    denied = cli("policy", "check", "quality-control", "supply-chain", "open-session", MANUFACTURING, "-o", "json")
    assert denied.code == 1
    data = json.loads(denied.out)
    assert (data["allowed"], data["verb"], data["rule"], data["policy"], data["index"]) == (False, "message", None,
                                                                                            None, None)


def test_invalid_config_prints_validates_report(cli: CLI, tmp_path: Path) -> None:
    docs = fleet_docs(2)
    docs[1]["spec"]["replicsa"] = 3
    path = write_text(tmp_path / "bad.yaml", to_yaml(docs))
    report = cli("validate", path)
    assert report.code == 1
    shown = cli("policy", "show", path)
    assert (shown.code, shown.out) == (1, report.out)
    checked = cli("policy", "check", "pool-1", "pool-2", "message", path)
    assert (checked.code, checked.out) == (2, report.out)  # never exit 1: that would read as "denied"
    as_json = cli("policy", "show", path, "-o", "json")
    assert as_json.code == 1 and json.loads(as_json.out) == json.loads(cli("validate", path, "--format", "json").out)


def test_unreadable_path_exits_2(cli: CLI, tmp_path: Path) -> None:
    assert cli("policy", "show", tmp_path / "missing.yaml").code == 2
    assert cli("policy", "check", "a", "b", "message", tmp_path / "missing.yaml").code == 2


# -------------------------------------------------------------------- show, from files
def test_show_table(cli: CLI) -> None:
    result = cli("policy", "show", MANUFACTURING)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == "fleet manufacturing  from config files, policies: plant-events"
    assert lines[1].split() == ["FROM", "VERB", "TARGET", "RULE"]
    rows = [line.split(None, 2) for line in lines[2:]]
    assert ["quality-control", "read", "lines/*/telemetry              policy plant-events rule 2"] in rows
    coordination = [r[2].split()[0] for r in rows if r[:2] == ["coordination", "message"]]
    assert coordination == POOLS
    assert "  coordination           message    supply-chain (via *)           policy plant-events rule 5" in lines
    assert all(r[0] == "coordination" for r in rows if r[1] == "message")
    assert "\x1b[" not in result.out


def test_show_table_of_a_pool_without_rights(cli: CLI, tmp_path: Path) -> None:
    docs = fleet_docs(2)
    docs.insert(1, pool_doc("loner"))
    result = cli("policy", "show", write_text(tmp_path / "f.yaml", to_yaml(docs)))
    assert result.code == 0, result.err
    assert result.out.splitlines()[2].split() == ["loner", "-", "nothing", "(default", "deny)", "-"]


def test_show_json(cli: CLI) -> None:
    result = cli("policy", "show", MANUFACTURING, "-o", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["version"] == 1 and len(data["fleets"]) == 1
    fleet = data["fleets"][0]
    assert {k: fleet[k] for k in ("name", "source", "revision", "policies")} == {
        "name": "manufacturing", "source": "files", "revision": None, "policies": ["plant-events"]}
    pools = {p["name"]: p for p in fleet["pools"]}
    assert list(pools) == POOLS
    assert all(set(p) == {"name", "message", "publish", "subscribe", "read", "write"} for p in pools.values())
    assert pools["coordination"]["message"][0] == {"pool": "compliance", "via": "*",
                                                   "rule": "policy plant-events rule 5", "policy": "plant-events",
                                                   "index": 5}
    assert pools["supply-chain"]["subscribe"] == [
        {"pattern": "production.output.*", "rule": "policy plant-events rule 3", "policy": "plant-events", "index": 3},
        {"pattern": "quality.rejects.*", "rule": "policy plant-events rule 3", "policy": "plant-events", "index": 3},
    ]
    assert pools["compliance"]["message"] == [] and pools["compliance"]["publish"] == []


def test_show_fleet_option_must_name_the_config_set(cli: CLI) -> None:
    assert cli("policy", "show", MANUFACTURING, "--fleet", "manufacturing").code == 0
    wrong = cli("policy", "show", MANUFACTURING, "--fleet", "other")
    assert wrong.code == 2 and wrong.err.startswith("error: the config set is fleet manufacturing, not other\n")


# -------------------------------------------------------------------- from the registry
def test_empty_registry(cli: CLI, clawctl_home: Path) -> None:
    shown = cli("policy", "show")
    assert (shown.code, shown.out) == (0, f"no fleets in the registry {clawctl_home / 'registry.db'}\n")
    assert json.loads(cli("policy", "show", "-o", "json").out) == {"version": 1, "fleets": []}
    checked = cli("policy", "check", "a", "b", "message")
    assert checked.code == 2 and checked.err.startswith("error: no fleet has been applied to the registry ")
    assert not (clawctl_home / "registry.db").exists(), "reading policies must not create a registry"


def test_from_the_registry_after_apply(cli: CLI) -> None:
    assert cli("apply", MANUFACTURING).code == 0
    shown = cli("policy", "show")
    assert shown.code == 0, shown.err
    assert shown.out.splitlines()[0] == "fleet manufacturing  revision 1, policies: plant-events"
    assert shown.out.splitlines()[1:] == cli("policy", "show", MANUFACTURING).out.splitlines()[1:]
    data = json.loads(cli("policy", "show", "-o", "json").out)
    from_files = json.loads(cli("policy", "show", MANUFACTURING, "-o", "json").out)
    assert (data["fleets"][0]["source"], data["fleets"][0]["revision"]) == ("registry", 1)
    assert data["fleets"][0]["pools"] == from_files["fleets"][0]["pools"]

    allowed = cli("policy", "check", "quality-control", "lines/2/telemetry", "read")
    assert (allowed.code, allowed.out) == (
        0, "allow: pool quality-control may read lines/2/telemetry (policy plant-events rule 2)\n")
    assert cli("policy", "check", "quality-control", "lines/2/telemetry", "write").code == 1
    assert cli("policy", "check", "nobody", "lines/2/telemetry", "write").code == 2


def test_several_fleets_in_the_registry(cli: CLI, tmp_path: Path) -> None:
    assert cli("apply", MANUFACTURING).code == 0
    assert cli("apply", write_fleet(tmp_path / "other", 2, name="other")).code == 0
    shown = cli("policy", "show")
    assert shown.code == 0
    assert [line for line in shown.out.splitlines() if line.startswith("fleet ")] == [
        "fleet manufacturing  revision 1, policies: plant-events", "fleet other  revision 2, policies: traffic"]
    assert [f["name"] for f in json.loads(cli("policy", "show", "-o", "json", "--fleet", "other").out)["fleets"]] == [
        "other"]

    ambiguous = cli("policy", "check", "pool-1", "pool-2", "message")
    assert ambiguous.code == 2
    assert ambiguous.err.splitlines() == ["error: the registry holds several fleets (manufacturing, other)",
                                          "hint: name one with --fleet, or give the config files as PATH"]
    chosen = cli("policy", "check", "pool-1", "pool-2", "message", "--fleet", "other")
    assert (chosen.code, chosen.out) == (0, "allow: pool pool-1 may message pool-2 (policy traffic rule 1)\n")
    assert cli("policy", "check", "pool-2", "pool-2", "message", "--fleet", "other").code == 1

    unknown = cli("policy", "show", "--fleet", "othre")
    assert unknown.code == 1 and unknown.err.splitlines()[1] == "hint: did you mean 'other'?"
    assert cli("policy", "check", "pool-1", "pool-2", "message", "--fleet", "othre").code == 2
