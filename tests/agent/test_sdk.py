"""The agent SDK against a fake daemon: hello, heartbeats, handlers, ordering, state,
reconnection with backoff, stopping. Every wait is on a condition with a generous
deadline; no test asserts that something was fast."""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from clawctl.agent import Agent as LazyAgent
from clawctl.agent.sdk import CLIENT, MAX_ERROR_TEXT, Agent, Session, error_text
from clawctl.errors import ClawctlError, DaemonUnavailable, NotFound
from tests.agent.conftest import AgentFactory
from tests.agent.fakedaemon import PATIENCE, FakeDaemon

# ------------------------------------------------------------------ from_env


def test_from_env_names_every_missing_variable() -> None:
    with pytest.raises(ClawctlError) as caught:
        Agent.from_env({})
    assert "CLAWCTL_SOCKET, CLAWCTL_AGENT_ID, CLAWCTL_TOKEN are not set" in caught.value.message
    assert "clawctl daemon" in caught.value.message
    for name in ("CLAWCTL_SOCKET", "CLAWCTL_AGENT_ID", "CLAWCTL_TOKEN"):
        env = {"CLAWCTL_SOCKET": "/run/x.sock", "CLAWCTL_AGENT_ID": "a-0", "CLAWCTL_TOKEN": "t"}
        env[name] = ""  # empty counts as missing
        with pytest.raises(ClawctlError, match=f"^{name} is not set"):
            Agent.from_env(env)


def test_from_env_reads_identity_and_options() -> None:
    agent = Agent.from_env({"CLAWCTL_SOCKET": "/run/x.sock", "CLAWCTL_AGENT_ID": "a-0", "CLAWCTL_TOKEN": "t",
                            "CLAWCTL_POOL": "p", "CLAWCTL_FLEET": "f"}, workers=2)
    assert (agent.socket_path, agent.agent_id, agent.pool, agent.fleet) == ("/run/x.sock", "a-0", "p", "f")
    assert not agent.connected
    assert LazyAgent is Agent  # re-exported from clawctl.agent


def test_from_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CLAWCTL_SOCKET", "CLAWCTL_AGENT_ID", "CLAWCTL_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ClawctlError, match="CLAWCTL_SOCKET"):
        Agent.from_env()


def test_calls_before_start_fail_at_once() -> None:
    agent = Agent("/nonexistent.sock", "a-0", "t")
    with pytest.raises(ClawctlError, match="not started"):
        agent.get_state("s-1")


# ------------------------------------------------------------ hello, ready, heartbeats


def test_hello_then_ready_then_heartbeats(daemon: FakeDaemon, new_agent: AgentFactory, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ready = tmp_path / "ready"
    monkeypatch.setenv("CLAWCTL_READY_FILE", str(ready))
    seen_at_hello: list[bool] = []
    daemon.before_hello = lambda _agent_id: seen_at_hello.append(ready.exists())
    agent = new_agent("a-0", "p")
    assert agent.wait_connected(PATIENCE)
    hello = daemon.calls("hello")[0]
    assert hello.params == {"version": 1, "agent_id": "a-0", "token": "token-of-a-0", "client": CLIENT}
    assert CLIENT.startswith("clawctl-agent/")
    assert seen_at_hello == [False]  # not ready before the hello...
    daemon.wait(ready.exists, "the ready file")  # ...ready after it
    assert agent.identity["pool"] == "p" and agent.connections == 1
    daemon.wait(lambda: len(daemon.calls("heartbeat", "a-0")) >= 3, "three heartbeats")
    assert all(r.params == {} and r.conn == hello.conn for r in daemon.calls("heartbeat"))


def test_a_refused_hello_is_retried(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    agent = new_agent("a-0", "p", start=False)
    daemon.agents["a-0"] = ("p", "another-token")  # the daemon does not know this token (yet)
    agent.start()
    daemon.wait(lambda: len(daemon.calls("hello")) >= 3, "repeated hellos")
    assert not agent.connected
    daemon.agents["a-0"] = ("p", "token-of-a-0")  # e.g. the new daemon adopted the agent
    assert agent.wait_connected(PATIENCE)


# ------------------------------------------------------------ messages and replies


def test_the_handler_return_value_is_the_reply(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    agent = new_agent("a-0", "p", start=False)
    got: list[tuple[Session, Any]] = []

    @agent.on_message
    def answer(session: Session, message: Any) -> Any:
        got.append((session, message))
        return {"you said": message}

    agent.start()
    sid = daemon.open_session("p", key="k1")
    reply = daemon.message(sid, {"text": "hi", "n": [1, 2]})
    assert reply == {"session": sid, "message_id": reply["message_id"], "message": {"you said": {"text": "hi",
                                                                                                 "n": [1, 2]}}}
    assert got == [(Session(sid, "p", "k1"), {"text": "hi", "n": [1, 2]})]
    assert daemon.message(sid, None)["message"] == {"you said": None}


def test_a_failing_handler_sends_an_error_reply_and_logs_the_traceback(
        daemon: FakeDaemon, new_agent: AgentFactory, caplog: pytest.LogCaptureFixture) -> None:
    agent = new_agent("a-0", "p", start=False)

    @agent.on_message
    def answer(_session: Session, message: Any) -> Any:
        if message == "long":
            raise RuntimeError("x" * 5000)
        raise ValueError("cannot parse\nsecond line")

    agent.start()
    sid = daemon.open_session("p")
    with caplog.at_level(logging.ERROR, logger="clawctl.agent"):
        reply = daemon.message(sid, "boom")
        long = daemon.message(sid, "long")
    assert reply["error"] == "ValueError: cannot parse" and "message" not in reply
    assert len(long["error"]) == MAX_ERROR_TEXT and long["error"].startswith("RuntimeError: xxx")
    failures = [r for r in caplog.records if "on_message failed" in r.getMessage()]
    assert len(failures) == 2 and all(r.exc_info for r in failures)
    assert sid in failures[0].getMessage()


def test_error_text_is_one_line_within_the_limit() -> None:
    assert error_text(ValueError("")) == "ValueError"
    assert error_text(NotFound("no such thing", hint="h")) == "NotFound: no such thing"
    assert len(error_text(KeyError("k" * 2000))) == MAX_ERROR_TEXT


def test_a_reply_that_is_not_json_becomes_an_error(daemon: FakeDaemon, new_agent: AgentFactory,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    agent = new_agent("a-0", "p", start=False)
    agent.on_message(lambda _s, _m: {1, 2})  # a set: not JSON
    agent.start()
    sid = daemon.open_session("p")
    with caplog.at_level(logging.ERROR, logger="clawctl.agent"):
        reply = daemon.message(sid, "x")
    assert reply["error"].startswith("ProtocolError: cannot send the request")
    assert daemon.message(sid, "y")["error"]  # the agent keeps serving


def test_without_a_message_handler_the_reply_is_an_error(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    new_agent("a-0", "p")
    sid = daemon.open_session("p")
    assert daemon.message(sid, "x")["error"] == "agent a-0 has no message handler"


def test_messages_of_a_session_run_in_order_and_sessions_run_concurrently(
        daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    agent = new_agent("a-0", "p", start=False, workers=3)
    barrier = threading.Barrier(2, timeout=PATIENCE)
    lock = threading.Lock()
    seen: dict[str, list[int]] = {}
    active: dict[str, int] = {}
    overlaps: list[str] = []
    rng = random.Random(7)

    @agent.on_message
    def answer(session: Session, message: Any) -> Any:
        with lock:
            active[session.id] = active.get(session.id, 0) + 1
            if active[session.id] > 1:
                overlaps.append(session.id)
        try:
            if message == "meet":  # only passes if two sessions' handlers run at the same time
                barrier.wait()
            else:
                threading.Event().wait(rng.random() / 500)  # shuffle the interleaving a little
                with lock:
                    seen.setdefault(session.id, []).append(message)
            return message
        finally:
            with lock:
                active[session.id] -= 1

    agent.start()
    first, second = daemon.open_session("p"), daemon.open_session("p")
    meets = [daemon.post(first, "meet"), daemon.post(second, "meet")]
    assert all("message" in daemon.reply_to(mid) for mid in meets)

    sids = [daemon.open_session("p") for _ in range(4)]
    posted = [(sid, daemon.post(sid, n)) for n in range(25) for sid in sids]
    for _sid, mid in posted:
        daemon.reply_to(mid)
    assert seen == {sid: list(range(25)) for sid in sids}
    assert not overlaps
    replies = [r for r in daemon.calls("sessions.reply") if r.params["session"] in sids]
    for sid in sids:  # the replies of each session also reached the daemon in order
        assert [r.params["message"] for r in replies if r.params["session"] == sid] == list(range(25))


# ------------------------------------------------------------ open, closing, state


def test_on_open_gets_the_carried_state(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    agent = new_agent("a-0", "p", start=False)
    opened: list[tuple[Session, dict[str, Any]]] = []
    agent.on_open(lambda session, state: opened.append((session, state)))
    agent.start()
    sid = daemon.open_session("p", key="k", state={"turns": 3})
    daemon.wait(lambda: opened, "on_open")
    assert opened == [(Session(sid, "p", "k"), {"turns": 3})]


def test_closing_runs_the_handler_then_acknowledges(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    agent = new_agent("a-0", "p", start=False)
    closing: list[tuple[str, str, float]] = []

    @agent.on_closing
    def save(session: Session, reason: str, deadline: float) -> None:
        agent.set_state(session, {"saved": True})
        closing.append((session.id, reason, deadline))

    agent.start()
    sid = daemon.open_session("p")
    daemon.push("a-0", "session.closing", {"session": sid, "reason": "idle", "deadline": 5})
    daemon.wait(lambda: daemon.calls("sessions.close"), "the close acknowledgement")
    assert closing == [(sid, "idle", 5.0)]
    methods = [r.method for r in daemon.calls(agent_id="a-0") if r.params.get("session") == sid]
    assert methods == ["session.state.set", "sessions.close"]
    assert daemon.calls("sessions.close")[0].params == {"session": sid}
    assert daemon.states[sid][0] == {"saved": True}


def test_closing_is_acknowledged_even_when_the_handler_fails(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    agent = new_agent("a-0", "p", start=False)

    @agent.on_closing
    def save(_session: Session, _reason: str, _deadline: float) -> None:
        raise OSError("disk full")

    agent.start()
    sid = daemon.open_session("p")
    daemon.push("a-0", "session.closing", {"session": sid, "reason": "drain", "deadline": 1.5})
    daemon.wait(lambda: daemon.calls("sessions.close"), "the close acknowledgement")


def test_state_get_and_set(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    agent = new_agent("a-0", "p")
    sid = daemon.open_session("p", state={"a": 1})
    session = Session(sid, "p")
    assert agent.get_state(session) == {"a": 1}
    assert agent.set_state(session, {"a": 2, "b": [1]}) == 1
    assert agent.set_state(sid, {"a": 3}) == 2
    assert agent.get_state(sid) == {"a": 3}
    with pytest.raises(NotFound, match="session s-nope not found"):
        agent.get_state("s-nope")  # the daemon's error class, message and all


def test_open_send_show_and_close_between_agents(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    front = new_agent("front-0", "front")
    back = new_agent("back-0", "back", start=False)
    back.on_message(lambda session, message: {"back": message, "pool": session.pool})
    back.start()
    session = front.open_session("back", key="user-7")
    assert (session.pool, session.key) == ("back", "user-7")
    assert front.send(session, "hello", timeout=20) == {"back": "hello", "pool": "back"}
    assert daemon.calls("sessions.send")[0].params == {"session": session.id, "message": "hello", "timeout": 20}
    assert front.show_session(session)["id"] == session.id
    assert front.close_session(session)["state"] == "Closed"
    with pytest.raises(NotFound):
        front.open_session("nowhere")


def test_a_send_answered_with_an_error_raises(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    front = new_agent("front-0", "front")
    back = new_agent("back-0", "back", start=False)

    def fail(_session: Session, _message: Any) -> Any:
        raise KeyError("nope")

    back.on_message(fail)
    back.start()
    session = front.open_session("back")
    with pytest.raises(ClawctlError, match="back-0 failed to handle the message: KeyError: 'nope'"):
        front.send(session, "x")


# ------------------------------------------------------------ reconnection


def test_reconnects_after_the_connection_drops(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    agent = new_agent("a-0", "p", start=False)
    agent.on_message(lambda _s, m: m)
    agent.start()
    assert agent.wait_connected(PATIENCE)
    sid = daemon.open_session("p")
    assert daemon.message(sid, 1)["message"] == 1
    daemon.drop()
    daemon.wait(lambda: len(daemon.calls("hello")) == 2, "the second hello")
    assert agent.wait_connected(PATIENCE)
    hellos = daemon.calls("hello")
    assert hellos[0].params == hellos[1].params and hellos[0].conn != hellos[1].conn  # same token, new socket
    assert daemon.message(sid, 2)["message"] == 2
    daemon.wait(lambda: any(r.conn == hellos[1].conn for r in daemon.calls("heartbeat")), "heartbeats again")
    assert agent.connections == 2


def test_calls_made_while_the_daemon_is_down_wait_for_it(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    agent = new_agent("a-0", "p")
    sid = daemon.open_session("p", state={"kept": 1})
    assert agent.wait_connected(PATIENCE)
    daemon.stop()  # the daemon restarts: socket gone for a while
    daemon.wait(lambda: not agent.connected, "the agent to notice")
    outcome: list[Any] = []
    caller = threading.Thread(target=lambda: outcome.append(agent.get_state(sid)))
    caller.start()
    daemon.wait(lambda: len(daemon.calls("hello")) == 1 and caller.is_alive(), "the call to be waiting")
    daemon.start()
    caller.join(PATIENCE)
    assert outcome == [{"kept": 1}]
    assert agent.connections == 2


def test_a_call_gives_up_after_connect_timeout(sockdir: str) -> None:
    agent = Agent(os.path.join(sockdir, "absent.sock"), "a-0", "t", connect_timeout=0.2, backoff_max=0.1)
    agent.start()
    try:
        with pytest.raises(DaemonUnavailable, match="not connected to the daemon within 0.2s"):
            agent.get_state("s-1")
    finally:
        agent.stop()


def test_backoff_doubles_with_jitter_up_to_the_cap_and_restarts_after_a_connection(sockdir: str) -> None:
    fake = FakeDaemon(os.path.join(sockdir, "late.sock"))  # not listening yet
    env = fake.add_agent("a-0", "p")
    pauses: list[float] = []
    failures_before_start = 12

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == failures_before_start:
            fake.start()

    agent = Agent.from_env(env, backoff_min=0.05, backoff_max=2.0, sleep=sleep, rng=random.Random(1))
    agent.start()
    try:
        assert agent.wait_connected(PATIENCE)
        assert len(pauses) == failures_before_start
        bases = [min(0.05 * 2**i, 2.0) for i in range(failures_before_start)]
        for pause, base in zip(pauses, bases):
            assert base / 2 <= pause <= base  # equal jitter around an exponential base
        doubling = [p for p, base in zip(pauses, bases) if base * 2 <= 2.0]  # 0.05 ... 0.8, then 1.6, 2.0...
        assert len(doubling) == 5 and doubling == sorted(doubling)  # equal jitter never shrinks a doubling
        assert min(pauses[6:]) >= 1.0 and max(pauses) <= 2.0  # capped at 2 s, jittered within [1, 2]
        assert pauses[-1] > 10 * pauses[0]
        assert len(set(pauses)) == len(pauses)  # jittered, not a fixed schedule
    finally:
        agent.stop()
        fake.stop()
    assert not fake.errors


# ------------------------------------------------------------ stopping


def test_stop_ends_run_promptly(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    agent = new_agent("a-0", "p", start=False)
    runner = threading.Thread(target=agent.run)
    runner.start()
    assert agent.wait_connected(PATIENCE)
    agent.stop()
    runner.join(PATIENCE)
    assert not runner.is_alive()
    assert agent.stopping and not agent.connected
    daemon.wait(lambda: not daemon.connected_agents(), "the daemon to see the connection close")


def test_stop_ends_run_while_the_daemon_is_unreachable(sockdir: str) -> None:
    agent = Agent(os.path.join(sockdir, "absent.sock"), "a-0", "t", backoff_min=0.05, backoff_max=0.1)
    runner = threading.Thread(target=agent.run)
    runner.start()
    agent.stop()
    runner.join(PATIENCE)
    assert not runner.is_alive()
    with pytest.raises(ClawctlError, match="stopped"):
        agent.start()


def test_stop_lets_a_running_handler_reply(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    agent = new_agent("a-0", "p", start=False)
    entered, release = threading.Event(), threading.Event()

    @agent.on_message
    def slow(_session: Session, message: Any) -> Any:
        entered.set()
        release.wait(PATIENCE)
        return message

    agent.start()
    sid = daemon.open_session("p")
    mid = daemon.post(sid, "late")
    assert entered.wait(PATIENCE)
    stopper = threading.Thread(target=agent.stop)
    stopper.start()
    daemon.wait(lambda: agent.stopping, "the stop to begin")
    release.set()
    assert daemon.reply_to(mid)["message"] == "late"
    stopper.join(PATIENCE)
    assert not stopper.is_alive()


def test_stop_from_inside_a_handler(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    agent = new_agent("a-0", "p", start=False)

    @agent.on_message
    def quit_(_session: Session, _message: Any) -> Any:
        agent.stop()
        return "bye"

    runner = threading.Thread(target=agent.run)
    runner.start()
    sid = daemon.open_session("p")
    assert daemon.message(sid, "stop")["message"] == "bye"  # its own reply still goes out
    runner.join(PATIENCE)
    assert not runner.is_alive()
    daemon.wait(lambda: not daemon.connected_agents(), "the connection to close")


# ------------------------------------------------------------ processes


def test_importing_the_sdk_stays_light() -> None:
    heavy = ["sqlalchemy", "alembic", "typer", "rich", "psutil", "apscheduler", "ruamel", "jsonschema",
             "clawctl.registry", "clawctl.runtime", "clawctl.daemon", "clawctl.config", "clawctl.cli"]
    code = ("import json, sys\n"
            "import clawctl.agent\n"
            "before = 'clawctl.agent.sdk' in sys.modules\n"
            "from clawctl.agent import Agent\n"
            "bad = [m for m in sys.modules if any(m == h or m.startswith(h + '.') for h in %r)]\n"
            "print(json.dumps([before, bad]))\n") % (heavy,)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(done.stdout) == [False, []]


def test_a_failing_handler_logs_its_traceback_to_stderr(daemon: FakeDaemon) -> None:
    env = {**os.environ, **daemon.add_agent("a-0", "p")}
    code = ("from clawctl.agent import Agent\n"
            "agent = Agent.from_env()\n"
            "def boom(session, message):\n"
            "    raise ZeroDivisionError('no way')\n"
            "agent.on_message(boom)\n"
            "agent.run()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        sid = daemon.open_session("p")
        assert daemon.message(sid, 1)["error"] == "ZeroDivisionError: no way"
        proc.terminate()
        _, stderr = proc.communicate(timeout=PATIENCE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=PATIENCE)
    assert proc.returncode == 0  # SIGTERM: run() returned, the program ended normally
    assert "on_message failed for session" in stderr
    assert "Traceback (most recent call last)" in stderr and "ZeroDivisionError: no way" in stderr


def test_handler_threads_start_on_demand_up_to_the_bound(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    agent = new_agent("a-0", "p", start=False, workers=2)
    release = threading.Event()
    lock = threading.Lock()
    active: list[int] = [0, 0]  # now, most

    @agent.on_message
    def slow(_session: Session, message: Any) -> Any:
        with lock:
            active[0] += 1
            active[1] = max(active)
        release.wait(PATIENCE)
        with lock:
            active[0] -= 1
        return message

    def handler_threads() -> int:
        return sum(t.name.startswith("clawctl-agent-a-0-handler") for t in threading.enumerate())

    agent.start()
    assert agent.wait_connected(PATIENCE)
    assert handler_threads() == 0  # an idle agent costs no handler thread
    posted = [daemon.post(daemon.open_session("p"), n) for n in range(3)]
    daemon.wait(lambda: active[0] == 2, "two handlers at once")
    assert handler_threads() == 2
    release.set()
    assert [daemon.reply_to(mid)["message"] for mid in posted] == [0, 1, 2]
    assert active[1] == 2 and handler_threads() == 2


def test_stop_ends_run_while_hello_hangs(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    in_hello, release = threading.Event(), threading.Event()

    def hang(_agent_id: str | None) -> None:
        in_hello.set()
        release.wait(PATIENCE)

    daemon.before_hello = hang
    agent = new_agent("a-0", "p", start=False)
    runner = threading.Thread(target=agent.run)
    runner.start()
    try:
        assert in_hello.wait(PATIENCE)
        agent.stop()
        runner.join(PATIENCE)
        assert not runner.is_alive() and not agent.connected
    finally:
        release.set()


def test_a_message_redelivered_while_it_is_handled_runs_once(daemon: FakeDaemon, new_agent: AgentFactory) -> None:
    agent = new_agent("a-0", "p", start=False)
    entered, release = threading.Event(), threading.Event()
    calls: list[Any] = []

    @agent.on_message
    def slow(_session: Session, message: Any) -> Any:
        if message == "probe":
            return message
        calls.append(message)
        entered.set()
        release.wait(PATIENCE)
        return message

    agent.start()
    sid, other = daemon.open_session("p"), daemon.open_session("p")
    data = {"session": sid, "message_id": "m-dup", "message": "once"}
    daemon.push("a-0", "session.message", data)
    assert entered.wait(PATIENCE)
    daemon.push("a-0", "session.message", data)  # the daemon delivers it again (at-least-once)
    after = daemon.post(sid, "next")
    daemon.message(other, "probe")  # read after the duplicate on the same socket: it has been seen
    release.set()
    assert daemon.reply_to(after)["message"] == "next"
    assert calls == ["once", "next"]  # the duplicate was skipped, not handled twice
    replies = [r.params["message_id"] for r in daemon.calls("sessions.reply") if r.params["session"] == sid]
    assert replies == ["m-dup", after]
