"""Failover, drain and rolling updates through a real daemon and real agent processes:
hot-standby promotion, degrade to a fallbackPool, drain of an agent / a pool / a fleet,
uncordon, and a rolling update under traffic with no failed request."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest

from clawctl.daemon.client import operator_connection
from clawctl.errors import ClawctlError
from tests.daemon.conftest import PY, Fleet, pool_yaml
from tests.daemon.test_control import _apply, _json, _send

pytestmark = pytest.mark.timeout(150)

WORKER = [PY, "-m", "clawctl.agent.examples.worker"]
HEALTH = """
health:
  readiness: notify
  heartbeatInterval: 200ms
  heartbeatTimeout: 3s
"""
HOT_STANDBY = HEALTH + """
failover:
  strategy: hot-standby
  standbys: 1
  backoff: {initial: 100ms}
"""


def _agent(fleet: Fleet, agent_id: str) -> dict[str, Any]:
    return next(a for a in fleet.agents() if a["id"] == agent_id)


def _pool_state(fleet: Fleet, pool: str) -> str:
    entry = next(f for f in fleet.status()["fleets"] if f["name"] == "t")
    live = next(p for p in entry["pools"] if p["name"] == pool).get("live") or {}
    return str(live.get("state", ""))


def test_hot_standby_takes_over_a_dead_primary_with_its_sessions(fleet: Fleet) -> None:
    _apply(fleet, pool_yaml("work", WORKER, replicas=2, extra=HOT_STANDBY))
    roles = {a["id"]: a["role"] for a in fleet.agents()}
    assert roles == {"work-0": "primary", "work-1": "primary", "work-2": "standby"}
    session = _json(fleet, "sessions", "open", "work")
    owner = session["agent_id"]
    assert _send(fleet, session["id"], "a")["handled"] == 1
    os.kill(_agent(fleet, owner)["pid"], signal.SIGKILL)
    reply = _send(fleet, session["id"], "b")  # answered by the promoted standby, state kept
    assert reply == {"worker": "work-2", "echo": "b", "handled": 2}
    roles = fleet.wait_for(lambda: (r := {a["id"]: (a["role"], a["state"]) for a in fleet.agents()})[owner]
                           == ("standby", "Running") and r, what="the failed agent back as the standby")
    assert roles["work-2"] == ("primary", "Running")
    reasons = [(e["reason"], e["target"]) for e in fleet.events()]
    assert ("Promoted", "work-2") in reasons and ("Demoted", owner) in reasons


def test_drain_agent_moves_its_sessions_and_replaces_it(fleet: Fleet) -> None:
    _apply(fleet, pool_yaml("work", WORKER, replicas=2, extra=HEALTH))
    sessions = [_json(fleet, "sessions", "open", "work")["id"] for _ in range(4)]
    for sid in sessions:
        assert _send(fleet, sid, "x")["handled"] == 1
    before = _agent(fleet, "work-0")["pid"]
    run = fleet.cli("drain", "agent/work-0", "--grace-period", "10s", "--timeout", "60")
    assert run.code == 0, run.out + run.err
    assert "agent/work-0 drained" in run.out
    after = _agent(fleet, "work-0")
    assert after["pid"] != before and after["state"] == "Running"
    for sid in sessions:  # every session answers, with its state
        assert _send(fleet, sid, "y")["handled"] == 2
    reasons = [(e["reason"], e["target"]) for e in fleet.events()]
    assert ("Draining", "work-0") in reasons
    audit = _json(fleet, "audit")["entries"]
    assert any(e["action"] == "drain" and e["target"] == "agent/work-0" for e in audit)


def test_drain_pool_moves_sessions_to_its_fallback_and_uncordon_brings_it_back(fleet: Fleet) -> None:
    degrade = HEALTH + "failover: {strategy: degrade, minReady: 1, fallbackPool: spare}\n"
    _apply(fleet, pool_yaml("main", WORKER, replicas=2, extra=degrade) + pool_yaml("spare", WORKER, extra=HEALTH))
    session = _json(fleet, "sessions", "open", "main")
    assert _send(fleet, session["id"], "a")["handled"] == 1
    run = fleet.cli("drain", "pool/main", "--timeout", "60")
    assert run.code == 0, run.out + run.err
    shown = _json(fleet, "sessions", "show", session["id"])
    assert shown["pool"] == "spare" and shown["agent_id"] == "spare-0" and shown["data"] == {"handled": 1}
    assert _send(fleet, session["id"], "b") == {"worker": "spare-0", "echo": "b", "handled": 2}
    assert not [a for a in fleet.agents() if a["pool"] == "main" and a["pid"]]
    assert _pool_state(fleet, "main") == "Drained"
    assert _json(fleet, "sessions", "open", "main")["agent_id"] == "spare-0"  # cordoned: new sessions go on
    run = fleet.cli("uncordon", "pool/main")
    assert run.code == 0, run.out + run.err
    fleet.wait_for(lambda: _pool_state(fleet, "main") == "Ready", what="main to come back", timeout=30)
    fleet.wait_for(lambda: _json(fleet, "sessions", "open", "main")["pool"] == "main", what="main to take sessions")


def test_drain_fleet_stops_everything_and_a_timeout_names_what_is_left(fleet: Fleet) -> None:
    _apply(fleet, pool_yaml("a", WORKER, extra=HEALTH) + pool_yaml("b", WORKER, extra=HEALTH))
    run = fleet.cli("drain", "fleet/t", "--timeout", "60")
    assert run.code == 0, run.out + run.err
    assert not [a for a in fleet.agents() if a["pid"]]
    run = fleet.cli("drain", "agent/nope", "--timeout", "5")
    assert run.code == 1 and "no agent nope" in run.err
    run = fleet.cli("uncordon", "fleet/t")
    assert run.code == 0, run.out + run.err
    run = fleet.cli("uncordon", "fleet/t")
    assert run.code == 1 and "fleet/t was not cordoned" in run.err
    fleet.wait_for(lambda: len([a for a in fleet.agents() if a["state"] == "Running"]) == 2,
                   what="the fleet back", timeout=30)
    # An agent that ignores SIGTERM and holds a session with no peer: the drain times out, naming it.
    slow = HEALTH + "drain: {gracePeriod: 20s}\n"
    _apply(fleet, pool_yaml("a", WORKER, extra=slow) + pool_yaml("b", WORKER, extra=HEALTH))
    _json(fleet, "sessions", "open", "a")
    os.kill(_agent(fleet, "a-0")["pid"], signal.SIGSTOP)  # frozen: cannot stop in time
    try:
        run = fleet.cli("drain", "pool/a", "--timeout", "2")
        assert run.code == 1 and "pool/a is not drained after 2s" in run.err and "a-0" in run.err
    finally:
        os.kill(_agent(fleet, "a-0")["pid"], signal.SIGCONT)


def test_degraded_pool_sends_new_sessions_to_its_fallback_and_recovers(fleet: Fleet) -> None:
    degrade = HEALTH + """
failover:
  strategy: degrade
  minReady: 2
  fallbackPool: spare
  backoff: {initial: 3s}
"""
    _apply(fleet, pool_yaml("main", WORKER, replicas=2, extra=degrade) + pool_yaml("spare", WORKER, extra=HEALTH))
    assert _json(fleet, "sessions", "open", "main")["pool"] == "main"
    first = _agent(fleet, "main-0")["pid"]
    os.kill(first, signal.SIGKILL)  # the first restart is immediate (as supervisord's)
    fleet.wait_for(lambda: (a := _agent(fleet, "main-0"))["pid"] not in (None, first) and a["state"] == "Running",
                   what="main-0 restarted")
    os.kill(_agent(fleet, "main-0")["pid"], signal.SIGKILL)  # the second waits out its 3 s backoff
    fleet.wait_for(lambda: _agent(fleet, "main-0")["state"] == "BackOff", what="main-0 in BackOff")
    assert _pool_state(fleet, "main") == "Degraded"
    assert _json(fleet, "sessions", "open", "main")["pool"] == "spare"
    fleet.wait_for(lambda: _pool_state(fleet, "main") == "Ready", what="the pool to recover by itself", timeout=30)
    fleet.wait_for(lambda: _json(fleet, "sessions", "open", "main")["pool"] == "main", what="main to take sessions")
    reasons = [e["reason"] for e in fleet.events() if e["target"] == "main"]
    assert "Degraded" in reasons and "Recovered" in reasons


def test_degraded_pool_without_fallback_refuses_clearly(fleet: Fleet) -> None:
    degrade = HEALTH + "failover: {strategy: degrade, minReady: 1, restart: never}\n"
    _apply(fleet, pool_yaml("main", WORKER, extra=degrade))
    os.kill(_agent(fleet, "main-0")["pid"], signal.SIGKILL)
    fleet.wait_for(lambda: _agent(fleet, "main-0")["state"] == "Exited", what="the agent to end")
    run = fleet.cli("sessions", "open", "main")
    assert run.code == 1 and "pool main is Degraded: 0 ready, minReady 1" in run.err
    assert "no fallbackPool" in run.err


def test_rolling_update_under_traffic_fails_no_request(fleet: Fleet) -> None:
    worker = [*WORKER, "--service-time", "0.02"]
    _apply(fleet, pool_yaml("work", worker, replicas=2, extra=HEALTH + "env: {VERSION: '1'}\n"))
    before = {a["id"]: a["pid"] for a in fleet.agents()}
    conn = operator_connection(fleet.home)
    sessions = [conn.call("sessions.open", {"pool": "work"})["id"] for _ in range(4)]
    stop = threading.Event()
    failures: list[str] = []
    answered = [0]

    def traffic() -> None:
        counts = dict.fromkeys(sessions, 0)
        while not stop.is_set():
            for sid in sessions:
                try:
                    reply = conn.call("sessions.send", {"session": sid, "message": "m"}, timeout=30)["reply"]
                except ClawctlError as exc:
                    failures.append(exc.message)
                    continue
                counts[sid] += 1
                if reply["handled"] != counts[sid]:
                    failures.append(f"session {sid}: handled {reply['handled']}, expected {counts[sid]}")
                answered[0] += 1

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        _apply(fleet, pool_yaml("work", worker, replicas=2, extra=HEALTH + "env: {VERSION: '2'}\n"))
    finally:
        stop.set()
        thread.join(timeout=60)
        conn.close()
    assert failures == []
    assert answered[0] > 20
    after = fleet.agents()
    assert sorted(a["id"] for a in after) == ["work-0", "work-1"]  # the surge agent is gone
    assert all(a["pid"] != before[a["id"]] and not a["outdated"] for a in after)
    reasons = [(e["reason"], e["target"]) for e in fleet.events()]
    assert ("Started", "work-2") in reasons  # maxSurge 1 (the default): capacity held during the update


def test_daemon_stop_answers_requests_under_way_within_its_budget(fleet: Fleet) -> None:
    _apply(fleet, pool_yaml("work", [*WORKER, "--service-time", "1.5"], extra=HEALTH))
    conn = operator_connection(fleet.home)
    session = conn.call("sessions.open", {"pool": "work"})["id"]
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(
        conn.call("sessions.send", {"session": session, "message": "slow"}, timeout=30)))
    thread.start()
    time.sleep(0.3)  # the message is with the agent
    run = fleet.cli("daemon", "stop")
    thread.join(timeout=30)
    conn.close()
    assert run.code == 0, run.err
    assert result and result[0]["reply"]["handled"] == 1  # answered, not cut off
    agent = fleet.agents()[0]
    assert agent["state"] == "Running"  # agents keep running; the next daemon re-adopts them
    assert fleet.cli("daemon", "start").code == 0
    assert _send(fleet, session, "again")["handled"] == 2
