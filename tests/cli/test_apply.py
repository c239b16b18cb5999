"""``clawctl apply``: plan, confirm removals, record one revision; nothing for no change."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.builders import fleet_docs, git_repo_with_fleet, to_yaml, write_fleet, write_text
from tests.cli.conftest import Run

CLI = Callable[..., Run]


def test_apply_records_a_revision_and_the_second_apply_nothing(cli: CLI, tmp_path: Path) -> None:
    path = write_fleet(tmp_path, 2)
    first = cli("apply", path, "-m", "first fleet")
    assert first.code == 0, first.err
    assert first.out.endswith("applied: fleet demo is at revision 1 (4 created, 0 updated, 0 removed)\n")
    second = cli("apply", "-f", path)
    assert second.code == 0
    assert second.out == "fleet demo is up to date at revision 1: no changes\n"
    history = json.loads(cli("history", "-o", "json").out)["revisions"]
    assert [(r["revision"], r["message"], r["source"]) for r in history] == [(1, "first fleet", [str(path)])]


def test_dry_run_records_nothing(cli: CLI, tmp_path: Path, clawctl_home: Path) -> None:
    result = cli("apply", write_fleet(tmp_path), "--dry-run")
    assert result.code == 0
    assert result.out.endswith("plan: 4 to create, 0 to update, 0 to remove\ndry run: nothing recorded\n")
    assert not (clawctl_home / "registry.db").exists()


def test_removing_pools_is_refused_without_yes(cli: CLI, tmp_path: Path) -> None:
    write_fleet(tmp_path, 3, policy=False)
    assert cli("apply", tmp_path).code == 0
    write_text(tmp_path / "fleet.yaml", to_yaml(fleet_docs(1, policy=False)))
    refused = cli("apply", tmp_path)
    assert refused.code == 1
    assert "  - pool pool-2\n  - pool pool-3\n" in refused.out
    assert refused.err == ("error: this would remove 2 pools from fleet demo: pool-2, pool-3\n"
                           "hint: re-run with --yes to remove them (their agents will be stopped), "
                           "or put them back in the config\n")
    assert cli("diff", tmp_path).code == 1  # nothing was recorded
    applied = cli("apply", tmp_path, "--yes")
    assert applied.code == 0 and "is at revision 2 (0 created, 0 updated, 2 removed)" in applied.out


def test_removal_confirmed_on_a_terminal(cli: CLI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import typer

    write_fleet(tmp_path, 2, policy=False)
    cli("apply", tmp_path)
    write_text(tmp_path / "fleet.yaml", to_yaml(fleet_docs(1, policy=False)))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    questions: list[str] = []
    answers = iter([False, True])

    def confirm(text: str, default: bool = False) -> bool:
        questions.append(text)
        return next(answers)

    monkeypatch.setattr(typer, "confirm", confirm)
    declined = cli("apply", tmp_path)
    assert declined.code == 1 and "not confirmed: nothing was recorded" in declined.err
    accepted = cli("apply", tmp_path)
    assert accepted.code == 0, accepted.err
    assert questions == ["remove 1 pool (pool-2) from fleet demo?"] * 2


def test_invalid_config_exits_1_with_the_validate_report(cli: CLI, tmp_path: Path) -> None:
    docs = fleet_docs(1)
    docs[1]["spec"]["dependsOn"] = ["nope"]
    path = write_text(tmp_path / "fleet.yaml", to_yaml(docs))
    result = cli("apply", path)
    assert result.code == 1
    assert result.out == cli("validate", path).out
    assert "unknown pool 'nope'" in result.out


def test_warnings_are_shown_and_apply_goes_on(cli: CLI, tmp_path: Path) -> None:
    docs = fleet_docs(1, failover={"fallbackPool": "pool-1"})
    docs[1]["spec"]["failover"] = {"standbys": 1}
    result = cli("apply", write_text(tmp_path / "fleet.yaml", to_yaml(docs)))
    assert result.code == 0, result.out + result.err
    assert "warning:" in result.err


def test_registry_option_and_home_option(cli: CLI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "elsewhere" / "reg.db"
    target.parent.mkdir()
    path = write_fleet(tmp_path / "cfg")
    assert cli("--registry", f"sqlite:///{target}", "apply", path).code == 0
    assert target.exists()
    monkeypatch.delenv("CLAWCTL_REGISTRY")  # the option set it for the rest of this process
    other_home = tmp_path / "home2"
    assert cli("--home", other_home, "apply", path).code == 0
    assert (other_home / "registry.db").exists()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_commit_and_dirty_flag_are_recorded(cli: CLI, tmp_path: Path) -> None:
    sha = git_repo_with_fleet(tmp_path)
    assert cli("apply", tmp_path / "fleet").code == 0
    write_fleet(tmp_path / "fleet", 2)
    assert cli("apply", tmp_path / "fleet").code == 0
    revisions = json.loads(cli("history", "-o", "json").out)["revisions"]
    assert [(r["git"]["commit"], r["git"]["dirty"]) for r in revisions] == [(sha, False), (sha, True)]
    table = cli("history").out
    assert f"{sha[:10]}+dirty" in table


def test_registry_problems_are_one_error_line(cli: CLI, tmp_path: Path, clawctl_home: Path) -> None:
    (clawctl_home / "registry.db").mkdir()
    result = cli("apply", write_fleet(tmp_path))
    assert result.code == 1
    assert result.err.startswith("error: the registry ") and "Traceback" not in result.err
    assert result.err.count("\n") == 2  # error + hint
