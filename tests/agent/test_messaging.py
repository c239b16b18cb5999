"""The SDK's cross-agent communication (issue 6) against the fake daemon: durable messages
(retry-safe sends, per-sender order, ack after the handler, de-duplication within a process
and across a restart, the bounded acknowledgement file), events, shared state, watches and
child sessions. Every wait is on a condition; nothing asserts timing."""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from clawctl.agent import Message as LazyMessage
from clawctl.agent.sdk import (
    ACKED_FILE,
    Agent,
    Message,
    PublishedEvent,
    Session,
    StateChange,
    _AckedIds,
    glob_match,
)
from clawctl.errors import Conflict, PolicyDenied
from tests.agent.conftest import AgentFactory
from tests.agent.fakedaemon import PATIENCE, FakeDaemon, Record


def acked_lines(directory: Path) -> list[list[str]]:
    path = directory / ACKED_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# ------------------------------------------------------------------ sending


def test_send_message_reuses_its_id_when_the_connection_drops(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    daemon.add_agent("b-0", "q")  # the recipient, not running: the message waits for it
    lost: list[Record] = []

    def lose_first_send(record: Record) -> bool:
        if record.method == "messages.send" and not lost:
            lost.append(record)  # stored, but the answer never reaches the agent
            return True
        return False

    daemon.lose_answer = lose_first_send
    agent = new_agent("a-0", "p")
    message_id = agent.send_message("agent/b-0", {"job": 1})
    first, second = daemon.calls("messages.send")
    assert first.params == second.params and first.conn != second.conn  # repeated on the new connection
    assert first.params["to"] == "agent/b-0" and first.params["payload"] == {"job": 1}
    assert isinstance(first.params["id"], str) and first.params["id"]
    assert list(daemon.messages) == [message_id]  # stored once
    assert agent.connections == 2


def test_send_message_with_an_explicit_id(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    daemon.add_agent("b-0", "q")
    agent = new_agent("a-0", "p")
    first = agent.send_message("pool/q", "work", id="job-7")
    assert agent.send_message("pool/q", "work", id="job-7") == first  # the caller's own retry: stored once
    assert [r.params["id"] for r in daemon.calls("messages.send")] == ["job-7", "job-7"]
    assert daemon.messages[first]["recipient"] == "b-0" and len(daemon.messages) == 1
    fresh = [agent.send_message("pool/q", n) for n in range(2)]
    assert len(set(fresh)) == 2  # without an id, each call is a new message


# ------------------------------------------------------------------ receiving


def test_direct_messages_run_in_order_per_sender_and_senders_concurrently(
        daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    agent = new_agent("a-0", "p", start=False, workers=3)
    barrier = threading.Barrier(2, timeout=PATIENCE)
    lock = threading.Lock()
    seen: dict[str, list[Any]] = {}
    active: dict[str, int] = {}
    overlaps: list[str] = []

    @agent.on_direct_message
    def handle(message: Message) -> None:
        with lock:
            active[message.sender] = active.get(message.sender, 0) + 1
            if active[message.sender] > 1:
                overlaps.append(message.sender)
        try:
            if message.payload == "meet":  # only passes if two senders' handlers run at the same time
                barrier.wait()
            with lock:
                seen.setdefault(message.sender, []).append(message.payload)
        finally:
            with lock:
                active[message.sender] -= 1

    agent.start()
    meets = [daemon.send_direct("a-0", "meet", sender=s) for s in ("x-0", "y-0")]
    daemon.wait(lambda: set(meets) <= set(daemon.acked()), "both meetings acknowledged")
    senders = ["s-0", "s-1", "s-2"]
    ids = [daemon.send_direct("a-0", n, sender=s) for n in range(20) for s in senders]
    daemon.wait(lambda: set(ids) <= set(daemon.acked()), "every message acknowledged")
    assert {s: seen[s] for s in senders} == {s: list(range(20)) for s in senders}
    assert not overlaps
    acks = [mid for mid in daemon.acked() if mid in ids]
    for sender in senders:  # acknowledged in each sender's order too
        mine = [mid for mid in ids if daemon.messages[mid]["from"] == sender]
        assert [mid for mid in acks if mid in mine] == mine


def test_the_ack_is_sent_after_the_handler_returned_and_the_id_is_on_disk(
        daemon: FakeDaemon, new_agent: AgentFactory, tmp_path: Path) -> None:
    agent = new_agent("a-0", "p", start=False)
    entered, release = threading.Event(), threading.Event()
    got: list[Message] = []
    on_disk_at_ack: list[list[list[str]]] = []

    @agent.on_direct_message
    def handle(message: Message) -> None:
        got.append(message)
        entered.set()
        release.wait(PATIENCE)

    daemon.on_request = lambda r: on_disk_at_ack.append(acked_lines(tmp_path / "a-0")) \
        if r.method == "messages.ack" else None
    agent.start()
    mid = daemon.send_direct("a-0", {"do": "it"}, sender="boss-0")
    assert entered.wait(PATIENCE)
    other = daemon.send_direct("a-0", "later", sender="boss-0")  # same sender: waits behind the first
    assert daemon.acked() == [] and acked_lines(tmp_path / "a-0") == []  # the handler has not returned
    release.set()
    daemon.wait(lambda: daemon.acked() == [mid, other] and len(on_disk_at_ack) == len(daemon.calls("messages.ack")),
                "both acknowledgements")  # (and on_request, which runs just after the fake daemon records)
    assert got == [Message(mid, "boss-0", {"do": "it"}, 1), Message(other, "boss-0", "later", 1)]
    first = daemon.calls("messages.ack")[0].params  # mid alone, or with other when handled meanwhile
    in_first = [first["message_id"]] if "message_id" in first else first["message_ids"]
    assert in_first in ([mid], [mid, other])
    assert on_disk_at_ack[0] == [["boss-0", m] for m in in_first]  # written before their ack was sent
    assert LazyMessage is Message


def test_a_failing_handler_is_not_acknowledged_and_gets_the_message_again(
        daemon: FakeDaemon, new_agent: AgentFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    agent = new_agent("a-0", "p", start=False)
    attempts: list[tuple[Any, int]] = []

    @agent.on_direct_message
    def handle(message: Message) -> None:
        attempts.append((message.payload, message.attempt))
        if message.payload == "fragile" and message.attempt == 1:
            raise RuntimeError("not now")

    agent.start()
    with caplog.at_level(logging.ERROR, logger="clawctl.agent"):
        fragile = daemon.send_direct("a-0", "fragile")
        sturdy = daemon.send_direct("a-0", "sturdy")  # same sender: handled after the failure
        daemon.wait(lambda: sturdy in daemon.acked(), "the second message's ack")
    assert daemon.acked() == [sturdy]  # the failed one was not acknowledged...
    assert acked_lines(tmp_path / "a-0") == [["sender-0", sturdy]]  # ...nor recorded
    failures = [r for r in caplog.records if "on_direct_message failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info and fragile in failures[0].getMessage()
    daemon.drop()  # the next connection: the daemon delivers the unacknowledged message again
    daemon.wait(lambda: fragile in daemon.acked(), "the redelivered message's ack")
    assert attempts == [("fragile", 1), ("sturdy", 1), ("fragile", 2)]


def test_without_a_handler_messages_are_not_acknowledged(daemon: FakeDaemon, new_agent: AgentFactory,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    agent = new_agent("a-0", "p")
    assert agent.wait_connected(PATIENCE)
    with caplog.at_level(logging.WARNING, logger="clawctl.agent"):
        mid = daemon.send_direct("a-0", "x")
        daemon.wait(lambda: any("no on_direct_message handler" in r.getMessage() for r in caplog.records), "a warning")
    assert mid not in daemon.acked()


def test_a_redelivered_id_is_acknowledged_again_without_the_handler(daemon: FakeDaemon,
                                                                    new_agent: AgentFactory) -> None:
    agent = new_agent("a-0", "p", start=False)
    handled: list[str] = []
    agent.on_direct_message(lambda message: handled.append(message.id))
    agent.start()
    mid = daemon.send_direct("a-0", "once")
    probe = daemon.send_direct("a-0", "probe")  # same sender: once it is handled, so is the first one
    daemon.wait(lambda: daemon.acked() == [mid, probe], "the acks")
    daemon.redeliver(mid)  # e.g. the daemon did not get the ack
    nxt = daemon.send_direct("a-0", "next")
    daemon.wait(lambda: daemon.acked() == [mid, probe, mid, nxt], "the second ack and the next message")
    assert handled == [mid, probe, nxt]


def test_a_message_acknowledged_before_a_restart_is_not_handled_again(
        daemon: FakeDaemon, new_agent: AgentFactory, tmp_path: Path) -> None:
    state_dir = tmp_path / "workdir"
    state_dir.mkdir()
    first_run: list[str] = []
    first = new_agent("a-0", "p", start=False, state_dir=state_dir)
    first.on_direct_message(lambda message: first_run.append(message.id))
    first.start()
    mid = daemon.send_direct("a-0", "pay once")
    daemon.wait(lambda: daemon.acked() == [mid], "the ack")
    first.stop()
    daemon.messages[mid]["acked"] = False  # as if the process died between recording the id and the ack

    second_run: list[str] = []
    second = new_agent("a-0", "p", start=False, state_dir=state_dir)  # a new process, same working directory
    second.on_direct_message(lambda message: second_run.append(message.id))
    second.start()  # the daemon delivers the unacknowledged message again on hello
    daemon.wait(lambda: daemon.acked() == [mid, mid], "the second ack")
    assert daemon.messages[mid]["attempts"] == 2
    fresh = daemon.send_direct("a-0", "new")
    daemon.wait(lambda: fresh in daemon.acked(), "a new message's ack")
    assert first_run == [mid] and second_run == [fresh]
    assert acked_lines(state_dir) == [["sender-0", mid], ["sender-0", fresh]]


def test_the_acknowledgement_file_stays_bounded(daemon: FakeDaemon, new_agent: AgentFactory,
                                                tmp_path: Path) -> None:
    state_dir = tmp_path / "workdir"
    state_dir.mkdir()
    sizes: list[int] = []
    daemon.on_request = lambda r: sizes.append(len(acked_lines(state_dir))) if r.method == "messages.ack" else None
    first = new_agent("a-0", "p", start=False, state_dir=state_dir, acked_limit=4)
    first.on_direct_message(lambda message: None)
    first.start()
    ids = [daemon.send_direct("a-0", n) for n in range(21)]
    # (on_request runs just after the fake daemon recorded the request: wait for it too)
    daemon.wait(lambda: daemon.acked() == ids and len(sizes) == len(daemon.calls("messages.ack")), "every ack")
    assert max(sizes) <= 8 and sizes[-1] <= 8  # never more than twice the limit
    kept = [mid for _, mid in acked_lines(state_dir)]
    assert kept[-4:] == ids[-4:] and len(kept) <= 8
    first.stop()

    handled: list[str] = []
    second = new_agent("a-0", "p", start=False, state_dir=state_dir, acked_limit=4)
    second.on_direct_message(lambda message: handled.append(message.id))
    second.start()
    assert second.wait_connected(PATIENCE)  # redeliver() pushes to its connection, not the first one's
    for mid in (*ids[-4:], ids[0]):
        daemon.redeliver(mid)
    daemon.wait(lambda: daemon.acked().count(ids[0]) == 2, "the oldest message's second ack")
    assert handled == [ids[0]]  # the newest 4 are remembered; the oldest one was forgotten (the bound)
    assert [daemon.acked().count(mid) for mid in ids[-4:]] == [2, 2, 2, 2]


def test_the_acknowledged_ids_survive_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / ACKED_FILE
    path.write_text('["s","m-1"]\n["s","m-2"]\nnot json\n["s","m-3"]\n["s","m-')  # crashed mid-write
    ids = _AckedIds(path, limit=10)
    ids.load()
    assert ("s", "m-1") in ids and ("s", "m-3") in ids and len(ids) == 3
    ids.add(("s", "m-4"))
    ids.add(("s", "m-4"))  # already known: not written twice
    ids.close()
    assert path.read_text().splitlines() == ['["s", "m-1"]', '["s", "m-2"]', '["s", "m-3"]', '["s", "m-4"]']
    assert not (tmp_path / (ACKED_FILE + ".tmp")).exists()


def test_a_write_that_fails_part_way_does_not_spoil_the_next_id(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / ACKED_FILE
    ids = _AckedIds(path, limit=10)
    ids.load()
    real_write = os.write
    failures: list[int] = []

    def half_then_fail(fd: int, data: Any) -> int:
        if not failures:
            failures.append(fd)
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr("clawctl.agent.sdk.os.write", half_then_fail)
    with caplog.at_level(logging.ERROR, logger="clawctl.agent"):
        ids.add(("s", "m-1"))  # not on disk, but this process still remembers it
    assert ("s", "m-1") in ids and "after a restart it may be handled again" in caplog.text
    ids.add(("s", "m-2"))
    ids.close()
    again = _AckedIds(path, limit=10)
    again.load()
    assert ("s", "m-2") in again and ("s", "m-1") not in again


# ------------------------------------------------------------------ events and shared state


def test_subscriptions_and_watches_are_sent_again_after_a_reconnect(daemon: FakeDaemon,
                                                                   new_agent: AgentFactory) -> None:
    agent = new_agent("a-0", "p", start=False)
    events: list[PublishedEvent] = []
    changes: list[StateChange] = []
    agent.subscribe("plan.*", events.append)  # before start: sent with the first hello
    agent.start()
    assert agent.wait_connected(PATIENCE)
    agent.subscribe("alerts", events.append)
    agent.watch("plan/*", changes.append)
    agent.unsubscribe("alerts")
    assert daemon.publish("alerts", 1) == 0
    hellos = daemon.calls("hello")
    first = [(r.method, r.params["pattern"]) for r in daemon.calls(agent_id="a-0")
             if r.conn == hellos[0].conn and "pattern" in r.params]
    assert first == [("events.subscribe", "plan.*"), ("events.subscribe", "alerts"), ("state.watch", "plan/*"),
                     ("events.unsubscribe", "alerts")]

    daemon.drop()
    daemon.wait(lambda: agent.connections == 2, "the reconnection")
    second_conn = daemon.calls("hello")[1].conn
    again = [(r.method, r.params["pattern"]) for r in daemon.calls(agent_id="a-0")
             if r.conn == second_conn and "pattern" in r.params]
    assert again == [("events.subscribe", "plan.*"), ("state.watch", "plan/*")]  # not the one unsubscribed
    assert daemon.publish("plan.ready", {"n": 1}, sender="c-0") == 1
    assert daemon.publish("alerts", 2) == 0
    writer = new_agent("w-0", "w")
    assert writer.state_set("plan/total", 5, 0) == 1
    daemon.wait(lambda: events and changes, "the event and the change")
    assert events == [PublishedEvent("plan.ready", {"n": 1}, "c-0")]
    assert changes == [StateChange("plan/total", 5, 1, "w-0")]


def test_event_handlers_run_per_pattern_and_a_failing_one_is_logged(daemon: FakeDaemon, new_agent: AgentFactory,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    agent = new_agent("a-0", "p", start=False)
    broad: list[str] = []

    def fail(_event: PublishedEvent) -> None:
        raise ValueError("bad handler")

    agent.subscribe("jobs.*", lambda event: broad.append(event.topic))
    agent.subscribe("jobs.failed", fail)
    agent.start()
    assert agent.wait_connected(PATIENCE)
    with caplog.at_level(logging.ERROR, logger="clawctl.agent"):
        for topic in ("jobs.failed", "jobs.done", "other"):
            daemon.publish(topic)
        daemon.wait(lambda: broad == ["jobs.failed", "jobs.done"], "both matching events, in order")
        daemon.wait(lambda: any("handler of 'jobs.failed' failed" in r.getMessage() for r in caplog.records),
                    "the failure logged")


@pytest.mark.parametrize(("pattern", "text"), [
    ("plan.*", "plan.dispatched"), ("plan.*", "plan."), ("plan.*", "plan/x.y"), ("plan.*", "plans.x"),
    ("*", ""), ("*", "anything/at.all"), ("a?c", "abc"), ("a?c", "ac"), ("a[1]", "a[1]"), ("a[1]", "a1"),
    ("*.done", "job.7.done"), ("*.done", "job.7.done.not"), ("a*b*c", "aXbYbZc"), ("a*b*c", "aXbYbZ"),
    ("plan/*", "plan/dispatched"), ("", ""), ("", "x"), ("**", "x"), ("?", ""),
])
def test_patterns_match_as_the_daemon_matches_them(pattern: str, text: str) -> None:
    from clawctl.policies.access import glob_match as daemon_glob_match

    assert glob_match(pattern, text) == daemon_glob_match(pattern, text)


def test_publish_and_shared_state(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    listener = new_agent("l-0", "l", start=False)
    heard: list[PublishedEvent] = []
    listener.subscribe("plan.*", heard.append)
    listener.start()
    assert listener.wait_connected(PATIENCE)
    agent = new_agent("a-0", "p")
    assert agent.publish("plan.dispatched", {"session": "s-1"}) == 1
    assert agent.publish("nobody.listens") == 0
    assert daemon.calls("events.publish")[1].params == {"topic": "nobody.listens"}  # no data: not sent
    daemon.wait(lambda: heard, "the event")
    assert heard == [PublishedEvent("plan.dispatched", {"session": "s-1"}, "a-0")]

    assert agent.state_get("count") == (None, 0)
    assert agent.state_set("count", 1, 0) == 1
    with pytest.raises(Conflict, match="version 1, not 0"):
        agent.state_set("count", 2, 0)  # the wire error comes back as its class
    assert agent.state_get("count") == (1, 1)


def test_state_update_retries_on_conflict(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    agent = new_agent("a-0", "p")
    other = new_agent("b-0", "q")
    seen: list[Any] = []

    def increment(value: Any) -> int:
        seen.append(value)
        if len(seen) == 1:  # another writer gets in between our read and our write
            other.state_update("count", lambda v: (v or 0) + 10)
        return (value or 0) + 1

    assert agent.state_update("count", increment) == (11, 2)
    assert seen == [None, 10]
    sets = [r.params for r in daemon.calls("state.set", "a-0")]
    assert sets == [{"key": "count", "value": 1, "expected_version": 0},
                    {"key": "count", "value": 11, "expected_version": 1}]

    def always_late(value: Any) -> int:
        daemon.shared["count"] = (value, daemon.shared["count"][1] + 1)  # someone always writes first
        return 0

    with pytest.raises(Conflict):
        agent.state_update("count", always_late, retries=2)
    assert len(daemon.calls("state.set", "a-0")) == 2 + 3  # the first try and two retries
    with pytest.raises(ValueError):
        agent.state_update("count", always_late, retries=-1)


def test_a_refused_subscription_is_not_kept(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    agent = new_agent("a-0", "p")
    assert agent.wait_connected(PATIENCE)
    daemon.denied = {"events.subscribe"}
    with pytest.raises(PolicyDenied):
        agent.subscribe("secret.*", lambda _e: None)
    daemon.denied = set()
    daemon.drop()
    daemon.wait(lambda: agent.connections == 2, "the reconnection")
    assert [r.params["pattern"] for r in daemon.calls("events.subscribe")] == ["secret.*"]  # not re-sent


# ------------------------------------------------------------------ child sessions


def test_open_session_with_a_parent(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    front = new_agent("front-0", "front")
    new_agent("back-0", "back")
    own = daemon.open_session("front")
    child = front.open_session("back", key="k", parent=Session(own, "front"))
    assert daemon.calls("sessions.open")[0].params == {"pool": "back", "key": "k", "parent": own}
    assert daemon.sessions[child.id]["parent_id"] == own
    assert front.open_session("back", parent=own).pool == "back"  # an id works too
    not_mine = daemon.open_session("back")
    with pytest.raises(PolicyDenied):
        front.open_session("back", parent=not_mine)


def test_an_agent_without_state_dir_uses_the_working_directory(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    agent = Agent("/nonexistent.sock", "a-0", "t")
    assert agent._acked.path == tmp_path / ACKED_FILE
    with pytest.raises(ValueError):
        Agent("/nonexistent.sock", "a-0", "t", acked_limit=0)
