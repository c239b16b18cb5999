"""The message and shared-state store: batched writes, states, ordering, compare-and-set."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from clawctl.errors import Conflict
from clawctl.registry import messaging as store
from clawctl.registry.engine import Registry
from clawctl.registry.messaging import MessageRow, MessageState
from clawctl.registry.tables import fleets

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def registry(clawctl_home: Path) -> Registry:
    reg = Registry(home=clawctl_home)
    with reg.writing() as conn:
        conn.execute(sa.insert(fleets).values(id=1, name="t", spec={}, created_at=T0, updated_at=T0))
    return reg


def _row(n: int, *, client_id: str | None = None, recipient: str = "t/b-0") -> MessageRow:
    return MessageRow(f"m{n}", 1, "t/a-0", "pool/b", recipient, {"n": n}, MessageState.QUEUED, n, 0, client_id,
                      T0 + timedelta(seconds=n))


def test_batches_of_deliveries_acks_and_dead_letters(registry: Registry) -> None:
    with registry.writing() as conn:
        store.insert(conn, [_row(n, client_id=f"c{n}") for n in range(1, 6)])
        store.mark_delivered(conn, [(f"m{n}", 1, T0) for n in range(1, 6)])
        store.mark_acked(conn, [("m1", T0), ("m2", T0)])
        store.mark_dead(conn, ["m3", "m4"])
        store.move(conn, [("m5", "t/b-1")])
        store.mark_acked(conn, [("m3", T0)])  # dead stays dead
    with registry.reading() as conn:
        assert conn is not None
        states = {r.id: (r.state, r.recipient, r.attempts) for r in store.listing(conn, limit=10)}
        assert states == {"m1": (MessageState.ACKED, "t/b-0", 1), "m2": (MessageState.ACKED, "t/b-0", 1),
                          "m3": (MessageState.DEAD, "t/b-0", 1), "m4": (MessageState.DEAD, "t/b-0", 1),
                          "m5": (MessageState.DELIVERED, "t/b-1", 1)}
        assert [r.id for r in store.pending(conn)] == ["m5"]
        assert store.max_seq(conn) == 5
        assert [r.id for r in store.listing(conn, state=MessageState.DEAD)] == ["m4", "m3"]  # newest first
        assert set(store.by_client_ids(conn, 1, "t/a-0", ["c1", "c9"])) == {"c1"}


def test_a_sender_id_is_stored_once(registry: Registry) -> None:
    with registry.writing() as conn:
        store.insert(conn, [_row(1, client_id="same")])
    with pytest.raises(Conflict), registry.writing() as conn:
        store.insert(conn, [_row(2, client_id="same")])
    with registry.writing() as conn:
        store.insert(conn, [_row(3), _row(4)])  # no client id: never a conflict


def test_shared_state_is_compare_and_set(registry: Registry) -> None:
    with registry.writing() as conn:
        assert store.state_get(conn, 1, "plan/x") == (None, 0)
        assert store.state_set(conn, 1, "plan/x", {"v": 1}, expected_version=0, by="a-0", at=T0) == 1
        with pytest.raises(Conflict, match="at version 1, not 0"):
            store.state_set(conn, 1, "plan/x", {"v": 2}, expected_version=0, by="b-0", at=T0)
        with pytest.raises(Conflict, match="at version 1, not 5"):
            store.state_set(conn, 1, "plan/x", {"v": 2}, expected_version=5, by="b-0", at=T0)
        assert store.state_set(conn, 1, "plan/x", {"v": 2}, expected_version=1, by="b-0", at=T0) == 2
        assert store.state_get(conn, 1, "plan/x") == ({"v": 2}, 2)
