"""The audit log: append, read newest-first with filters, and written with each revision in one transaction."""

from __future__ import annotations

import inspect
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from clawctl.errors import Conflict
from clawctl.registry import apply as service
from clawctl.registry import audit
from clawctl.registry.engine import Registry
from clawctl.registry.records import GitInfo, RevisionKind
from clawctl.registry.tables import revisions
from tests.builders import fleet_docs
from tests.registry.fleets import load, meta

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def entry(minutes: int, action: str = "apply", *, actor: str = "user alice", outcome: str = "allowed",
          target: str = "fleet/demo", detail: dict[str, Any] | None = None) -> audit.AuditEntry:
    return audit.AuditEntry(T0 + timedelta(minutes=minutes), actor, action, target, outcome, detail)


def append(reg: Registry, *entries: audit.AuditEntry) -> None:
    with reg.writing() as conn:
        audit.record(conn, list(entries))


def read(reg: Registry, **kwargs: Any) -> list[audit.AuditEntry]:
    with reg.reading() as conn:
        assert conn is not None
        return audit.recent(conn, **kwargs)


def test_record_and_read_back(registry: Registry) -> None:
    first = entry(0, detail={"revision": 1, "git_commit": None, "nested": {"a": [1, 2]}})
    second = entry(1, "hello", actor="pid 42", outcome="denied", target="operator")
    append(registry, first, second)
    assert read(registry) == [first, second]
    assert read(registry)[0].at.tzinfo is not None


def test_empty_record_writes_nothing(registry: Registry) -> None:
    append(registry)
    assert read(registry) == []


def test_long_fields_are_cut_to_the_column_sizes(registry: Registry) -> None:
    append(registry, audit.AuditEntry(T0, "a" * 300, "b" * 100, "c" * 300, "allowed", None))
    (got,) = read(registry)
    assert (len(got.actor), len(got.action), len(got.target)) == (255, 64, 255)


def test_recent_is_the_newest_n_oldest_first(registry: Registry) -> None:
    append(registry, *(entry(m, f"a{m}") for m in (3, 0, 2, 1, 4)))
    assert [e.action for e in read(registry, limit=3)] == ["a2", "a3", "a4"]
    assert [e.action for e in read(registry)] == ["a0", "a1", "a2", "a3", "a4"]


def test_entries_at_the_same_time_keep_their_append_order(registry: Registry) -> None:
    append(registry, entry(0, "one"), entry(0, "two"))
    append(registry, entry(0, "three"))
    assert [e.action for e in read(registry)] == ["one", "two", "three"]
    assert [e.action for e in read(registry, limit=2)] == ["two", "three"]


def test_filters(registry: Registry) -> None:
    append(registry,
           entry(0, "apply", actor="user alice"),
           entry(10, "hello", actor="pid 7", outcome="denied", target="operator"),
           entry(20, "sessions.open", actor="agent demo/pool-1-0", outcome="denied"),
           entry(30, "rollback", actor="user Bob"),
           entry(40, "sessions.open", actor="operator (pid 9, uid 1000)"))
    assert [e.action for e in read(registry, since=T0 + timedelta(minutes=20))] == [
        "sessions.open", "rollback", "sessions.open"]
    assert [e.actor for e in read(registry, action="sessions.open")] == [
        "agent demo/pool-1-0", "operator (pid 9, uid 1000)"]
    assert [e.action for e in read(registry, outcome="denied")] == ["hello", "sessions.open"]
    assert [e.action for e in read(registry, actor="bob")] == ["rollback"]  # substring, any case
    assert [e.action for e in read(registry, actor="user ")] == ["apply", "rollback"]
    assert [e.action for e in read(registry, outcome="denied", action="sessions.open",
                                   since=T0 + timedelta(minutes=15))] == ["sessions.open"]
    assert read(registry, since=T0 + timedelta(hours=1)) == []


def test_actor_filter_is_literal_text(registry: Registry) -> None:
    append(registry, entry(0, actor="user a_b%c"), entry(1, actor="user axbyc"))
    assert [e.actor for e in read(registry, actor="a_b%")] == ["user a_b%c"]
    assert [e.actor for e in read(registry, actor="_")] == ["user a_b%c"]


def test_since_compares_instants_not_wall_clock_text(registry: Registry) -> None:
    append(registry, entry(0, "before"), entry(60, "after"))
    plus_two = timezone(timedelta(hours=2))
    since = (T0 + timedelta(minutes=30)).astimezone(plus_two)  # 14:30+02:00 is 12:30Z
    assert [e.action for e in read(registry, since=since)] == ["after"]


def test_the_module_offers_no_way_to_change_or_remove_entries() -> None:
    functions = {name for name, obj in inspect.getmembers(audit, inspect.isfunction)
                 if obj.__module__ == audit.__name__ and not name.startswith("_")}
    assert functions == {"record", "recent", "user_actor", "operator_entry"}
    source = inspect.getsource(audit)
    assert "sa.update" not in source and "sa.delete" not in source and ".delete(" not in source


def test_operator_entry() -> None:
    made = audit.operator_entry("alice", "retry", "pool/web", {"command": 3}, at=T0)
    assert made == audit.AuditEntry(T0, "user alice", "retry", "pool/web", "allowed", {"command": 3})
    assert audit.operator_entry("bob", "retry", "agent/x").at.tzinfo is not None


# ------------------------------------------------------------------ revisions write their audit row


def apply_docs(reg: Registry, docs: list[dict[str, Any]], **kwargs: Any) -> service.Outcome:
    return service.record(reg, service.plan_fleet(reg, load(docs)), meta=meta(), **kwargs)


def revision_count(reg: Registry) -> int:
    with reg.reading() as conn:
        assert conn is not None
        return int(conn.execute(sa.select(sa.func.count()).select_from(revisions)).scalar_one())


def test_apply_rollback_delete_each_append_one_row(registry: Registry) -> None:
    apply_docs(registry, fleet_docs(2))
    apply_docs(registry, fleet_docs(3))
    change, _, _ = service.rollback_plan(registry, 1)
    service.record(registry, change, meta=meta(RevisionKind.ROLLBACK, rollback_of=1),
                   approved_removals=change.removed_pools)
    delete = service.delete_plan(registry, "demo")
    service.record(registry, delete, meta=meta(RevisionKind.DELETE), approved_removals=delete.removed_pools)
    rows = read(registry)
    assert [(e.actor, e.action, e.target, e.outcome) for e in rows] == [
        ("user tester", "apply", "fleet/demo", "allowed"),
        ("user tester", "apply", "fleet/demo", "allowed"),
        ("user tester", "rollback", "fleet/demo", "allowed"),
        ("user tester", "delete", "fleet/demo", "allowed")]
    assert [e.detail for e in rows] == [
        {"revision": 1, "from": None, "created": 4, "updated": 0, "removed": 0},
        {"revision": 2, "from": 1, "created": 1, "updated": 1, "removed": 0},
        {"revision": 3, "from": 2, "to": 1, "created": 0, "updated": 1, "removed": 1},
        {"revision": 4, "from": 3, "created": 0, "updated": 0, "removed": 4}]


def test_the_audit_row_has_the_revision_time_and_git_commit(registry: Registry) -> None:
    when = T0 + timedelta(days=1)
    git = GitInfo(root="/repo", commit="0123456789abcdef0123456789abcdef01234567", dirty=True)
    change = service.plan_fleet(registry, load(fleet_docs(1)))
    service.record(registry, change, meta=meta(git=git), now=when)
    (row,) = read(registry)
    assert row.at == when
    assert row.detail is not None and row.detail["git_commit"] == git.commit and row.detail["git_dirty"] is True


def test_git_without_a_commit_is_left_out(registry: Registry) -> None:
    change = service.plan_fleet(registry, load(fleet_docs(1)))
    service.record(registry, change, meta=meta(git=GitInfo(root="/repo", commit=None, dirty=True)))
    (row,) = read(registry)
    assert row.detail is not None and "git_commit" not in row.detail


def test_unchanged_apply_records_no_audit_row(registry: Registry) -> None:
    apply_docs(registry, fleet_docs(2))
    assert apply_docs(registry, fleet_docs(2)).revision is None
    assert len(read(registry)) == 1


def test_refused_removal_leaves_neither_revision_nor_audit_row(registry: Registry) -> None:
    apply_docs(registry, fleet_docs(3))
    with pytest.raises(Conflict):
        apply_docs(registry, fleet_docs(2))
    assert revision_count(registry) == 1 and len(read(registry)) == 1


def test_a_failing_audit_write_rolls_the_revision_back(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    apply_docs(registry, fleet_docs(2))
    original = audit.record

    def failing(conn: Any, entries: list[audit.AuditEntry]) -> None:
        original(conn, entries)
        raise RuntimeError("disk gone")

    monkeypatch.setattr(audit, "record", failing)
    with pytest.raises(RuntimeError):
        apply_docs(registry, fleet_docs(3))
    monkeypatch.setattr(audit, "record", original)
    assert revision_count(registry) == 1
    assert [e.detail["revision"] for e in read(registry) if e.detail] == [1]
