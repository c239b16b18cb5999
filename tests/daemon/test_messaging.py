"""Cross-agent communication through a real daemon: every permission allowed and denied, attacks
refused and audited, durable messages across a recipient crash, dead letters, child sessions."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.conftest import PY, Fleet, pool_yaml
from tests.daemon.test_control import _agent_pid, _apply, _json, _send

pytestmark = pytest.mark.timeout(150)

CHATTY = [PY, str(Path(__file__).parent / "agents" / "chatty.py")]
HEALTH = """
health:
  readiness: notify
  heartbeatInterval: 200ms
  heartbeatTimeout: 5s
"""
POLICY = """
---
apiVersion: clawctl/v1
kind: CommunicationPolicy
metadata: {name: plant}
spec:
  rules:
    - from: alpha
      messages: [beta]
      events: {publish: [plan.*]}
      sharedState: {read: [plan/*], write: [plan/*]}
    - from: beta
      events: {subscribe: [plan.*]}
      sharedState: {read: [plan/*]}
"""


def _fleet(fleet: Fleet, beta_args: tuple[str, ...] = ()) -> None:
    _apply(fleet, pool_yaml("alpha", CHATTY, extra=HEALTH) + pool_yaml("beta", [*CHATTY, *beta_args], extra=HEALTH)
           + pool_yaml("gamma", CHATTY, extra=HEALTH) + POLICY)


class Agents:
    """One operator session per agent pool, to command its (first) agent."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.sessions = {pool: _json(fleet, "sessions", "open", pool)["id"] for pool in ("alpha", "beta", "gamma")}

    def do(self, pool: str, **command: Any) -> Any:
        return _send(self.fleet, self.sessions[pool], command)


def _denied(answer: Any) -> bool:
    return isinstance(answer, dict) and answer.get("class") == "PolicyDenied"


def test_every_kind_of_permission_is_allowed_or_denied_by_the_policy(fleet: Fleet) -> None:
    _fleet(fleet)
    agents = Agents(fleet)
    # Messages: A → B allowed; not B → A, not from a pool without a rule.
    assert isinstance(agents.do("alpha", do="send", to="agent/beta-0", payload="hello"), str)
    assert _denied(agents.do("beta", do="send", to="agent/alpha-0", payload="back"))
    assert _denied(agents.do("gamma", do="send", to="pool/beta", payload="x"))
    # Events: publish and subscribe per pool and topic.
    assert agents.do("beta", do="subscribe", pattern="plan.*") == "ok"
    assert _denied(agents.do("gamma", do="subscribe", pattern="plan.*"))
    assert _denied(agents.do("beta", do="subscribe", pattern="secret.*"))
    assert agents.do("alpha", do="publish", topic="plan.go", data={"line": 4}) == 1
    assert _denied(agents.do("alpha", do="publish", topic="secret.go"))
    assert _denied(agents.do("beta", do="publish", topic="plan.go"))
    # Shared state: read and write are separate rights.
    assert agents.do("beta", do="watch", pattern="plan/*") == "ok"
    assert agents.do("alpha", do="state_set", key="plan/x", value={"v": 1}, expected_version=0) == 1
    stale = agents.do("alpha", do="state_set", key="plan/x", value={"v": 9}, expected_version=0)
    assert stale["class"] == "Conflict"  # a stale write is refused, never lost silently
    assert agents.do("beta", do="state_get", key="plan/x") == [{"v": 1}, 1]
    assert _denied(agents.do("beta", do="state_set", key="plan/x", value=2, expected_version=1))
    assert _denied(agents.do("gamma", do="state_get", key="plan/x"))
    assert _denied(agents.do("alpha", do="state_set", key="other/x", value=1, expected_version=0))

    seen = fleet.wait_for(lambda: (s := agents.do("beta", do="seen"))["messages"] and s["events"] and s["changes"]
                          and s, what="beta to receive the message, the event and the change")
    assert [(m["sender"], m["payload"]) for m in seen["messages"]] == [("alpha-0", "hello")]
    assert [(e["topic"], e["data"]) for e in seen["events"]] == [("plan.go", {"line": 4})]
    assert [(c["key"], c["value"], c["version"], c["by"]) for c in seen["changes"]] == [("plan/x", {"v": 1}, 1,
                                                                                        "alpha-0")]
    assert agents.do("gamma", do="seen") == {"messages": [], "events": [], "changes": []}
    with sqlite3.connect(fleet.home / "registry.db") as db:
        denied = {a for (a,) in db.execute("select action from audit where outcome = 'denied'")}
    assert {"messages.send", "events.subscribe", "events.publish", "state.set", "state.get"} <= denied
    run = fleet.cli("audit", "--outcome", "denied", "-o", "json")
    assert run.code == 0 and len(json.loads(run.out)["entries"]) >= 9


def test_flooding_is_refused_audited_and_the_daemon_keeps_serving(fleet: Fleet,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAWCTL_AGENT_RATE", "50")
    monkeypatch.setenv("CLAWCTL_AGENT_BURST", "100")
    _fleet(fleet)
    agents = Agents(fleet)
    refused = agents.do("gamma", do="flood", count=1000)
    assert refused >= 800
    with sqlite3.connect(fleet.home / "registry.db") as db:
        rows = db.execute("select actor, detail from audit where action = 'rate-limit'").fetchall()
    assert rows and "gamma-0" in rows[0][0]
    assert fleet.wait_for(lambda: agents.do("alpha", do="state_set", key="plan/y", value=1, expected_version=0) == 1,
                          what="the daemon to keep serving other agents")


def test_messages_reach_the_application_exactly_once_across_a_recipient_crash(fleet: Fleet) -> None:
    _fleet(fleet, beta_args=("--handle-seconds", "0.02"))
    agents = Agents(fleet)
    ids = agents.do("alpha", do="send_many", to="agent/beta-0", count=60)
    assert len(set(ids)) == 60
    log = fleet.home / "agents" / "t" / "beta-0" / "received.jsonl"
    fleet.wait_for(lambda: log.exists() and len(log.read_text().splitlines()) >= 10, what="some messages handled")
    pid = _agent_pid(fleet, "beta-0")
    os.kill(pid, signal.SIGKILL)  # with messages in flight
    fleet.wait_for(lambda: _agent_pid(fleet, "beta-0") != pid, what="beta-0 to be restarted", timeout=30)

    def handled() -> list[int]:
        return [json.loads(line)["payload"]["n"] for line in log.read_text().splitlines()]

    fleet.wait_for(lambda: len(set(handled())) == 60, what="every message to be handled", timeout=60)
    assert sorted(handled()) == list(range(60))  # each exactly once, none lost
    acked = fleet.wait_for(lambda: len(m := json.loads(fleet.cli("messages", "--state", "acked", "-n", "100",
                                                                 "-o", "json").out)["messages"]) == 60 and m,
                           what="every message to be acknowledged")
    assert {m["from"] for m in acked} == {"alpha-0"} and {m["recipient"] for m in acked} == {"beta-0"}


def test_a_message_nobody_can_handle_becomes_a_dead_letter(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAWCTL_ACK_TIMEOUT", "0.3")
    monkeypatch.setenv("CLAWCTL_MAX_DELIVERIES", "3")
    _fleet(fleet)
    agents = Agents(fleet)
    agents.do("alpha", do="send", to="agent/beta-0", payload={"poison": True})
    dead = fleet.wait_for(lambda: json.loads(fleet.cli("messages", "--state", "dead", "-o", "json").out)["messages"],
                          what="the poisoned message to be a dead letter", timeout=30)
    assert dead[0]["attempts"] == 3 and dead[0]["payload"] == {"poison": True}
    assert agents.do("alpha", do="send", to="agent/beta-0", payload="fine")  # the queue moves on
    fleet.wait_for(lambda: agents.do("beta", do="seen")["messages"], what="the next message")


def test_a_recipient_crashing_often_turns_no_queued_message_dead(fleet: Fleet,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAWCTL_MAX_DELIVERIES", "2")
    _fleet(fleet, beta_args=("--handle-seconds", "0.1"))
    agents = Agents(fleet)
    assert len(agents.do("alpha", do="send_many", to="agent/beta-0", count=30)) == 30
    log = fleet.home / "agents" / "t" / "beta-0" / "received.jsonl"

    def running_pid() -> int | None:
        agent = next(a for a in fleet.agents() if a["id"] == "beta-0")
        return agent["pid"] if agent["state"] == "Running" else None

    for _ in range(4):  # more crashes than MAX_DELIVERIES, each with most messages still queued
        pid = fleet.wait_for(running_pid, what="beta-0 running", timeout=30)
        fleet.wait_for(lambda: log.exists() and log.read_text().count('"message"') > 0, what="some handled")
        os.kill(pid, signal.SIGKILL)
        fleet.wait_for(lambda: running_pid() not in (None, pid), what="beta-0 restarted", timeout=30)

    def handled() -> list[int]:
        return [json.loads(line)["payload"]["n"] for line in log.read_text().splitlines()
                if json.loads(line)["kind"] == "message"]

    fleet.wait_for(lambda: len(set(handled())) == 30, what="every message handled", timeout=60)
    assert sorted(handled()) == list(range(30))
    assert json.loads(fleet.cli("messages", "--state", "dead", "-o", "json").out)["messages"] == []


def test_child_sessions_close_with_their_parent(fleet: Fleet) -> None:
    _fleet(fleet)
    parent = _json(fleet, "sessions", "open", "alpha")
    child = _send(fleet, parent["id"], {"do": "open_child", "pool": "beta", "parent": parent["id"]})
    assert _json(fleet, "sessions", "show", child)["parent_id"] == parent["id"]
    assert [c["id"] for c in _json(fleet, "sessions", "show", parent["id"])["children"]] == [child]
    table = fleet.cli("sessions", "show", parent["id"]).out
    assert "CHILD" in table and child in table
    assert "parent:" in fleet.cli("sessions", "show", child).out
    assert fleet.cli("sessions", "close", parent["id"], "--now").code == 0
    assert _json(fleet, "sessions", "show", child)["state"] == "Closed"


def test_a_batch_is_answered_message_by_message(fleet: Fleet) -> None:
    _fleet(fleet)
    agents = Agents(fleet)
    result = agents.do("alpha", do="send_batch", items=[
        {"to": "agent/beta-0", "payload": {"n": 1}, "id": "b1"},
        {"to": "agent/gamma-0", "payload": {"n": 2}},         # no rule alpha → gamma
        {"to": "agent/beta-9", "payload": {"n": 3}},          # no such agent
        {"to": "pool/beta", "payload": {"n": 4}},
        {"to": "agent/beta-0", "payload": {"n": 1}, "id": "b1"},  # a retry of the first
    ])["results"]
    assert [r.get("error", {}).get("code") for r in result] == [None, "forbidden", "not-found", None, None]
    assert result[4] == {**result[0], "duplicate": True}
    seen = fleet.wait_for(lambda: len(s := agents.do("beta", do="seen")["messages"]) == 2 and s,
                          what="both stored messages to arrive")
    assert sorted(m["payload"]["n"] for m in seen) == [1, 4]
    bad = agents.do("alpha", do="send_batch", items=[{"to": "agent/beta-0"}])
    assert bad.get("class") == "ProtocolError"


def test_messages_to_an_agent_scaled_away_become_dead_letters(fleet: Fleet) -> None:
    _apply(fleet, pool_yaml("alpha", CHATTY, extra=HEALTH) + pool_yaml("beta", CHATTY, replicas=2, extra=HEALTH)
           + pool_yaml("gamma", CHATTY, extra=HEALTH) + POLICY)
    agents = Agents(fleet)
    agents.do("alpha", do="send", to="agent/beta-1", payload={"poison": True})  # never acknowledged
    _apply(fleet, pool_yaml("alpha", CHATTY, extra=HEALTH) + pool_yaml("beta", CHATTY, replicas=1, extra=HEALTH)
           + pool_yaml("gamma", CHATTY, extra=HEALTH) + POLICY)
    dead = fleet.wait_for(lambda: json.loads(fleet.cli("messages", "--state", "dead", "-o", "json").out)["messages"],
                          what="the message to the removed agent to be a dead letter", timeout=30)
    assert dead[0]["recipient"] == "beta-1"


def test_sends_wait_for_a_registry_locked_by_another_writer_and_are_stored(fleet: Fleet) -> None:
    _fleet(fleet)
    agents = Agents(fleet)
    assert isinstance(agents.do("alpha", do="send", to="agent/beta-0", payload={"n": -1}), str)  # warm
    # Midway through a stream of sends another process takes SQLite's write lock for a second:
    # the daemon cannot write on its event loop, hands the flushes to its database thread (which
    # waits for the lock), answers each send only once it is stored, and loses nothing.
    db = sqlite3.connect(fleet.home / "registry.db", isolation_level=None, check_same_thread=False)
    answer: list[Any] = []
    sender = threading.Thread(target=lambda: answer.append(agents.do("alpha", do="send_many", to="agent/beta-0",
                                                                     count=400)))
    started = time.monotonic()
    sender.start()
    time.sleep(0.3)
    db.execute("BEGIN IMMEDIATE")
    time.sleep(1.0)
    db.execute("COMMIT")
    db.close()
    sender.join(timeout=60)
    assert time.monotonic() - started >= 1.3
    [ids] = answer
    assert len(ids) == 400
    with sqlite3.connect(fleet.home / "registry.db") as check:
        stored = {i for (i,) in check.execute("select id from messages")}
    assert set(ids) <= stored
    seen = fleet.wait_for(lambda: len(s := agents.do("beta", do="seen")["messages"]) == 401 and s,
                          what="the messages sent while the registry was locked to arrive", timeout=60)
    assert [m["payload"]["n"] for m in seen] == list(range(-1, 400))  # in send order


def test_an_acknowledgement_alone_is_written_soon_without_anyone_listing(fleet: Fleet) -> None:
    # Acks wait for a send's flush; with no send coming, their own flush follows within ACK_WRITE_DELAY.
    _fleet(fleet)
    agents = Agents(fleet)
    ids = agents.do("alpha", do="send_many", to="agent/beta-0", count=5)
    assert len(set(ids)) == 5

    def states() -> set[str]:
        with sqlite3.connect(fleet.home / "registry.db") as db:  # not `clawctl messages`: it flushes first
            return {state for (state,) in db.execute("select state from messages")}

    fleet.wait_for(lambda: states() == {"acked"}, what="the acknowledgements to be written", timeout=10)
