"""The control socket through a real daemon: sessions end to end, and every line an agent or a
stranger might try to cross (over the raw socket), with the daemon still serving afterwards."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import struct
from pathlib import Path
from typing import Any

import pytest

from clawctl.protocol.framing import FrameDecoder, encode_frame
from tests.daemon.conftest import FLEET, PY, Fleet, pool_yaml

pytestmark = pytest.mark.timeout(120)

SPY = str(Path(__file__).parent / "agents" / "spy.py")
WORKER = [PY, "-m", "clawctl.agent.examples.worker"]
ECHO = [PY, "-m", "clawctl.agent.examples.echo"]
FAST_HEALTH = """
health:
  readiness: notify
  heartbeatInterval: 200ms
  heartbeatTimeout: 2s
"""


def _apply(fleet: Fleet, text: str) -> None:
    path = fleet.write("fleet.yaml", FLEET + text)
    run = fleet.cli("apply", str(path), "--wait", "--timeout", "60")
    assert run.code == 0, run.out + run.err


def _json(fleet: Fleet, *args: str) -> Any:
    run = fleet.cli(*args, "-o", "json")
    assert run.code == 0, run.out + run.err
    return json.loads(run.out)


def _send(fleet: Fleet, session: str, message: Any) -> Any:
    return _json(fleet, "sessions", "send", session, json.dumps(message), "--json")["reply"]


def _agent_pid(fleet: Fleet, agent_id: str) -> int:
    agent = next(a for a in fleet.agents() if a["id"] == agent_id)
    return int(agent["pid"])


# ------------------------------------------------------------------ raw socket
class Raw:
    """A connection that sends whatever bytes a test wants and reads what comes back."""

    def __init__(self, home: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(home / "control.sock"))
        self.decoder = FrameDecoder()
        self.frames: list[dict[str, Any]] = []
        self.ids = 0

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str, **params: Any) -> dict[str, Any]:
        self.ids += 1
        self.send_bytes(encode_frame({"id": self.ids, "method": method, "params": params}))
        return self.answer(self.ids)

    def answer(self, request_id: int | None) -> dict[str, Any]:
        while True:
            for frame in self.frames:
                if "event" not in frame and frame.get("id") == request_id:
                    self.frames.remove(frame)
                    return frame
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the daemon")
            self.frames += self.decoder.feed(chunk)

    def closed_by_daemon(self) -> bool:
        """Whether the daemon closed the connection (within the socket timeout); closes our end too."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.close()

    def close(self) -> None:
        self.sock.close()


def _code(frame: dict[str, Any]) -> str:
    return str(frame["error"]["code"])


@pytest.fixture
def spied(fleet: Fleet) -> Fleet:
    _apply(fleet, pool_yaml("spy", [PY, SPY], extra=FAST_HEALTH)
           + pool_yaml("echo", ECHO, replicas=2, extra=FAST_HEALTH))
    return fleet


def test_sessions_open_send_show_list_close_through_the_cli(spied: Fleet) -> None:
    session = _json(spied, "sessions", "open", "echo", "--key", "customer-42")
    assert session["pool"] == "echo" and session["state"] == "Open" and session["key"] == "customer-42"
    assert session["agent_id"] in ("echo-0", "echo-1")
    again = _json(spied, "sessions", "open", "echo", "--key", "customer-42")
    assert again["id"] == session["id"]  # a key names one conversation

    run = spied.cli("sessions", "send", session["id"], "hello there")
    assert run.code == 0 and run.out == "hello there\n", run.err
    assert _send(spied, session["id"], {"n": [1, 2]}) == {"n": [1, 2]}

    shown = _json(spied, "sessions", "show", session["id"])
    assert [(h["role"], h["content"]) for h in shown["history"]] == [
        ("user", "hello there"), ("agent", "hello there"), ("user", {"n": [1, 2]}), ("agent", {"n": [1, 2]})]
    listed = _json(spied, "sessions", "list", "--pool", "echo")["sessions"]
    assert [s["id"] for s in listed] == [session["id"]]

    run = spied.cli("sessions", "close", session["id"])
    assert run.code == 0, run.err
    spied.wait_for(lambda: _json(spied, "sessions", "show", session["id"])["state"] == "Closed",
                   what="the graceful close to finish (the SDK acknowledges it)")
    run = spied.cli("sessions", "send", session["id"], "anyone?")
    assert run.code == 1 and "is Closed" in run.err

    run = spied.cli("sessions", "open", "nosuchpool")
    assert run.code == 1 and "pool nosuchpool does not exist" in run.err
    run = spied.cli("sessions", "show", "0" * 32)
    assert run.code == 1 and "does not exist" in run.err


def test_least_connections_keeps_agents_within_one(spied: Fleet) -> None:
    for _ in range(9):
        _json(spied, "sessions", "open", "echo")
    owners = [s["agent_id"] for s in _json(spied, "sessions", "list", "--pool", "echo")["sessions"]]
    assert sorted(owners.count(a) for a in ("echo-0", "echo-1")) == [4, 5]


def test_raw_socket_attacks_are_refused_and_the_daemon_keeps_serving(spied: Fleet) -> None:
    home = spied.home
    victim = _json(spied, "sessions", "open", "echo")
    identity = json.loads((home / "agents" / "t" / "spy-0" / "identity.json").read_text())

    # A request before hello, a forged agent id, a stolen token used from outside the agent's tree.
    raw = Raw(home)
    assert _code(raw.request("sessions.list")) == "unauthenticated"
    assert _code(raw.request("hello", version=1, agent_id="echo-0", token=identity["token"])) == "unauthenticated"
    assert raw.closed_by_daemon()
    for claim in ({"agent_id": "nobody-7", "token": identity["token"]},
                  {"agent_id": identity["agent_id"], "token": identity["token"]},  # stolen: right id and token
                  {"agent_id": identity["agent_id"], "token": "x" * 43},
                  {"agent_id": identity["agent_id"]}):
        raw = Raw(home)
        answer = raw.request("hello", version=1, **claim)
        assert _code(answer) == "unauthenticated", claim
        assert raw.closed_by_daemon()

    # Malformed and oversized frames: one error, then the connection is closed.
    for junk in (struct.pack(">I", 64 * 1024 * 1024), struct.pack(">I", 5) + b"nope!", struct.pack(">I", 2) + b"[]",
                 struct.pack(">I", 3) + b"\xff\xfe\xfd"):
        raw = Raw(home)
        raw.send_bytes(junk)
        answer = raw.answer(None)
        assert _code(answer) in ("too-large", "invalid-request")
        assert raw.closed_by_daemon()

    # An operator connection: unknown methods, bad params, a second hello are refused, the connection stays.
    raw = Raw(home)
    assert raw.request("hello", version=1)["result"]["role"] == "operator"
    assert _code(raw.request("no.such.method")) == "invalid-request"
    assert _code(raw.request("messages.send")) == "invalid-request"
    assert _code(raw.request("sessions.open", pool=7)) == "invalid-request"
    assert _code(raw.request("hello", version=1)) == "invalid-request"
    assert _code(raw.request("sessions.reply", session=victim["id"], message_id="m", message=1)) == "forbidden"
    assert _code(raw.request("hello", version=99)) == "invalid-request"
    raw.close()

    # Nothing was lost and the daemon still answers.
    assert _send(spied, victim["id"], "still here") == "still here"
    with sqlite3.connect(home / "registry.db") as db:
        denials = db.execute("select count(*) from audit where action = 'hello' and outcome = 'denied'").fetchone()
    assert denials[0] >= 5


def test_an_agent_reaches_only_its_own_sessions(spied: Fleet) -> None:
    victim = _json(spied, "sessions", "open", "echo")
    _send(spied, victim["id"], "secret")
    own = _json(spied, "sessions", "open", "spy")

    def probe(method: str, **params: Any) -> Any:
        return _send(spied, own["id"], {"probe": "call", "method": method, "params": params})

    for method, params in (("session.state.get", {"session": victim["id"]}),
                           ("session.state.set", {"session": victim["id"], "state": {"stolen": True}}),
                           ("sessions.show", {"session": victim["id"]}),
                           ("sessions.send", {"session": victim["id"], "message": "hi"}),
                           ("sessions.close", {"session": victim["id"]})):
        answer = probe(method, **params)
        assert answer.get("class") == "PolicyDenied", (method, answer)
    answer = probe("sessions.reply", session=victim["id"], message_id="0" * 32, message="forged")
    assert answer.get("class") == "NotFound"
    answer = probe("sessions.open", pool="echo")  # no CommunicationPolicy: default deny
    assert answer.get("class") == "PolicyDenied" and "no CommunicationPolicy rule" in answer["error"]
    assert probe("sessions.list")["ok"]["sessions"][0]["id"] == own["id"]  # its own sessions only
    assert probe("session.state.get", session=own["id"])["ok"]["data"] == {}

    shown = _json(spied, "sessions", "show", victim["id"])
    assert shown["state"] == "Open" and shown["data"] == {} and len(shown["history"]) == 2


def test_a_process_inside_an_agent_can_never_act_as_the_operator(spied: Fleet) -> None:
    own = _json(spied, "sessions", "open", "spy")
    assert _send(spied, own["id"], {"probe": "operator"}).startswith("refused: a process inside an agent")
    # Double-forked out of the agent's process tree, it is still in the agent's cgroup.
    escaped = _send(spied, own["id"], {"probe": "operator-escaped"})
    assert escaped.startswith("refused:"), escaped


PERSISTENT = FAST_HEALTH + """
sessions:
  retention: persistent
"""


def test_a_persistent_session_moves_with_its_state_when_its_agent_dies(fleet: Fleet) -> None:
    _apply(fleet, pool_yaml("work", WORKER, replicas=2, extra=PERSISTENT))
    session = _json(fleet, "sessions", "open", "work")
    assert _send(fleet, session["id"], "a")["handled"] == 1
    assert _send(fleet, session["id"], "b")["handled"] == 2
    owner = session["agent_id"]
    os.kill(_agent_pid(fleet, owner), signal.SIGKILL)
    moved = fleet.wait_for(lambda: (s := _json(fleet, "sessions", "show", session["id"]))["agent_id"] != owner and s,
                           what="the session to move to the other agent")
    assert moved["state"] == "Open" and moved["data"] == {"handled": 2}
    reply = _send(fleet, session["id"], "c")
    assert reply["handled"] == 3 and reply["worker"] != owner


def test_a_hung_agent_is_killed_and_its_sessions_move(fleet: Fleet) -> None:
    _apply(fleet, pool_yaml("work", WORKER, replicas=2, extra=PERSISTENT))
    session = _json(fleet, "sessions", "open", "work")
    assert _send(fleet, session["id"], "a")["handled"] == 1
    owner = session["agent_id"]
    pid = _agent_pid(fleet, owner)
    os.kill(pid, signal.SIGSTOP)  # frozen: no heartbeats
    try:
        fleet.wait_for(lambda: any(e["reason"] == "Hung" and e["target"] == owner for e in fleet.events()),
                       what="the daemon to find the agent hung", timeout=30)
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    fleet.wait_for(lambda: _json(fleet, "sessions", "show", session["id"])["agent_id"] != owner,
                   what="the session to move")
    assert _send(fleet, session["id"], "b")["handled"] == 2
    events = fleet.events()
    assert any(e["reason"] == "Exited" and e["target"] == owner and "Hung" in e["message"] for e in events)


def test_idle_sessions_close_and_are_kept_for_inspection(fleet: Fleet) -> None:
    _apply(fleet, pool_yaml("echo", ECHO, extra=FAST_HEALTH + "sessions:\n  idleTimeout: 1s\n  cleanup: immediate\n"))
    session = _json(fleet, "sessions", "open", "echo")
    fleet.wait_for(lambda: _json(fleet, "sessions", "show", session["id"])["state"] == "Closed",
                   what="the idle session to close", timeout=15)
    shown = _json(fleet, "sessions", "show", session["id"])
    assert shown["close_reason"] == "idle-timeout"
    assert [s["id"] for s in _json(fleet, "sessions", "list", "--state", "closed")["sessions"]] == [session["id"]]


def test_eager_pools_keep_a_session_ready_on_each_agent(fleet: Fleet) -> None:
    _apply(fleet, pool_yaml("echo", ECHO, replicas=2, extra=FAST_HEALTH + "sessions:\n  creation: eager\n"))
    ready = fleet.wait_for(lambda: len(s := _json(fleet, "sessions", "list")["sessions"]) == 2 and s,
                           what="one pre-opened session per agent")
    assert sorted(s["agent_id"] for s in ready) == ["echo-0", "echo-1"]
    opened = _json(fleet, "sessions", "open", "echo", "--key", "k1")
    assert opened["id"] in {s["id"] for s in ready} and opened["key"] == "k1"
    fleet.wait_for(lambda: len(_json(fleet, "sessions", "list")["sessions"]) == 3, what="a replacement to be opened")


def test_a_full_pool_is_a_clear_error(fleet: Fleet) -> None:
    _apply(fleet, pool_yaml("echo", ECHO, extra=FAST_HEALTH + "capacity: 1\n"))
    _json(fleet, "sessions", "open", "echo")
    run = fleet.cli("sessions", "open", "echo")
    assert run.code == 1 and "pool echo is full: 1 agent × capacity 1 sessions" in run.err


def test_sessions_and_agents_survive_a_daemon_restart(fleet: Fleet) -> None:
    from clawctl.daemon.instance import read_info

    _apply(fleet, pool_yaml("work", WORKER, extra=PERSISTENT))
    session = _json(fleet, "sessions", "open", "work")
    assert _send(fleet, session["id"], "a")["handled"] == 1
    info = read_info(fleet.home)
    assert info is not None
    os.kill(info.pid, signal.SIGKILL)
    fleet.wait_for(lambda: fleet.cli("daemon", "status").code != 0, what="the daemon to be gone")
    assert fleet.cli("daemon", "start").code == 0
    # The agent reconnects (backoff) and the session is where it was, with its state.
    reply = fleet.wait_for(lambda: (r := fleet.cli("sessions", "send", session["id"], "b", "--timeout", "5",
                                                   "-o", "json")).code == 0 and json.loads(r.out)["reply"],
                           what="the session to answer again", timeout=30)
    assert reply["handled"] == 2 and reply["worker"] == session["agent_id"]


def test_the_socket_is_private(spied: Fleet) -> None:
    assert (spied.home / "control.sock").stat().st_mode & 0o777 == 0o600


def test_a_coordinator_hands_work_to_another_pool_where_the_policy_allows(fleet: Fleet) -> None:
    policy = """
---
apiVersion: clawctl/v1
kind: CommunicationPolicy
metadata: {name: routing}
spec:
  rules:
    - from: coordination
      messages: [work]
"""
    _apply(fleet, pool_yaml("coordination", [PY, "-m", "clawctl.agent.examples.coordinator", "--target-pool", "work"],
                            extra=FAST_HEALTH)
           + pool_yaml("work", WORKER, extra=FAST_HEALTH) + policy)
    session = _json(fleet, "sessions", "open", "coordination")
    reply = _send(fleet, session["id"], "inspect line 4")
    assert reply["coordinator"] == "coordination-0"
    assert reply["result"] == {"worker": "work-0", "echo": "inspect line 4", "handled": 1}
    target = _json(fleet, "sessions", "show", reply["via"])
    assert target["pool"] == "work" and target["opened_by"] == "coordination-0"
    assert _send(fleet, session["id"], "again")["result"]["handled"] == 2  # the same target session
