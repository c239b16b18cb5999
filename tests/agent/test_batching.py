"""Batched durable messaging in the SDK against the fake daemon: ``send_messages``
(``messages.send_batch``: per-item errors, chunks of MAX_BATCH, retry-safe ids, frame-size
splits) and acknowledgements batched by the flusher (one fsync and one ``messages.ack`` for
everything queued, the id on disk before its ack, re-sent after a reconnect, flushed on stop).
Every wait is on a condition; nothing asserts timing."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from clawctl.agent.sdk import ACKED_FILE, MAX_BATCH, Message, _AckedIds
from clawctl.errors import ClawctlError, NotFound, PolicyDenied, ProtocolError
from tests.agent.conftest import AgentFactory
from tests.agent.fakedaemon import PATIENCE, FakeDaemon, Record, ack_ids


def acked_ids(directory: Path) -> list[str]:
    path = directory / ACKED_FILE
    return [json.loads(line)[1] for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every os.fsync of the process from now on (only the SDK fsyncs here), by file descriptor."""
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


# ------------------------------------------------------------------ send_messages


def test_send_messages_answers_each_item_in_order(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    daemon.add_agent("b-0", "q")  # recipients, not running: messages wait for them
    daemon.add_agent("c-0", "r")
    daemon.refuse_targets = {"agent/c-0"}
    agent = new_agent("a-0", "p")
    results = agent.send_messages([("agent/b-0", 1), {"to": "pool/q", "payload": {"n": 2}, "id": "mine-2"},
                                   ("agent/c-0", 3), ("agent/nobody", 4), ("pool/q", None)])
    [request] = daemon.calls("messages.send_batch")
    sent = request.params["messages"]
    assert [m["payload"] for m in sent] == [1, {"n": 2}, 3, 4, None]
    assert sent[1]["id"] == "mine-2" and len({m["id"] for m in sent}) == 5  # every item has an id
    ok = [r for r in results if isinstance(r, str)]
    assert [type(r) for r in results] == [str, str, PolicyDenied, NotFound, str]
    assert isinstance(results[2], ClawctlError) and "agent/c-0" in results[2].message
    assert sorted(ok) == sorted(daemon.messages) and daemon.sender_ids[("a-0", "mine-2")] == results[1]
    assert agent.send_messages([]) == [] and len(daemon.calls("messages.send_batch")) == 1


def test_send_messages_splits_into_chunks_of_max_batch(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    daemon.add_agent("b-0", "q")
    agent = new_agent("a-0", "p")
    results = agent.send_messages(("pool/q", n) for n in range(2 * MAX_BATCH + 5))
    assert [len(r.params["messages"]) for r in daemon.calls("messages.send_batch")] == [MAX_BATCH, MAX_BATCH, 5]
    ids = [r for r in results if isinstance(r, str)]
    assert len(set(ids)) == len(results) == 2 * MAX_BATCH + 5
    assert [daemon.messages[mid]["payload"] for mid in ids] == list(range(2 * MAX_BATCH + 5))


def test_send_messages_is_sent_again_with_the_same_ids_when_the_connection_drops(
        daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    daemon.add_agent("b-0", "q")
    lost: list[Record] = []

    def lose_first_batch(record: Record) -> bool:
        if record.method == "messages.send_batch" and not lost:
            lost.append(record)  # stored, but the answer never reaches the agent
            return True
        return False

    daemon.lose_answer = lose_first_batch
    agent = new_agent("a-0", "p")
    results = agent.send_messages([("pool/q", n) for n in range(10)])
    first, second = daemon.calls("messages.send_batch")
    assert first.params == second.params and first.conn != second.conn  # the same ids, on the new connection
    assert sorted(str(r) for r in results) == sorted(daemon.messages) and len(daemon.messages) == 10  # once each
    assert agent.connections == 2


def test_a_refused_request_fails_its_items_and_the_rest(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    daemon.add_agent("b-0", "q")
    agent = new_agent("a-0", "p")
    daemon.denied = {"messages.send_batch"}
    results = agent.send_messages([("pool/q", n) for n in range(MAX_BATCH + 1)])
    assert len(results) == MAX_BATCH + 1 and all(isinstance(r, PolicyDenied) for r in results)
    assert len(daemon.calls("messages.send_batch")) == 1  # the second chunk was not sent
    assert not daemon.messages


def test_malformed_items_are_refused_before_anything_is_sent(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    agent = new_agent("a-0", "p")
    with pytest.raises(TypeError):
        agent.send_messages([("pool/q", 1), ("pool/q",)])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        agent.send_messages([{"to": "pool/q"}])
    with pytest.raises(ValueError):
        agent.send_messages([{"to": "pool/q", "payload": 1, "fleet": "x"}])
    with pytest.raises(TypeError):
        agent.send_messages([(7, "payload")])  # type: ignore[list-item]
    assert daemon.calls("messages.send_batch") == []


def test_a_batch_over_the_frame_limit_is_split(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    daemon.add_agent("b-0", "q")
    agent = new_agent("a-0", "p")
    half = "x" * (600 * 1024)  # two of them exceed one frame; one fits
    results = agent.send_messages([("pool/q", half), ("pool/q", "small"), ("pool/q", half),
                                   ("pool/q", "y" * (1100 * 1024))])
    assert [type(r) for r in results[:3]] == [str, str, str]
    assert isinstance(results[3], ProtocolError)  # alone it cannot be sent
    assert [daemon.messages[mid]["payload"] for mid in results[:3]] == [half, "small", half]  # type: ignore[index]


# ------------------------------------------------------------------ batched acknowledgements


def test_messages_handled_meanwhile_are_recorded_with_one_fsync_and_acknowledged_with_one_request(
        daemon: FakeDaemon, new_agent: AgentFactory, tmp_path: Path, fsyncs: list[int]) -> None:
    agent = new_agent("a-0", "p", start=False)
    handled: list[str] = []
    agent.on_direct_message(lambda message: handled.append(message.id))
    release = threading.Event()
    at_ack: list[tuple[list[str], list[str], int]] = []  # (ids acked, ids on disk, fsyncs so far)

    def on_request(record: Record) -> None:
        if record.method == "messages.ack":
            at_ack.append((ack_ids(record.params), acked_ids(tmp_path / "a-0"), len(fsyncs)))
            if len(at_ack) == 1:
                assert release.wait(PATIENCE)  # hold the first ack: the others queue up behind it

    daemon.on_request = on_request
    agent.start()
    first = daemon.send_direct("a-0", 0)
    daemon.wait(lambda: at_ack, "the first ack request")
    rest = [daemon.send_direct("a-0", n) for n in range(1, 6)]
    daemon.wait(lambda: handled == [first, *rest], "every handler")
    daemon.wait(lambda: len(agent._ack_queue) == 5, "five acks queued behind the first")
    release.set()
    daemon.wait(lambda: len(at_ack) == 2, "the second ack request")
    (ids1, disk1, syncs1), (ids2, disk2, syncs2) = at_ack
    assert ids1 == [first] and daemon.calls("messages.ack")[0].params == {"message_id": first}
    assert daemon.calls("messages.ack")[1].params == {"message_ids": rest}  # one request, in order
    assert syncs2 - syncs1 == 1  # one fsync for the five
    assert disk1 == [first] and disk2 == [first, *rest]  # on disk before each ack was sent


def test_every_acknowledged_id_is_on_disk_before_its_ack_under_load(
        daemon: FakeDaemon, new_agent: AgentFactory, tmp_path: Path) -> None:
    agent = new_agent("a-0", "p", start=False, workers=4)
    agent.on_direct_message(lambda message: None)
    late: list[str] = []

    def on_request(record: Record) -> None:
        if record.method == "messages.ack":
            on_disk = set(acked_ids(tmp_path / "a-0"))
            late.extend(mid for mid in ack_ids(record.params) if mid not in on_disk)

    daemon.on_request = on_request
    agent.start()
    ids = [daemon.send_direct("a-0", n, sender=f"s-{n % 4}") for n in range(400)]
    daemon.wait(lambda: sorted(daemon.acked()) == sorted(ids), "every ack")
    assert late == []
    assert all(len(ack_ids(r.params)) <= MAX_BATCH for r in daemon.calls("messages.ack"))
    for sender in range(4):  # each sender's acks in the order sent
        mine = [mid for mid in ids if daemon.messages[mid]["from"] == f"s-{sender}"]
        assert [mid for mid in daemon.acked() if mid in mine] == mine


def test_a_lone_message_is_acknowledged_without_waiting_for_more(daemon: FakeDaemon,
                                                                 new_agent: AgentFactory) -> None:
    agent = new_agent("a-0", "p", start=False)
    agent.on_direct_message(lambda message: None)
    agent.start()
    mid = daemon.send_direct("a-0", "alone")
    daemon.wait(lambda: daemon.acked() == [mid], "the ack of the only message")
    assert [r.params for r in daemon.calls("messages.ack")] == [{"message_id": mid}]


def test_an_ack_lost_with_the_connection_is_sent_again(daemon: FakeDaemon, new_agent: AgentFactory,
                                                       tmp_path: Path) -> None:
    agent = new_agent("a-0", "p", start=False)
    handled: list[str] = []
    agent.on_direct_message(lambda message: handled.append(message.id))
    lost: list[Record] = []

    def lose_first_ack(record: Record) -> bool:
        if record.method == "messages.ack" and not lost:
            lost.append(record)
            daemon.messages[ack_ids(record.params)[0]]["acked"] = False  # the daemon never got it
            return True
        return False

    daemon.lose_answer = lose_first_ack
    agent.start()
    mid = daemon.send_direct("a-0", "once")
    daemon.wait(lambda: len(daemon.calls("messages.ack")) >= 2 and daemon.messages[mid]["acked"],
                "the ack again, on the new connection")
    first, second = daemon.calls("messages.ack")[:2]
    assert ack_ids(first.params) == ack_ids(second.params) == [mid] and first.conn != second.conn
    probe = daemon.send_direct("a-0", "probe")  # same sender: once it is acked, any redelivery was handled
    daemon.wait(lambda: probe in daemon.acked(), "the probe's ack")
    assert handled == [mid, probe]  # the redelivery on hello (if any) did not reach the handler again
    assert acked_ids(tmp_path / "a-0") == [mid, probe]


def test_stop_sends_the_acks_of_handlers_that_returned(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    agent = new_agent("a-0", "p", start=False)
    entered, release = threading.Event(), threading.Event()

    def handle(message: Message) -> None:
        entered.set()
        release.wait(PATIENCE)

    agent.on_direct_message(handle)
    agent.start()
    mid = daemon.send_direct("a-0", "slow")
    assert entered.wait(PATIENCE)
    stopper = threading.Thread(target=agent.stop)
    stopper.start()
    release.set()  # the handler returns during stop's grace: its ack still goes out
    stopper.join(PATIENCE)
    assert not stopper.is_alive()
    assert daemon.acked() == [mid]


def test_add_many_writes_once_and_skips_known_ids(tmp_path: Path, fsyncs: list[int]) -> None:
    path = tmp_path / ACKED_FILE
    ids = _AckedIds(path, limit=10)
    ids.load()
    assert ids.add_many([("s", "m-1"), ("s", "m-2"), ("t", "m-3")]) == 3
    synced = len(fsyncs)
    assert ids.add_many([("s", "m-2"), ("s", "m-4")]) == 1  # only the new one is written
    assert len(fsyncs) - synced == 1
    assert ids.add_many([("s", "m-4")]) == 0 and len(fsyncs) - synced == 1  # nothing new: no write
    ids.add_many([("s", f"x-{n}") for n in range(20)])  # past twice the limit: rewritten with the newest 10
    ids.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 10 and json.loads(lines[-1]) == ["s", "x-19"]
    again = _AckedIds(path, limit=10)
    again.load()
    assert ("s", "x-10") in again and ("s", "m-1") not in again


def test_an_ack_of_a_message_not_ours_is_logged(daemon: FakeDaemon, new_agent: AgentFactory,
                                                caplog: pytest.LogCaptureFixture) -> None:
    agent = new_agent("a-0", "p", start=False)
    agent.on_direct_message(lambda message: None)
    agent.start()
    assert agent.wait_connected(PATIENCE)
    with caplog.at_level("WARNING", logger="clawctl.agent"):
        daemon.push("a-0", "message.received", {"message_id": "ghost", "from": "x-0", "payload": 1, "attempt": 1})
        daemon.wait(lambda: "could not acknowledge message ghost" in caplog.text, "the warning")
    later = daemon.send_direct("a-0", "real", sender="x-0")
    daemon.wait(lambda: later in daemon.acked(), "the next ack")  # the flusher carries on
