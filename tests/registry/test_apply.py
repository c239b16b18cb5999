"""Recording plans: one transaction per revision, nothing for no change, all or nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from clawctl.config.normalize import content_hash, fleet_to_documents
from clawctl.errors import Conflict, NotFound
from clawctl.plan import Op
from clawctl.registry import apply as service
from clawctl.registry import store
from clawctl.registry.engine import Registry
from clawctl.registry.history import history
from clawctl.registry.records import RevisionKind
from clawctl.registry.status import desired_status
from clawctl.registry.tables import fleets, pools, revisions
from tests.builders import fleet_docs
from tests.registry.fleets import count_writes, load, meta


def apply_docs(reg: Registry, docs: list[dict[str, Any]], **kwargs: Any) -> service.Outcome:
    return service.record(reg, service.plan_fleet(reg, load(docs)), meta=meta(), **kwargs)


def head(reg: Registry) -> tuple[Any, ...]:
    """Everything the registry holds for fleet demo, for before/after comparisons."""
    with reg.reading() as conn:
        assert conn is not None
        return (
            store.fleet_snapshot(conn, "demo"),
            conn.execute(sa.select(pools).order_by(pools.c.name)).all(),
            conn.execute(sa.select(revisions.c.number, revisions.c.content_hash)).all(),
            conn.execute(sa.select(fleets)).all(),
        )


def test_first_apply_records_revision_one_with_the_normalized_documents(registry: Registry) -> None:
    docs = fleet_docs(3)
    outcome = apply_docs(registry, docs)
    assert outcome.revision == 1
    expected = fleet_to_documents(load(docs))
    with registry.reading() as conn:
        assert conn is not None
        info, stored = store.get_revision(conn, 1)  # type: ignore[misc]
        snap = store.fleet_snapshot(conn, "demo")
    assert stored == expected
    assert info.content_hash == content_hash(expected) and info.kind is RevisionKind.APPLY
    assert info.summary == {"create": 5, "update": 0, "delete": 0}
    assert snap is not None and list(snap.documents) == expected and snap.revision == 1


def test_applying_the_same_fleet_again_records_nothing_and_writes_nothing(registry: Registry) -> None:
    apply_docs(registry, fleet_docs(3))
    before = head(registry)
    with count_writes(registry) as writes:
        change = service.plan_fleet(registry, load(fleet_docs(3)))
        outcome = service.record(registry, change, meta=meta())
    assert not change.changed and outcome.revision is None
    assert writes == []
    assert head(registry) == before


def test_no_change_apply_leaves_the_sqlite_file_untouched(sqlite_registry: Registry, clawctl_home: Path) -> None:
    apply_docs(sqlite_registry, fleet_docs(3))
    sqlite_registry.close()
    path = clawctl_home / "registry.db"
    import sqlite3

    watcher = sqlite3.connect(path)
    version = watcher.execute("PRAGMA data_version").fetchone()
    stat = path.stat()
    with Registry(home=clawctl_home) as reg:
        assert apply_docs(reg, fleet_docs(3)).revision is None
    assert watcher.execute("PRAGMA data_version").fetchone() == version
    watcher.close()
    assert (path.stat().st_mtime_ns, path.stat().st_size) == (stat.st_mtime_ns, stat.st_size)


def test_one_field_change_updates_one_pool_row(registry: Registry) -> None:
    apply_docs(registry, fleet_docs(3))
    changed = fleet_docs(3)
    changed[2]["spec"]["replicas"] = 7
    with count_writes(registry) as writes:
        outcome = apply_docs(registry, changed)
    assert outcome.revision == 2
    assert [(a.op, a.name) for a in outcome.plan.actions] == [(Op.UPDATE, "pool-2")]
    pool_writes = [w for w in writes if "pools" in w.split("SET")[0] or "INTO pools" in w]
    assert len(pool_writes) == 1
    [fleet] = desired_status(registry)
    assert [(p.name, p.replicas, p.revision) for p in fleet.pools] == [
        ("pool-1", 2, 1), ("pool-2", 7, 2), ("pool-3", 2, 1)]


def test_removing_pools_needs_approval(registry: Registry) -> None:
    apply_docs(registry, fleet_docs(3, policy=False))
    smaller = fleet_docs(1, policy=False)
    with pytest.raises(Conflict, match="remove 2 pools from fleet demo: pool-2, pool-3") as info:
        apply_docs(registry, smaller)
    assert info.value.hint and "--yes" in info.value.hint
    with pytest.raises(Conflict):
        apply_docs(registry, smaller, approved_removals=["pool-2"])
    assert len(history(registry)) == 1
    outcome = apply_docs(registry, smaller, approved_removals=["pool-2", "pool-3"])
    assert outcome.revision == 2
    assert [p.name for p in desired_status(registry)[0].pools] == ["pool-1"]


def test_failure_in_the_middle_of_an_apply_leaves_the_previous_revision_intact(
        registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    apply_docs(registry, fleet_docs(2))
    before = head(registry)
    real = store._write_objects
    calls: list[int] = []

    def write_then_fail(*args: Any, **kwargs: Any) -> None:
        real(*args, **kwargs)  # the new revision row and the pool rows are written...
        calls.append(1)
        raise RuntimeError("injected failure")  # ...and then the process fails

    monkeypatch.setattr(store, "_write_objects", write_then_fail)
    changed = fleet_docs(4, isolation={"memory": "2Gi"})
    with pytest.raises(RuntimeError, match="injected failure"):
        apply_docs(registry, changed)
    assert calls == [1]
    assert head(registry) == before
    monkeypatch.undo()
    assert apply_docs(registry, changed).revision == 2


def test_a_plan_made_before_another_apply_is_replanned(registry: Registry) -> None:
    apply_docs(registry, fleet_docs(2))
    first = service.plan_fleet(registry, load(fleet_docs(2, isolation={"memory": "1Gi"})))
    second = service.plan_fleet(registry, load(fleet_docs(3)))
    assert service.record(registry, first, meta=meta()).revision == 2
    outcome = service.record(registry, second, meta=meta())
    assert outcome.revision == 3 and outcome.plan.base_revision == 2
    assert [(a.op, a.name) for a in outcome.plan.actions] == [
        (Op.UPDATE, "pool-1"), (Op.UPDATE, "pool-2"), (Op.CREATE, "pool-3"), (Op.UPDATE, "traffic")]
    assert history(registry)[-1].content_hash == second.content_hash


def test_a_stale_plan_does_not_remove_pools_nobody_saw(registry: Registry) -> None:
    apply_docs(registry, fleet_docs(2, policy=False))
    stale = service.plan_fleet(registry, load(fleet_docs(2, policy=False, isolation={"memory": "1Gi"})))
    apply_docs(registry, fleet_docs(3, policy=False))
    with pytest.raises(Conflict, match="changed while this was planned"):
        service.record(registry, stale, meta=meta())


def test_a_stale_plan_that_is_already_applied_records_nothing(registry: Registry) -> None:
    apply_docs(registry, fleet_docs(2))
    stale = service.plan_fleet(registry, load(fleet_docs(3)))
    apply_docs(registry, fleet_docs(3))
    outcome = service.record(registry, stale, meta=meta())
    assert outcome.revision is None and not outcome.plan.changed


def test_rollback_records_a_new_revision_with_the_old_content(registry: Registry) -> None:
    apply_docs(registry, fleet_docs(2))
    apply_docs(registry, fleet_docs(3, isolation={"memory": "1Gi"}), approved_removals=())
    change, info, loaded = service.rollback_plan(registry, 1)
    assert info.number == 1 and loaded.fleet is not None
    assert change.removed_pools == ("pool-3",)
    outcome = service.record(registry, change, meta=meta(RevisionKind.ROLLBACK, rollback_of=1),
                             approved_removals=change.removed_pools)
    assert outcome.revision == 3
    revs = history(registry)
    assert revs[2].kind is RevisionKind.ROLLBACK and revs[2].rollback_of == 1
    assert revs[2].content_hash == revs[0].content_hash
    again, _, _ = service.rollback_plan(registry, 1)
    assert not again.changed


def test_rollback_of_unknown_revision(registry: Registry) -> None:
    with pytest.raises(NotFound, match="revision 5 does not exist"):
        service.rollback_plan(registry, 5)
    apply_docs(registry, fleet_docs(1))
    with pytest.raises(NotFound):
        service.rollback_plan(registry, 5)


def test_delete_keeps_history_and_the_fleet_can_come_back(registry: Registry) -> None:
    apply_docs(registry, fleet_docs(2))
    change = service.delete_plan(registry, "demo")
    assert change.deletes_fleet and change.removed_pools == ("pool-1", "pool-2")
    with pytest.raises(Conflict):
        service.record(registry, change, meta=meta(RevisionKind.DELETE))
    assert service.record(registry, change, meta=meta(RevisionKind.DELETE),
                          approved_removals=change.removed_pools).revision == 2
    assert desired_status(registry) == []
    with registry.reading() as conn:
        assert conn is not None
        assert conn.execute(sa.select(sa.func.count()).select_from(pools)).scalar() == 0
    with pytest.raises(NotFound, match="fleet demo is not in the registry"):
        service.delete_plan(registry, "demo")
    with pytest.raises(Conflict, match="is the deletion of fleet demo"):
        service.rollback_plan(registry, 2)
    assert [r.kind for r in history(registry, "demo")] == [RevisionKind.APPLY, RevisionKind.DELETE]
    assert apply_docs(registry, fleet_docs(2)).revision == 3
    assert [p.name for p in desired_status(registry)[0].pools] == ["pool-1", "pool-2"]


def test_fleets_are_independent(registry: Registry) -> None:
    apply_docs(registry, fleet_docs(2, name="alpha"))
    apply_docs(registry, fleet_docs(1, name="beta"))
    assert [f.name for f in desired_status(registry)] == ["alpha", "beta"]
    assert [r.number for r in history(registry, "beta")] == [2]
    with pytest.raises(NotFound, match="fleet gamma has no recorded revisions"):
        history(registry, "gamma")


def test_status_for_one_pool(registry: Registry) -> None:
    apply_docs(registry, fleet_docs(2, name="alpha"))
    apply_docs(registry, fleet_docs(3, name="beta"))
    assert [(f.name, [p.name for p in f.pools]) for f in desired_status(registry, "pool-3")] == [("beta", ["pool-3"])]
    with pytest.raises(NotFound, match="no fleet has a pool named pool-9"):
        desired_status(registry, "pool-9")


def test_revision_documents_load_back_into_the_applied_model(registry: Registry) -> None:
    docs = fleet_docs(3, isolation={"memory": "3Gi", "cpu": "250m"}, sessions={"idleTimeout": "90s"})
    apply_docs(registry, docs)
    with registry.reading() as conn:
        assert conn is not None
        _, stored = store.get_revision(conn, 1)  # type: ignore[misc]
    assert service.load_documents(stored, name="<revision 1>").fleet == load(docs)
