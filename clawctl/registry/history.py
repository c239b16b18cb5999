"""The revision history of the registry's fleets."""

from __future__ import annotations

from clawctl.errors import NotFound
from clawctl.registry import store
from clawctl.registry.engine import Registry
from clawctl.registry.records import RevisionInfo


def history(registry: Registry, fleet: str | None = None) -> list[RevisionInfo]:
    """Every revision of ``fleet`` (or of every fleet), oldest first.

    Raises NotFound for a fleet that has never been applied.
    """
    with registry.reading() as conn:
        if conn is None:
            revisions: list[RevisionInfo] = []
            known: list[str] = []
        else:
            revisions = store.list_revisions(conn, fleet)
            known = store.fleet_names(conn, deleted=True)
    if fleet is not None and not revisions:
        from clawctl.config.suggest import did_you_mean

        raise NotFound(f"fleet {fleet} has no recorded revisions",
                       hint=did_you_mean(fleet, known) or (f"fleets: {', '.join(known)}" if known
                                                           else "no fleet has been applied yet"))
    return revisions
