"""``clawctl history``, ``rollback`` and ``delete``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.builders import fleet_docs, write_fleet
from tests.cli.conftest import Run

CLI = Callable[..., Run]


def three_revisions(cli: CLI, tmp_path: Path) -> Path:
    write_fleet(tmp_path, 2, isolation={"memory": "1Gi"})
    assert cli("apply", tmp_path, "-m", "one").code == 0
    write_fleet(tmp_path, 2, isolation={"memory": "2Gi"})
    assert cli("apply", tmp_path, "-m", "two").code == 0
    write_fleet(tmp_path, 3, isolation={"memory": "2Gi"})
    assert cli("apply", tmp_path, "-m", "three").code == 0
    return tmp_path


def test_history_table_and_json(cli: CLI, tmp_path: Path) -> None:
    three_revisions(cli, tmp_path)
    table = cli("history")
    assert table.code == 0
    lines = table.out.splitlines()
    assert lines[0].split() == ["REV", "FLEET", "KIND", "APPLIED", "BY", "CHANGES", "GIT", "MESSAGE"]
    assert [line.split()[0] for line in lines[1:]] == ["1", "2", "3"]
    assert "+4 ~0 -0" in lines[1] and lines[1].endswith("one")
    data = json.loads(cli("history", "demo", "-o", "json").out)
    assert [r["summary"] for r in data["revisions"]] == [
        {"create": 4, "update": 0, "delete": 0}, {"create": 0, "update": 2, "delete": 0},
        {"create": 1, "update": 1, "delete": 0}]


def test_history_of_unknown_fleet(cli: CLI, tmp_path: Path) -> None:
    three_revisions(cli, tmp_path)
    result = cli("history", "dem")
    assert result.code == 1
    assert result.err.startswith("error: fleet dem has no recorded revisions\nhint: ")
    assert "demo" in result.err


def test_empty_history(cli: CLI, clawctl_home: Path) -> None:
    assert cli("history").out == "no revisions recorded yet\n"
    assert not (clawctl_home / "registry.db").exists()


def test_rollback_shows_the_plan_and_records_a_new_revision(cli: CLI, tmp_path: Path) -> None:
    three_revisions(cli, tmp_path)
    refused = cli("rollback", "1")
    assert refused.code == 1
    assert refused.out.startswith("rollback of fleet demo to the content of revision 1\n"
                                  "fleet demo: changes against revision 3\n")
    assert "      spec.isolation.memory: 2Gi → 1Gi\n" in refused.out
    assert "  - pool pool-3\n" in refused.out
    assert "--yes" in refused.err
    dry = cli("rollback", "1", "--dry-run")
    assert dry.code == 0 and dry.out.endswith("dry run: nothing recorded\n")
    done = cli("rollback", "1", "--yes")
    assert done.code == 0, done.err
    assert done.out.endswith("rolled back: fleet demo is at revision 4 "
                             "(content of revision 1; 0 created, 3 updated, 1 removed)\n")
    revisions = json.loads(cli("history", "-o", "json").out)["revisions"]
    assert revisions[3]["kind"] == "rollback" and revisions[3]["rollback_of"] == 1
    assert revisions[3]["message"] == "rollback to revision 1"
    assert revisions[3]["content_hash"] == revisions[0]["content_hash"]
    assert "rollback to 1" in cli("history").out
    again = cli("rollback", "1")
    assert again.code == 0 and "is up to date at revision 4: no changes" in again.out


def test_rollback_without_removals_needs_no_yes(cli: CLI, tmp_path: Path) -> None:
    three_revisions(cli, tmp_path)
    assert cli("rollback", "3").code == 0  # already the head: nothing to do
    write_fleet(tmp_path, 3, isolation={"memory": "4Gi"})
    cli("apply", tmp_path)
    result = cli("rollback", "3", "-m", "undo 4Gi")
    assert result.code == 0, result.err
    assert json.loads(cli("history", "-o", "json").out)["revisions"][-1]["message"] == "undo 4Gi"


def test_rollback_of_unknown_revision(cli: CLI) -> None:
    result = cli("rollback", "7")
    assert result.code == 1
    assert result.err == "error: revision 7 does not exist\nhint: `clawctl history` lists the recorded revisions\n"
    assert cli("rollback", "zero").code == 2


def test_delete_needs_yes_and_keeps_history(cli: CLI, tmp_path: Path) -> None:
    write_fleet(tmp_path, 2)
    cli("apply", tmp_path)
    refused = cli("delete", "demo")
    assert refused.code == 1
    assert refused.err == ("error: deleting fleet demo removes its 2 pools and 1 policy\n"
                           "hint: re-run with --yes to delete it\n")
    assert "  - pool pool-1\n" in refused.out
    done = cli("delete", "demo", "--yes")
    assert done.code == 0
    assert done.out.endswith("deleted: fleet demo (revision 2); its history is kept\n")
    assert cli("status").out.startswith("no fleets in the registry")
    assert [r["kind"] for r in json.loads(cli("history", "-o", "json").out)["revisions"]] == ["apply", "delete"]
    gone = cli("delete", "demo", "--yes")
    assert gone.code == 1 and "fleet demo is not in the registry" in gone.err
    back = cli("rollback", "1")
    assert back.code == 0 and "fleet demo: new fleet" in back.out


def test_delete_unknown_fleet(cli: CLI) -> None:
    result = cli("delete", "nothing", "--yes")
    assert result.code == 1 and result.err.startswith("error: fleet nothing is not in the registry\n")


def test_rollback_to_a_revision_that_no_longer_validates(cli: CLI, tmp_path: Path) -> None:
    write_fleet(tmp_path, 1)
    cli("apply", tmp_path)
    import sqlalchemy as sa

    from clawctl.registry.engine import Registry
    from clawctl.registry.store import pack_documents
    from clawctl.registry.tables import revisions

    docs = fleet_docs(1)
    docs[1]["spec"]["replicas"] = -1
    with Registry() as reg, reg.writing() as conn:
        conn.execute(sa.update(revisions).values(documents=pack_documents(docs)))
    result = cli("rollback", "1")
    assert result.code == 1
    assert "revision 1 of fleet demo no longer validates with this clawctl" in result.err
    assert "<revision 1>:" in result.out and "replicas" in result.out
