"""The fork server on its own and inside the launcher: agents are children of the
launcher's process, setup failures look as they do through the exec shim, a dead
server is replaced, and a server that cannot clone sends the launcher back to the shim."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from clawctl.runtime import SETUP_FAILED, HostFacts, ProcessLauncher, forkserver
from clawctl.runtime.host import SHIM_PATH

from .conftest import PATIENCE, Harness, wait_for

ENV = {"PATH": "/usr/bin:/bin"}


@pytest.fixture
def server() -> Iterator[forkserver.ForkServer]:
    started = forkserver.ForkServer()
    yield started
    started.close()


last_status: dict[int, int] = {}


def wait_exit_code(pid: int) -> int:
    """The exit code of our child ``pid`` (negative: killed by that signal)."""

    def done() -> bool:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got == pid:
            last_status[pid] = status
        return got == pid

    wait_for(done, PATIENCE, f"exit of {pid}")
    return os.waitstatus_to_exitcode(last_status.pop(pid))


def test_the_agent_is_a_child_of_the_caller_and_runs_in_its_own_session(server: forkserver.ForkServer,
                                                                       tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    pid = server.spawn(["--cwd", str(tmp_path), "--exe", "/bin/sh", "--", "sh", "-c",
                        "echo $PPID $(cut -d' ' -f6 /proc/self/stat) $(pwd)"], ENV, str(log))
    assert server.pid is not None and server.pid != pid
    assert wait_exit_code(pid) == 0
    ppid, session, cwd = log.read_text().split()
    assert int(ppid) == os.getpid()  # CLONE_PARENT: the server is the agent's sibling
    assert int(session) == pid
    assert cwd == str(tmp_path)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--exe", "/nonexistent/prog", "--", "prog"], 127, "cannot execute /nonexistent/prog"),
        (["--cwd", "/nonexistent", "--exe", "/bin/true", "--", "true"], SETUP_FAILED, "cannot enter workdir"),
        (["--cgroup", "/nonexistent", "--exe", "/bin/true", "--", "true"], SETUP_FAILED, "cannot join cgroup"),
        (["--nofile", "many", "--exe", "/bin/true", "--", "true"], SETUP_FAILED, "open files limit"),
    ],
)
def test_setup_failures_are_reported_as_the_shim_reports_them(server: forkserver.ForkServer, tmp_path: Path,
                                                              args: list[str], code: int, message: str) -> None:
    log = tmp_path / "a.log"
    assert wait_exit_code(server.spawn(args, ENV, str(log))) == code
    assert log.read_text().startswith("clawctl-shim: ") and message in log.read_text()


def test_a_log_that_cannot_be_opened_is_an_error_and_starts_nothing(server: forkserver.ForkServer,
                                                                   tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        server.spawn(["--exe", "/bin/true", "--", "true"], ENV, str(tmp_path))
    assert wait_exit_code(server.spawn(["--exe", "/bin/true", "--", "true"], ENV, str(tmp_path / "ok.log"))) == 0


def test_signals_are_not_blocked_and_pythons_ignored_ones_are_reset(tmp_path: Path) -> None:
    # The daemon blocks the signals it waits for in every thread; its agents must not inherit that.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGCHLD})
    server = forkserver.ForkServer()
    try:
        log = tmp_path / "a.log"
        pid = server.spawn(["--exe", "/bin/grep", "--", "grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"],
                           ENV, str(log))
        assert wait_exit_code(pid) == 0
    finally:
        server.close()
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    masks = dict(line.split(":") for line in log.read_text().splitlines())
    assert int(masks["SigBlk"], 16) == 0
    ignored = int(masks["SigIgn"], 16)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT):  # ignored or handled by Python in the server
        assert not ignored & (1 << (sig - 1)), f"{sig.name} must not stay ignored across exec"


def test_the_environment_is_exactly_the_one_given(server: forkserver.ForkServer, tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    pid = server.spawn(["--exe", "/usr/bin/env", "--", "env"], {"ONLY": "this"}, str(log))
    assert wait_exit_code(pid) == 0
    assert log.read_text().splitlines() == ["ONLY=this"]


def test_a_killed_server_is_replaced_and_its_exit_is_not_an_agent_exit(host: HostFacts, tmp_path: Path) -> None:
    harness = Harness(ProcessLauncher(host=host), tmp_path)
    server = harness.launcher._fork_server
    assert server is not None
    try:
        first = harness.python("a", "pass")
        old = server.pid
        assert old is not None
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: psutil.Process(old).status() == psutil.STATUS_ZOMBIE, PATIENCE, "the server to die")
        second = harness.python("b", "print('hello', flush=True)")
        assert server.pid not in (None, old)
        assert psutil.Process(second.pid).ppid() == os.getpid()
        harness.wait_exit(first)
        harness.wait_exit(second)
    finally:
        harness.launcher.close()
    assert harness.log(second).strip() == "hello"
    assert old not in {e.pid for e in harness.exits}
    assert old not in forkserver.SERVER_PIDS


def test_a_server_that_cannot_clone_sends_the_launcher_back_to_the_shim(
    host: HostFacts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    refusing = tmp_path / "refusing.py"
    refusing.write_text(
        "import marshal, os\n"
        "data = marshal.dumps(('unsupported', 'clone refused by this test'))\n"
        "os.write(0, len(data).to_bytes(4, 'big') + data)\n"
    )
    monkeypatch.setattr(forkserver, "SHIM_PATH", refusing)
    harness = Harness(ProcessLauncher(host=host), tmp_path)
    proc = harness.python("a", "import sys; print('started by', sys.argv[0], flush=True)")
    try:
        assert harness.wait_exit(proc).returncode == 0
        assert "clone refused by this test" in caplog.text
        assert harness.launcher._fork_server is not None and harness.launcher._fork_server.broken
        assert harness.log(proc).strip() == "started by -c"
        again = harness.python("b", "pass")  # no new server attempt, straight to the shim
        assert harness.wait_exit(again).returncode == 0
    finally:
        harness.launcher.close()


def test_the_server_exits_quietly_when_the_daemon_goes_before_reading_its_greeting() -> None:
    ours, theirs = socket.socketpair()
    server = subprocess.Popen([sys.executable, "-I", "-S", str(SHIM_PATH), "--serve"], stdin=theirs,
                              stderr=subprocess.PIPE, text=True)
    theirs.close()
    try:
        ours.settimeout(PATIENCE)
        assert ours.recv(4, socket.MSG_PEEK)  # its greeting is there, unread: closing now resets
    finally:
        ours.close()
    _, err = server.communicate(timeout=PATIENCE)
    assert server.returncode == 0 and err == ""
