"""The example agents as real processes against the fake daemon. Every process a test
starts is ended by its pid in a ``finally`` (SIGTERM, then SIGKILL if it lingers)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.agent.fakedaemon import PATIENCE, FakeDaemon


class Program:
    """One example agent process; its stdout and stderr go to files (no pipe can fill up)."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], logs: Path) -> None:
        self.name = name
        self.out = logs / f"{name}.out"
        self.err = logs / f"{name}.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(argv, env=dict(env), stdout=out, stderr=err, stdin=subprocess.DEVNULL)

    def stop(self) -> int:
        """SIGTERM and wait; the exit code (negative: killed by that signal)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(PATIENCE)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(PATIENCE)

    def log(self) -> str:
        return self.out.read_text() + self.err.read_text()


@pytest.fixture
def programs(tmp_path: Path) -> Iterator[list[Program]]:
    """Started programs, each ended by pid at teardown whatever the test did."""
    started: list[Program] = []
    yield started
    for program in started:
        try:
            program.stop()
        except subprocess.TimeoutExpired:
            pass
        finally:
            program.kill()


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWCTL_")}
    env["CLAWCTL_HOME"] = os.environ["CLAWCTL_HOME"]
    return env


def start(programs: list[Program], tmp_path: Path, name: str, args: list[str], env: Mapping[str, str],
          argv: list[str] | None = None) -> Program:
    """Start example ``name`` with ``args`` (or the command ``argv``), ended at teardown."""
    argv = argv or [sys.executable, "-m", f"clawctl.agent.examples.{name}", *args]
    program = Program(name, argv, env, tmp_path)
    programs.append(program)
    return program


def wait_log(daemon: FakeDaemon, program: Program, pattern: str) -> None:
    daemon.wait(lambda: re.search(pattern, program.log()) or program.proc.poll() is not None, f"/{pattern}/")
    assert re.search(pattern, program.log()), program.log()


def test_echo_without_a_daemon_keeps_its_plain_behaviour(daemon: FakeDaemon, programs: list[Program],
                                                          tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    env = {**base_env(), "CLAWCTL_AGENT_ID": "echo-9", "CLAWCTL_READY_FILE": str(ready)}
    echo = start(programs, tmp_path, "echo", ["--role", "greeter", "--interval", "0.05"], env)
    wait_log(daemon, echo, r"agent=echo-9 .*role=greeter started")
    wait_log(daemon, echo, "heartbeat 2")
    assert ready.exists()
    assert echo.stop() == 0
    assert "stopping on signal" in echo.log()
    assert not daemon.calls()  # it never connected


def test_echo_under_a_daemon_replies_with_the_message(daemon: FakeDaemon, programs: list[Program],
                                                      tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    env = {**base_env(), **daemon.add_agent("echo-0", "echo"), "CLAWCTL_READY_FILE": str(ready)}
    echo = start(programs, tmp_path, "echo", ["--role", "r", "--interval", "0.05"], env)
    sid = daemon.open_session("echo")
    assert daemon.message(sid, {"hello": ["world", 1]})["message"] == {"hello": ["world", 1]}
    assert daemon.message(sid, "again")["message"] == "again"
    assert ready.exists()
    daemon.wait(lambda: daemon.calls("heartbeat", "echo-0"), "an SDK heartbeat")
    wait_log(daemon, echo, "heartbeat 2")  # the log lines go on as before
    assert echo.stop() == 0
    daemon.wait(lambda: not daemon.connected_agents(), "the connection to close")


def test_echo_refuses_an_incomplete_environment(daemon: FakeDaemon, programs: list[Program], tmp_path: Path) -> None:
    env = {**base_env(), "CLAWCTL_SOCKET": daemon.path}
    echo = start(programs, tmp_path, "echo", [], env)
    assert echo.proc.wait(PATIENCE) == 2
    assert "CLAWCTL_AGENT_ID, CLAWCTL_TOKEN are not set" in echo.log()


def test_worker_counts_messages_in_the_session_state(daemon: FakeDaemon, programs: list[Program],
                                                     tmp_path: Path) -> None:
    env = {**base_env(), **daemon.add_agent("worker-0", "worker")}
    worker = start(programs, tmp_path, "worker", ["--service-time", "0.01"], env)
    first, second = daemon.open_session("worker"), daemon.open_session("worker", state={"handled": 41})
    assert daemon.message(first, "a")["message"] == {"worker": "worker-0", "echo": "a", "handled": 1}
    assert daemon.message(first, ["b"])["message"] == {"worker": "worker-0", "echo": ["b"], "handled": 2}
    assert daemon.message(second, "c")["message"] == {"worker": "worker-0", "echo": "c", "handled": 42}
    assert daemon.states[first][0] == {"handled": 2}
    assert daemon.states[second][0] == {"handled": 42}
    wait_log(daemon, worker, "worker agent=worker-0 .*started, service time 0.01s")
    assert worker.stop() == 0
    assert "stopping on signal" in worker.log()


def test_worker_reads_the_state_of_a_session_it_was_not_told_about(daemon: FakeDaemon, programs: list[Program],
                                                                   tmp_path: Path) -> None:
    env = {**base_env(), **daemon.add_agent("worker-0", "worker")}
    start(programs, tmp_path, "worker", [], env)
    sid = daemon.open_session("worker", state={"handled": 7}, announce=False)  # e.g. lost with a connection
    assert daemon.message(sid, "x")["message"] == {"worker": "worker-0", "echo": "x", "handled": 8}
    assert [r.params for r in daemon.calls("session.state.get", "worker-0")] == [{"session": sid}]
    daemon.drop()  # a daemon restart: the worker reconnects and goes on counting
    daemon.wait(lambda: len(daemon.calls("hello", "worker-0")) == 2, "the reconnection")
    assert daemon.message(sid, "y")["message"]["handled"] == 9


def test_coordinator_forwards_through_one_worker_session(daemon: FakeDaemon, programs: list[Program],
                                                         tmp_path: Path) -> None:
    worker_env = {**base_env(), **daemon.add_agent("worker-0", "worker")}
    coordinator_env = {**base_env(), **daemon.add_agent("coord-0", "coord")}
    start(programs, tmp_path, "worker", [], worker_env)
    coordinator = start(programs, tmp_path, "coordinator", ["--target-pool", "worker", "--timeout", "20"],
                        coordinator_env)
    sid = daemon.open_session("coord")
    first = daemon.message(sid, "one")["message"]
    via = first["via"]
    assert first == {"coordinator": "coord-0", "via": via,
                     "result": {"worker": "worker-0", "echo": "one", "handled": 1}}
    assert daemon.message(sid, "two")["message"] == {"coordinator": "coord-0", "via": via,
                                                     "result": {"worker": "worker-0", "echo": "two", "handled": 2}}
    opens = daemon.calls("sessions.open", "coord-0")
    assert [r.params for r in opens] == [{"pool": "worker", "key": sid, "parent": sid}]  # once, as a child
    assert daemon.sessions[via]["parent_id"] == sid
    assert daemon.states[sid][0] == {"target": via}  # remembered in the coordinator's session state
    other = daemon.open_session("coord")
    assert daemon.message(other, "three")["message"]["via"] != via
    published = [r.params for r in daemon.calls("events.publish", "coord-0")]
    assert published == [{"topic": "plan.dispatched", "data": {"session": s, "target_pool": "worker"}}
                         for s in (sid, sid, other)]
    assert daemon.shared["plan/dispatched"] == (3, 3)  # counted with compare-and-set
    assert coordinator.stop() == 0


def test_coordinator_replies_when_events_and_shared_state_are_denied(daemon: FakeDaemon, programs: list[Program],
                                                                     tmp_path: Path) -> None:
    daemon.denied = {"events.publish", "state.set"}
    worker_env = {**base_env(), **daemon.add_agent("worker-0", "worker")}
    coordinator_env = {**base_env(), **daemon.add_agent("coord-0", "coord")}
    start(programs, tmp_path, "worker", [], worker_env)
    coordinator = start(programs, tmp_path, "coordinator", [], coordinator_env)
    sid = daemon.open_session("coord")
    reply = daemon.message(sid, "one")["message"]
    assert reply == {"coordinator": "coord-0", "via": reply["via"],
                     "result": {"worker": "worker-0", "echo": "one", "handled": 1}}
    assert daemon.message(sid, "two")["message"]["result"]["handled"] == 2
    assert "plan/dispatched" not in daemon.shared
    assert coordinator.stop() == 0
    log = coordinator.log()
    assert log.count("event plan.dispatched not published: events.publish: no CommunicationPolicy") == 2
    assert log.count("counter plan/dispatched not updated: state.set: no CommunicationPolicy") == 2
    assert "Traceback" not in log


def test_coordinator_reports_a_pool_it_cannot_reach(daemon: FakeDaemon, programs: list[Program],
                                                    tmp_path: Path) -> None:
    env = {**base_env(), **daemon.add_agent("coord-0", "coord")}
    start(programs, tmp_path, "coordinator", ["--target-pool", "nowhere"], env)
    sid = daemon.open_session("coord")
    assert daemon.message(sid, "x")["error"] == "NotFound: pool nowhere not found"


def test_the_example_in_the_sdk_docs_works(daemon: FakeDaemon, programs: list[Program], tmp_path: Path) -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "sdk.md").read_text()
    code = re.search(r"```python\n(.*?)```", docs, re.S)
    assert code is not None
    script = tmp_path / "my_agent.py"
    script.write_text(code.group(1))
    env = {**base_env(), **daemon.add_agent("mine-0", "mine")}
    program = start(programs, tmp_path, "docs", [], env, argv=[sys.executable, str(script)])
    sid = daemon.open_session("mine", state={"turns": 2})
    wait_log(daemon, program, f"session {sid} in mine, carried state {{'turns': 2}}")
    assert daemon.message(sid, "hi")["message"] == {"turn": 3, "echo": "hi"}
    assert daemon.message(sid, "again")["message"] == {"turn": 4, "echo": "again"}
    daemon.push("mine-0", "session.closing", {"session": sid, "reason": "idle", "deadline": 5})
    daemon.wait(lambda: daemon.calls("sessions.close", "mine-0"), "the close acknowledgement")
    assert program.stop() == 0
