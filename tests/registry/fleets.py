"""Helpers for registry tests: fleets from documents, revision metadata, a write counter."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from clawctl.config.loader import load_sources
from clawctl.config.model import Fleet
from clawctl.config.sources import Source
from clawctl.registry.engine import Registry
from clawctl.registry.records import RevisionKind, RevisionMeta
from tests.builders import to_yaml


def load(docs: list[dict[str, Any]]) -> Fleet:
    """The validated model of ``docs`` (fails the test on any error)."""
    result = load_sources([Source("test.yaml", to_yaml(docs).encode())])
    assert result.fleet is not None, [str(d.location) + " " + d.message for d in result.errors]
    return result.fleet


def meta(kind: RevisionKind = RevisionKind.APPLY, **kwargs: Any) -> RevisionMeta:
    return RevisionMeta(kind=kind, applied_by="tester", **kwargs)


_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|ALTER|DROP)\b", re.IGNORECASE)


@contextmanager
def count_writes(registry: Registry) -> Iterator[list[str]]:
    """Every statement that writes, executed through ``registry``'s engine inside the block."""
    from sqlalchemy import event

    seen: list[str] = []

    def listener(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if _WRITE.match(statement) or "journal_mode" in statement or "application_id =" in statement:
            seen.append(statement)

    engine = registry.engine()
    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listener)
