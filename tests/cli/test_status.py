"""``clawctl status``: the desired state per fleet and pool, as table, JSON or YAML."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ruamel.yaml import YAML

from tests.builders import write_fleet
from tests.cli.conftest import Run

CLI = Callable[..., Run]


def applied(cli: CLI, tmp_path: Path) -> None:
    write_fleet(tmp_path / "a", 2, name="alpha", isolation={"level": "strict", "memory": "512Mi", "cpu": "500m"})
    write_fleet(tmp_path / "b", 1, name="beta", loadBalancing={"strategy": "round-robin"})
    assert cli("apply", tmp_path / "a").code == 0
    assert cli("apply", tmp_path / "b").code == 0


def test_empty_registry(cli: CLI, clawctl_home: Path) -> None:
    result = cli("status")
    assert result.code == 0
    assert result.out == f"no fleets in the registry {clawctl_home / 'registry.db'}\n"
    assert json.loads(cli("status", "-o", "json").out) == {"version": 1, "fleets": [],
                                                           "daemon": {"running": False, "pid": None}}


def test_table(cli: CLI, tmp_path: Path) -> None:
    applied(cli, tmp_path)
    lines = cli("status").out.splitlines()
    assert lines[0].startswith("fleet alpha  revision 1, applied ") and lines[0].endswith("policies: traffic")
    assert lines[1].split() == ["POOL", "REPLICAS", "CAPACITY", "ISOLATION", "BALANCING", "FAILOVER", "REV"]
    assert lines[2].split() == ["pool-1", "2", "10", "strict", "mem", "512Mi", "cpu", "0.5",
                                "least-connections", "restart", "1"]
    assert lines[4] == ""
    assert lines[5].startswith("fleet beta  revision 2")
    assert "round-robin" in lines[7]


def test_json_and_yaml_agree(cli: CLI, tmp_path: Path) -> None:
    applied(cli, tmp_path)
    data = json.loads(cli("status", "-o", "json").out)
    assert [f["name"] for f in data["fleets"]] == ["alpha", "beta"]
    alpha = data["fleets"][0]
    assert alpha["revision"] == 1 and alpha["policies"] == ["traffic"] and alpha["applied_at"].endswith("Z")
    assert alpha["pools"][0]["desired"]["isolation"] == {"level": "strict", "memory": "512Mi", "cpu": "0.5",
                                                         "network": "none", "openFiles": 256, "processes": 64}
    assert YAML(typ="safe", pure=True).load(cli("status", "-o", "yaml").out) == data


def test_one_pool(cli: CLI, tmp_path: Path) -> None:
    applied(cli, tmp_path)
    data = json.loads(cli("status", "pool-2", "-o", "json").out)
    assert [(f["name"], [p["name"] for p in f["pools"]]) for f in data["fleets"]] == [("alpha", ["pool-2"])]
    missing = cli("status", "pool-7")
    assert missing.code == 1 and missing.err.startswith("error: no fleet has a pool named pool-7\nhint: ")


def test_bad_output_format_is_a_usage_error(cli: CLI) -> None:
    assert cli("status", "-o", "xml").code == 2
