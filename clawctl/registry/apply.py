"""Plan and record changes of desired state: apply, rollback and delete.

Each change is planned against a read of the registry (no lock, no write), shown
to the operator, then recorded by ``record`` in one serialized transaction.
Planning a fleet equal to the registry's head yields an empty plan, and
recording an empty plan touches nothing at all. Every recorded revision appends
its audit row (``clawctl audit``) in the same transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from clawctl.config.loader import LoadResult
from clawctl.config.model import Fleet
from clawctl.config.normalize import Document, content_hash, documents_to_yaml_stream, fleet_to_documents
from clawctl.errors import Conflict, NotFound
from clawctl.plan import Plan, plan, plan_delete, plan_documents
from clawctl.registry import audit, store
from clawctl.registry.engine import Registry
from clawctl.registry.records import RevisionInfo, RevisionKind, RevisionMeta


@dataclass(frozen=True)
class Outcome:
    """What ``record`` did: the plan it recorded and the new revision (None when nothing changed)."""

    plan: Plan
    revision: int | None


def revision_meta(kind: RevisionKind, *, message: str | None, paths: Sequence[str] = (),
                  rollback_of: int | None = None) -> RevisionMeta:
    """Provenance of a new revision: the operator, the message, the config paths and their git commit."""
    from clawctl.registry.provenance import current_user, git_info

    return RevisionMeta(kind=kind, applied_by=current_user(), message=message, source=tuple(paths),
                        git=git_info(list(paths)) if paths else None, rollback_of=rollback_of)


def plan_fleet(registry: Registry, fleet: Fleet) -> Plan:
    """The plan that makes the registry hold ``fleet``. Reads only; never creates a registry.

    When the registry's head has the same content hash, only that one row is read.
    """
    documents = fleet_to_documents(fleet)
    digest = content_hash(documents)
    with registry.reading() as conn:
        head = store.fleet_head(conn, fleet.name) if conn is not None else None
        if conn is None or head is None:
            return plan_documents(documents, None, digest=digest)
        if head[1] == digest:
            return plan_documents(documents, _hash_only_snapshot(fleet.name, head), digest=digest)
        return plan_documents(documents, store.fleet_snapshot(conn, fleet.name), digest=digest)


def _hash_only_snapshot(name: str, head: tuple[int, str]) -> store.FleetSnapshot:
    return store.FleetSnapshot(name=name, revision=head[0], content_hash=head[1], documents=())


def record(registry: Registry, change: Plan, *, meta: RevisionMeta, approved_removals: Collection[str] = (),
           now: datetime | None = None) -> Outcome:
    """Record ``change`` as a new revision, with its audit row, in one transaction; all of it or none of it.

    Pools may be removed only when named in ``approved_removals`` (Conflict otherwise).
    If another writer moved the fleet since ``change`` was planned, the change is
    planned again against the new head inside the transaction. An empty plan
    returns at once without touching the registry.
    """
    if not change.changed:
        return Outcome(change, None)
    when = now or datetime.now(timezone.utc)
    with registry.writing() as conn:
        head = store.fleet_head(conn, change.fleet)
        if (head[0] if head else None) != change.base_revision:
            current = store.fleet_snapshot(conn, change.fleet)
            fresh = _replan(change, current)
            if not fresh.changed:
                return Outcome(fresh, None)
            unseen = set(fresh.removed_pools) - set(change.removed_pools)
            if unseen:
                raise Conflict(
                    f"fleet {change.fleet} changed while this was planned (now at revision "
                    f"{current.revision if current else 'none'}); it would now also remove pool(s) "
                    f"{', '.join(sorted(unseen))}",
                    hint="run the command again to see the new plan")
            change = fresh
        refuse_unapproved_removals(change, approved_removals)
        number = store.write_plan(conn, change, meta=meta, now=when)
        audit.record(conn, [_audit_entry(change, meta, number, when)])
    return Outcome(change, number)


def _audit_entry(change: Plan, meta: RevisionMeta, number: int, when: datetime) -> audit.AuditEntry:
    """The audit row of a recorded revision: action = its kind, target ``fleet/NAME``, actor ``user NAME``.

    detail: the new ``revision``; the head it replaced (``from``, None for a new fleet);
    for a rollback ``to``, the revision whose content it restores; the ``created`` /
    ``updated`` / ``removed`` object counts; ``git_commit`` and ``git_dirty`` when the
    config files are in a git work tree with a commit.
    """
    detail: dict[str, object] = {"revision": number, "from": change.base_revision}
    if meta.rollback_of is not None:
        detail["to"] = meta.rollback_of
    counts = change.counts()
    detail.update(created=counts["create"], updated=counts["update"], removed=counts["delete"])
    if meta.git is not None and meta.git.commit is not None:
        detail["git_commit"] = meta.git.commit
        detail["git_dirty"] = meta.git.dirty
    return audit.operator_entry(meta.applied_by, meta.kind.value, f"fleet/{change.fleet}", detail, at=when)


def _replan(change: Plan, current: store.FleetSnapshot | None) -> Plan:
    if change.deletes_fleet:
        if current is None:
            return Plan(change.fleet, None, None, (), change.content_hash, ())
        return plan_delete(current)
    return plan_documents(change.documents, current)


def refuse_unapproved_removals(change: Plan, approved: Collection[str]) -> None:
    """Raise Conflict when ``change`` removes a pool that is not in ``approved``."""
    missing = sorted(set(change.removed_pools) - set(approved))
    if missing:
        names = ", ".join(missing)
        raise Conflict(
            f"this would remove {len(missing)} pool{'s' if len(missing) > 1 else ''} from fleet "
            f"{change.fleet}: {names}",
            hint="re-run with --yes to remove them (their agents will be stopped), "
                 "or put them back in the config")


def rollback_plan(registry: Registry, number: int) -> tuple[Plan, RevisionInfo, LoadResult]:
    """The plan that makes revision ``number``'s fleet hold that revision's content again.

    The old documents are loaded and validated again by this clawctl; the LoadResult
    says whether that worked (its fleet is None when they no longer validate).
    """
    with registry.reading() as conn:
        found = store.get_revision(conn, number) if conn is not None else None
        if conn is None or found is None:
            raise NotFound(f"revision {number} does not exist",
                           hint="`clawctl history` lists the recorded revisions")
        info, documents = found
        if info.kind is RevisionKind.DELETE:
            raise Conflict(f"revision {number} is the deletion of fleet {info.fleet}; there is no content to restore",
                           hint=f"roll back to a revision before {number} (see `clawctl history {info.fleet}`)")
        current = store.fleet_snapshot(conn, info.fleet)
    result = load_documents(documents, name=f"<revision {number}>")
    if result.fleet is None:
        return Plan(info.fleet, None, None, (), "", ()), info, result
    return plan(result.fleet, current), info, result


def load_documents(documents: list[Document], *, name: str) -> LoadResult:
    """Load stored normalized documents through the config loader (schema, semantics, model)."""
    from clawctl.config.loader import load_sources
    from clawctl.config.sources import Source

    return load_sources([Source(name, documents_to_yaml_stream(documents))])


def delete_plan(registry: Registry, fleet: str) -> Plan:
    """The plan that removes ``fleet`` (NotFound when the registry does not hold it)."""
    with registry.reading() as conn:
        current = store.fleet_snapshot(conn, fleet) if conn is not None else None
        known = store.fleet_names(conn) if conn is not None else []
    if current is None:
        from clawctl.config.suggest import did_you_mean

        raise NotFound(f"fleet {fleet} is not in the registry",
                       hint=did_you_mean(fleet, known) or (f"fleets: {', '.join(known)}" if known
                                                           else "no fleet has been applied yet"))
    return plan_delete(current)
