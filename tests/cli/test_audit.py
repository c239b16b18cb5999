"""``clawctl audit``, and the audit rows that apply, rollback, delete and retry write with their action."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from clawctl.cli.audit import compact_detail, parse_since
from clawctl.errors import UsageError
from clawctl.registry import audit
from clawctl.registry.engine import Registry
from clawctl.registry.provenance import current_user
from clawctl.registry.tables import commands, revisions
from tests.builders import git_repo_with_fleet, write_fleet
from tests.cli.conftest import Run

CLI = Callable[..., Run]
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def entries(cli: CLI, *args: str) -> list[dict[str, Any]]:
    result = cli("audit", "-o", "json", *args)
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["version"] == 1
    return list(data["entries"])


def append(*rows: audit.AuditEntry) -> None:
    with Registry() as registry, registry.writing() as conn:
        audit.record(conn, list(rows))


def count(table: sa.Table) -> int:
    with Registry() as registry, registry.reading() as conn:
        assert conn is not None
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_no_registry_means_no_entries(cli: CLI, clawctl_home: Path) -> None:
    assert cli("audit").out == "no audit entries\n"
    assert entries(cli) == []
    assert not (clawctl_home / "registry.db").exists()


def test_apply_rollback_delete_retry_are_audited(cli: CLI, tmp_path: Path) -> None:
    write_fleet(tmp_path, 2)
    assert cli("apply", tmp_path).code == 0
    write_fleet(tmp_path, 3)
    assert cli("apply", tmp_path).code == 0
    assert cli("rollback", "1", "--yes").code == 0
    assert cli("retry", "pool/pool-1").code == 0
    assert cli("delete", "demo", "--yes").code == 0
    rows = entries(cli)
    user = f"user {current_user()}"
    assert [(r["actor"], r["action"], r["target"], r["outcome"]) for r in rows] == [
        (user, "apply", "fleet/demo", "allowed"),
        (user, "apply", "fleet/demo", "allowed"),
        (user, "rollback", "fleet/demo", "allowed"),
        (user, "retry", "pool/pool-1", "allowed"),
        (user, "delete", "fleet/demo", "allowed")]
    assert [r["detail"] for r in rows] == [
        {"revision": 1, "from": None, "created": 4, "updated": 0, "removed": 0},
        {"revision": 2, "from": 1, "created": 1, "updated": 1, "removed": 0},
        {"revision": 3, "from": 2, "to": 1, "created": 0, "updated": 1, "removed": 1},
        {"command": 1},
        {"revision": 4, "from": 3, "created": 0, "updated": 0, "removed": 4}]
    ats = [datetime.fromisoformat(r["at"]) for r in rows]
    assert ats == sorted(ats) and all(r["at"].endswith("Z") for r in rows)
    assert list(rows[0]) == ["at", "actor", "action", "target", "outcome", "detail"]


def test_the_table(cli: CLI, tmp_path: Path) -> None:
    assert cli("apply", write_fleet(tmp_path, 2)).code == 0
    assert cli("retry", "agent/pool-1-0").code == 0
    lines = cli("audit").out.splitlines()
    assert lines[0].split() == ["TIME", "ACTOR", "ACTION", "TARGET", "OUTCOME", "DETAIL"]
    assert len(lines) == 3
    assert f"user {current_user()}" in lines[1]
    assert lines[1].endswith("apply   fleet/demo      allowed  revision=1 created=4 updated=0 removed=0")
    assert lines[2].endswith("retry   agent/pool-1-0  allowed  command=1")


def test_commands_that_change_nothing_record_nothing(cli: CLI, tmp_path: Path) -> None:
    path = write_fleet(tmp_path, 2)
    assert cli("apply", path).code == 0
    assert cli("apply", path).code == 0  # unchanged
    assert cli("apply", path, "--dry-run").code == 0
    assert cli("rollback", "1").code == 0  # already the head's content
    assert cli("delete", "demo", "--dry-run").code == 0
    assert [r["action"] for r in entries(cli)] == ["apply"]


def test_refused_and_failed_actions_leave_no_row(cli: CLI, tmp_path: Path) -> None:
    assert cli("apply", write_fleet(tmp_path, 3)).code == 0
    assert cli("apply", write_fleet(tmp_path, 2)).code == 1  # removes a pool without --yes
    assert cli("delete", "demo").code == 1  # not confirmed
    assert cli("delete", "nope", "--yes").code == 1  # unknown fleet
    assert cli("rollback", "9", "--yes").code == 1  # unknown revision
    assert cli("retry", "nonsense").code == 2  # not a target
    (tmp_path / "fleet.yaml").write_text("kind: Nonsense\n")
    assert cli("apply", tmp_path).code == 1  # invalid config
    assert [r["action"] for r in entries(cli)] == ["apply"]
    assert count(revisions) == 1


def test_an_apply_whose_audit_row_fails_records_nothing(cli: CLI, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("apply", write_fleet(tmp_path, 2)).code == 0
    original = audit.record

    def failing(conn: Any, rows: list[audit.AuditEntry]) -> None:
        original(conn, rows)
        raise RuntimeError("the disk is gone")

    monkeypatch.setattr(audit, "record", failing)
    assert cli("apply", write_fleet(tmp_path, 3)).code == 3
    assert cli("retry", "pool/pool-1").code == 3
    monkeypatch.setattr(audit, "record", original)
    assert count(revisions) == 1 and count(commands) == 0
    assert [r["action"] for r in entries(cli)] == ["apply"]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_apply_from_git_records_the_commit(cli: CLI, tmp_path: Path) -> None:
    sha = git_repo_with_fleet(tmp_path)
    assert cli("apply", tmp_path / "fleet").code == 0
    (row,) = entries(cli)
    assert row["detail"]["git_commit"] == sha and row["detail"]["git_dirty"] is False
    assert f"git_commit={sha[:10]} git_dirty=false" in cli("audit").out


def test_filters_and_limit(cli: CLI) -> None:
    now = datetime.now(timezone.utc)
    append(audit.AuditEntry(now - timedelta(days=3), "user alice", "apply", "fleet/a", "allowed", {"revision": 1}),
           audit.AuditEntry(now - timedelta(hours=2), "pid 77", "hello", "operator", "denied",
                            {"reason": "peer_unknown"}),
           audit.AuditEntry(now - timedelta(minutes=5), "agent a/w-0", "sessions.open", "a/db", "denied", None),
           audit.AuditEntry(now - timedelta(minutes=1), "operator (pid 9, uid 0)", "sessions.open", "s-1",
                            "allowed", {"pool": "w"}))
    assert [r["action"] for r in entries(cli, "--since", "10m")] == ["sessions.open", "sessions.open"]
    assert [r["action"] for r in entries(cli, "--since", "1d")] == ["hello", "sessions.open", "sessions.open"]
    since = (now - timedelta(days=4)).isoformat()
    assert len(entries(cli, "--since", since)) == 4
    assert [r["actor"] for r in entries(cli, "--outcome", "denied")] == ["pid 77", "agent a/w-0"]
    assert [r["target"] for r in entries(cli, "--action", "sessions.open", "--outcome", "allowed")] == ["s-1"]
    assert [r["actor"] for r in entries(cli, "--actor", "ALICE")] == ["user alice"]
    assert [r["action"] for r in entries(cli, "--limit", "2")] == ["sessions.open", "sessions.open"]
    assert [r["target"] for r in entries(cli, "-n", "1", "--outcome", "denied")] == ["a/db"]
    assert entries(cli, "--action", "drain") == []
    assert cli("audit", "--action", "drain").out == "no audit entries\n"


def test_peer_chosen_text_cannot_drive_the_terminal(cli: CLI) -> None:
    append(audit.AuditEntry(NOW, "pid 5", "hello", "evil\x1b[2J\nname", "denied", {"detail": "a\x07b"}))
    out = cli("audit").out
    assert "\x1b" not in out and "\x07" not in out and len(out.splitlines()) == 2
    assert "evil\\x1b[2J\\nname" in out
    assert entries(cli)[0]["target"] == "evil\x1b[2J\nname"  # JSON keeps the exact text


@pytest.mark.parametrize("text, expected", [
    ("10m", NOW - timedelta(minutes=10)),
    ("1h", NOW - timedelta(hours=1)),
    ("2d", NOW - timedelta(days=2)),
    ("1h30m", NOW - timedelta(minutes=90)),
    ("2025-02-01T08:00:00Z", datetime(2025, 2, 1, 8, tzinfo=timezone.utc)),
    ("2025-02-01T08:00:00+02:00", datetime(2025, 2, 1, 6, tzinfo=timezone.utc)),
])
def test_parse_since(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


def test_parse_since_reads_a_time_without_zone_as_local_time() -> None:
    assert parse_since("2025-02-01", NOW) == datetime(2025, 2, 1).astimezone()
    assert parse_since("2025-02-01T08:30", NOW) == datetime(2025, 2, 1, 8, 30).astimezone()


@pytest.mark.parametrize("text", ["yesterday", "10", "-5m", "", "10 minutes", "2025-13-01", "99999999999d"])
def test_bad_since_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError):
        parse_since(text, NOW)


def test_exit_codes(cli: CLI) -> None:
    bad = cli("audit", "--since", "last week")
    assert bad.code == 2 and bad.out == ""
    assert bad.err == ("error: --since 'last week' is neither a duration nor an ISO 8601 time\n"
                       "hint: write e.g. --since 10m, --since 2d, --since 2024-05-01 or --since 2024-05-01T12:00:00Z\n")
    assert cli("audit", "--outcome", "maybe").code == 2
    assert cli("audit", "--limit", "0").code == 2
    assert cli("audit", "-o", "xml").code == 2
    assert cli("audit", "--since", "1h", "-o", "table").code == 0


def test_compact_detail() -> None:
    assert compact_detail(None) == compact_detail({}) == ""
    assert compact_detail({"a": 1, "b": None, "c": True, "d": "x y", "e": [1, 2], "f": "plain"}) == \
        'a=1 c=true d="x y" e=[1,2] f=plain'
    long = compact_detail({"message": "z" * 200})
    assert len(long) == 100 and long.endswith("…")
