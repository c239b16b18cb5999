"""Plan a change: desired fleet × registry snapshot → the actions that make one into the other.

Pure: no database, no files, no clock. The registry hands in a
``FleetSnapshot`` (plain data it read); the result is a ``Plan`` that the CLI
renders (``diff``) and the registry records (``apply``). Objects are compared
as normalized documents (``clawctl.config.normalize``), so every change is
named by its field path inside the document, e.g.
``spec.isolation.memory: 4Gi → 8Gi``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from clawctl.config.model import Fleet
from clawctl.config.normalize import Document, content_hash, fleet_to_documents

KIND_ORDER = {"Fleet": 0, "AgentPool": 1, "CommunicationPolicy": 2}


class Op(str, Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class _Absent:
    """A value that is not there (a field added or removed)."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class FieldChange:
    """One field that differs; ``old`` or ``new`` is ABSENT when the field is added or removed."""

    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Action:
    """Create, update or delete one object (``kind``/``name``) of the fleet."""

    op: Op
    kind: str
    name: str
    changes: tuple[FieldChange, ...] = ()
    document: Document | None = field(default=None, compare=False, repr=False)
    """The desired document (create and update); None for delete."""


@dataclass(frozen=True)
class FleetSnapshot:
    """What the registry holds for one fleet: its head revision and normalized documents."""

    name: str
    revision: int
    content_hash: str
    documents: tuple[Document, ...]


@dataclass(frozen=True)
class Plan:
    """The actions that turn the registry's fleet into the desired one.

    ``documents`` and ``content_hash`` describe the desired state (empty when
    the plan deletes the fleet); ``base_revision`` is the head it was planned
    against (None for a fleet the registry does not hold).
    """

    fleet: str
    base_revision: int | None
    base_hash: str | None
    documents: tuple[Document, ...]
    content_hash: str
    actions: tuple[Action, ...]
    deletes_fleet: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.actions)

    @property
    def removed_pools(self) -> tuple[str, ...]:
        """Names of the pools this plan deletes (the changes that need confirmation)."""
        return tuple(a.name for a in self.actions if a.op is Op.DELETE and a.kind == "AgentPool")

    def counts(self) -> dict[str, int]:
        """Number of actions per operation: {"create": n, "update": n, "delete": n}."""
        out = {op.value: 0 for op in Op}
        for action in self.actions:
            out[action.op.value] += 1
        return out


def plan(desired: Fleet, current: FleetSnapshot | None) -> Plan:
    """The plan that makes the registry's ``current`` fleet equal to ``desired``.

    Guarantees: a desired fleet equal to the snapshot's content plans no action;
    every action names one object; an update lists every differing field.
    """
    return plan_documents(fleet_to_documents(desired), current)


def plan_documents(documents: Iterable[Document], current: FleetSnapshot | None, *,
                   digest: str | None = None) -> Plan:
    """Like ``plan`` for already-normalized ``documents`` (the Fleet document first, e.g. a past
    revision's content); ``digest`` is their content hash when the caller has it already."""
    docs = tuple(documents)
    if not docs or docs[0].get("kind") != "Fleet":
        raise ValueError("normalized documents start with the Fleet document")
    fleet = docs[0]["metadata"]["name"]
    digest = digest or content_hash(list(docs))
    base_rev = current.revision if current else None
    base_hash = current.content_hash if current else None
    if current is not None and current.content_hash == digest:
        return Plan(fleet, base_rev, base_hash, docs, digest, ())
    old = _by_key(current.documents if current else ())
    new = _by_key(docs)
    actions: list[Action] = []
    for key in sorted(old.keys() | new.keys(), key=_order):
        kind, name = key
        if key not in old:
            actions.append(Action(Op.CREATE, kind, name, document=new[key]))
        elif key not in new:
            actions.append(Action(Op.DELETE, kind, name))
        else:
            changes = tuple(diff_values(old[key], new[key]))
            if changes:
                actions.append(Action(Op.UPDATE, kind, name, changes, document=new[key]))
    return Plan(fleet, base_rev, base_hash, docs, digest, tuple(actions))


def plan_delete(current: FleetSnapshot) -> Plan:
    """The plan that removes ``current`` from the registry: every pool and policy, then the fleet."""
    keys = sorted(_by_key(current.documents), key=_order)
    actions = [Action(Op.DELETE, kind, name) for kind, name in keys if kind != "Fleet"]
    actions.append(Action(Op.DELETE, "Fleet", current.name))
    return Plan(current.name, current.revision, current.content_hash, (), content_hash([]), tuple(actions),
                deletes_fleet=True)


def _by_key(documents: Iterable[Document]) -> dict[tuple[str, str], Document]:
    return {(d["kind"], d["metadata"]["name"]): d for d in documents}


def _order(key: tuple[str, str]) -> tuple[int, str]:
    return KIND_ORDER.get(key[0], 9), key[1]


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _join(path: str, key: str) -> str:
    if _PLAIN_KEY.match(key):
        return f"{path}.{key}" if path else key
    return f'{path}["{key}"]'


def diff_values(old: Any, new: Any, *, path: str = "") -> list[FieldChange]:
    """Every leaf that differs between two JSON-like values. Mappings are compared key by key,
    lists of mappings item by item (``spec.rules[0].from``, ``spec.rules[2]`` added or removed),
    other lists and scalars as whole values."""
    if old == new:  # the common case, compared in C (1 and 1.0 are the same YAML value)
        return []
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: list[FieldChange] = []
        for key in sorted(old.keys() | new.keys()):
            sub = _join(path, str(key))
            if key not in old:
                out.append(FieldChange(sub, ABSENT, new[key]))
            elif key not in new:
                out.append(FieldChange(sub, old[key], ABSENT))
            else:
                out += diff_values(old[key], new[key], path=sub)
        return out
    if (isinstance(old, list) and isinstance(new, list) and old and new
            and all(isinstance(v, Mapping) for v in (*old, *new))):
        items: list[FieldChange] = []
        for i in range(max(len(old), len(new))):
            o = old[i] if i < len(old) else ABSENT
            n = new[i] if i < len(new) else ABSENT
            items += diff_values(o, n, path=f"{path}[{i}]") if o is not ABSENT and n is not ABSENT \
                else [FieldChange(f"{path}[{i}]", o, n)]
        return items
    return [FieldChange(path, old, new)]
