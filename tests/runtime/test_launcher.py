"""ProcessLauncher with real processes: spawn, environment, stop of whole trees,
exits, quotas, cgroups, adoption and the daemon's fd budget."""

from __future__ import annotations

import os
import signal
import socket
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from clawctl.config.model import NetworkMode
from clawctl.errors import RuntimeFailure
from clawctl.runtime import AgentProcess, HostFacts, ProcessLauncher

from .conftest import PATIENCE, PY, Harness, Strays, wait_for

SLEEPER = "import time; print('ready', flush=True); time.sleep(60)"


def code(text: str) -> str:
    return textwrap.dedent(text).strip()


def require(proc: AgentProcess, quota: str) -> None:
    if proc.enforcement[quota] != "enforced":
        pytest.skip(f"{quota} is not enforceable here: {proc.enforcement_notes[quota]}")


# -- spawn and environment ---------------------------------------------------------------


def test_agent_runs_in_its_workdir_session_and_log(harness: Harness) -> None:
    proc = harness.python(
        "a1", "import os; print('where', os.getcwd(), os.getsid(0), os.getpgid(0), os.environ['CLAWCTL_AGENT_ID'], flush=True)"
    )
    assert proc.pgid == proc.pid
    assert harness.wait_exit(proc).returncode == 0
    workdir = harness.root / "work" / "a1"
    assert harness.log(proc).split() == ["where", str(workdir), str(proc.pid), str(proc.pid), "a1"]
    assert proc.log_path == harness.root / "logs" / "a1.log"


def test_stderr_goes_to_the_same_log_and_appends(harness: Harness) -> None:
    first = harness.python("a1", "import sys; print('out1', flush=True); print('err1', file=sys.stderr)")
    harness.wait_exit(first)
    second = harness.python("a1", "print('out2')")
    harness.wait_exit(second)
    assert harness.log(second).split() == ["out1", "err1", "out2"]


def test_environment_is_minimal_and_path_finds_this_python(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAWCTL_TEST_SECRET", "do-not-leak")
    monkeypatch.setenv("LANG", "C.UTF-8")
    proc = harness.spawn(
        "env1",
        "python3",
        "-c",
        "import os, sys; print(sys.executable); print(os.environ['PATH']); print(sorted(os.environ))",
        env={"MY_SETTING": "42"},
    )
    assert harness.wait_exit(proc).returncode == 0
    executable, path, keys = harness.log(proc).splitlines()
    here = os.path.dirname(sys.executable)
    assert os.path.dirname(executable) == here
    assert path.split(os.pathsep)[0] == here
    assert "CLAWCTL_TEST_SECRET" not in keys
    for expected in ("MY_SETTING", "LANG", "CLAWCTL_AGENT_ID", "PATH", "PYTHONUNBUFFERED"):
        assert f"'{expected}'" in keys


def test_unknown_command_fails_before_anything_starts(harness: Harness) -> None:
    with pytest.raises(RuntimeFailure, match="not found on the agent's PATH"):
        harness.spawn("bad", "clawctl-no-such-command")
    assert harness.launcher.tracked() == ()


def test_stdin_is_dev_null_and_no_daemon_fds_leak_into_the_agent(harness: Harness) -> None:
    keep = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(keep, True)  # even an inheritable daemon fd must not reach the agent
    try:
        proc = harness.python("fds", "import os, sys; print(sys.stdin.read() == '', sorted(os.listdir('/proc/self/fd')))")
        assert harness.wait_exit(proc).returncode == 0
    finally:
        os.close(keep)
    empty, fds = harness.log(proc).split(" ", 1)
    assert empty == "True"
    assert fds.strip() in ("['0', '1', '2', '3']", "['0', '1', '2']")  # 3: listdir's own fd


# -- stopping trees ------------------------------------------------------------------------

TREE = code(
    """
    import subprocess, sys, time
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    child = subprocess.Popen(sleep)
    escaped = subprocess.Popen(sleep, start_new_session=True)
    print("tree", child.pid, escaped.pid, flush=True)
    time.sleep(60)
    """
)


@pytest.mark.parametrize("cgroups", [True, False], ids=["cgroups", "no-cgroups"])
def test_stop_ends_the_whole_tree_including_a_setsid_grandchild(
    harness: Harness, strays: Strays, no_cgroup_host: HostFacts, cgroups: bool
) -> None:
    if not cgroups:
        harness.launcher = ProcessLauncher(host=no_cgroup_host)
    elif not harness.launcher.host.sites:
        pytest.skip("no usable cgroups on this host")
    proc = harness.python("tree", TREE)
    match = harness.wait_log(proc, r"tree (\d+) (\d+)")
    pids = [strays.add(int(p)) for p in match.groups()]
    harness.launcher.stop(proc, 2.0)
    assert not harness.launcher.alive(proc)
    assert [pid for pid in pids if strays.running(pid)] == []
    assert harness.wait_exit(proc).signal == signal.SIGTERM


def test_stop_finds_an_orphaned_setsid_process_through_the_cgroup(harness: Harness, strays: Strays) -> None:
    if not harness.launcher.host.sites:
        pytest.skip("no usable cgroups on this host: orphans re-parented to init cannot be found")
    proc = harness.python(
        "orphans",
        code(
            """
            import os, subprocess, sys, time
            middle = os.fork()
            if middle == 0:
                os.setsid()
                orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
                print("orphan", orphan.pid, flush=True)
                os._exit(0)
            os.waitpid(middle, 0)
            time.sleep(60)
            """
        ),
    )
    orphan = strays.add(int(harness.wait_log(proc, r"orphan (\d+)").group(1)))
    assert psutil.Process(orphan).ppid() != proc.pid
    harness.launcher.stop(proc, 2.0)
    assert not strays.running(orphan)


def test_sigterm_ignoring_agent_is_killed_after_the_grace_period(harness: Harness) -> None:
    proc = harness.python(
        "stubborn", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    )
    harness.wait_log(proc, "ready")
    started = time.monotonic()
    harness.launcher.stop(proc, 0.3)
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < PATIENCE
    assert harness.wait_exit(proc).signal == signal.SIGKILL


def test_echo_example_logs_heartbeats_and_exits_0_on_sigterm(harness: Harness) -> None:
    proc = harness.spawn("echo-1", "python3", "-m", "clawctl.agent.examples.echo", "--role", "greeter", "--interval", "0.1")
    harness.wait_log(proc, r"agent=echo-1 .*role=greeter started")
    harness.wait_log(proc, "heartbeat 2")
    started = time.monotonic()
    harness.launcher.stop(proc, PATIENCE)
    assert time.monotonic() - started < PATIENCE / 2  # it did not need the grace period
    exit_ = harness.wait_exit(proc)
    assert (exit_.returncode, exit_.reason) == (0, "exit 0")


def test_crashy_example_exits_with_its_code(harness: Harness) -> None:
    proc = harness.spawn("crashy-1", "python3", "-m", "clawctl.agent.examples.crashy", "--delay", "0.05", "--code", "7")
    assert harness.wait_exit(proc).returncode == 7


def test_signal_reaches_the_whole_tree(harness: Harness) -> None:
    child = "import signal, time; signal.signal(signal.SIGUSR1, lambda *a: print('child got it', flush=True)); time.sleep(60)"
    proc = harness.python(
        "sig",
        code(
            f"""
            import signal, subprocess, sys, time
            signal.signal(signal.SIGUSR1, lambda *a: print("leader got it", flush=True))
            child = subprocess.Popen([sys.executable, "-c", {child!r}])
            time.sleep(0.3)
            print("ready", flush=True)
            time.sleep(60)
            """
        ),
    )
    harness.wait_log(proc, "ready")
    harness.launcher.signal(proc, signal.SIGUSR1)
    harness.wait_log(proc, "leader got it")
    harness.wait_log(proc, "child got it")


def test_tool_processes_do_not_outlive_an_agent_that_exits(harness: Harness, strays: Strays) -> None:
    proc = harness.python(
        "leaver",
        code(
            """
            import subprocess, sys
            tool = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            print("tool", tool.pid, flush=True)
            """
        ),
    )
    tool = strays.add(int(harness.wait_log(proc, r"tool (\d+)").group(1)))
    assert harness.wait_exit(proc).returncode == 0
    wait_for(lambda: not strays.running(tool), PATIENCE, "the tool process to be killed")


# -- exits and identity ----------------------------------------------------------------------


def test_reap_gives_exit_code_and_signal(harness: Harness) -> None:
    failing = harness.python("fail", "import sys; sys.exit(3)")
    sleeper = harness.python("sleep", SLEEPER)
    harness.wait_log(sleeper, "ready")
    harness.launcher.signal(sleeper, signal.SIGTERM)
    failed, signalled = harness.wait_exit(failing), harness.wait_exit(sleeper)
    assert (failed.returncode, failed.signal, failed.agent_id, failed.oom_killed) == (3, None, "fail", False)
    assert (signalled.returncode, signalled.signal, signalled.reason) == (None, signal.SIGTERM, "SIGTERM")
    assert harness.launcher.reap() == []  # each exit is reported once


def test_alive_is_false_after_exit_and_for_a_reused_or_foreign_pid(harness: Harness) -> None:
    proc = harness.python("short", "print('bye')")
    assert wait_for(lambda: not harness.launcher.alive(proc), PATIENCE, "zombie is dead")  # before reap
    harness.wait_exit(proc)
    assert not harness.launcher.alive(proc)
    me = psutil.Process()
    reused = AgentProcess("x", me.pid, me.create_time() - 100.0, me.pid)
    assert not harness.launcher.alive(reused)
    assert harness.launcher.alive(AgentProcess("x", me.pid, me.create_time(), me.pid))


# -- quotas ------------------------------------------------------------------------------------


def test_open_files_rlimit_is_applied(harness: Harness) -> None:
    proc = harness.python("nofile", "import resource; print(resource.getrlimit(resource.RLIMIT_NOFILE))", open_files=77)
    assert proc.enforcement["openFiles"] == "enforced"
    harness.wait_exit(proc)
    assert harness.log(proc).strip() == "(77, 77)"


CONNECT = code(
    """
    import socket, sys
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2).close()
        print("connected", flush=True)
    except OSError as exc:
        print("blocked", exc.errno, flush=True)
    """
)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server


def test_network_none_cannot_reach_a_port_on_the_host_loopback(harness: Harness, listener: socket.socket) -> None:
    port = str(listener.getsockname()[1])
    control = harness.spawn("net-host", PY, "-c", CONNECT, port)
    isolated = harness.spawn("net-none", PY, "-c", CONNECT, port, network=NetworkMode.NONE)
    harness.wait_exit(control)
    assert harness.log(control).strip() == "connected"
    require(isolated, "network")
    harness.wait_exit(isolated)
    assert harness.log(isolated).startswith("blocked")


LOOPBACK = code(
    """
    import socket, sys
    with socket.socket() as own:
        own.bind(("127.0.0.1", 0))
        own.listen()
        socket.create_connection(own.getsockname(), timeout=2).close()
        print("own ok", flush=True)
    """
) + "\n" + CONNECT


def test_network_loopback_has_its_own_working_lo(harness: Harness, listener: socket.socket) -> None:
    port = str(listener.getsockname()[1])
    proc = harness.spawn("net-lo", PY, "-c", LOOPBACK, port, network=NetworkMode.LOOPBACK)
    require(proc, "network")
    harness.wait_exit(proc)
    own, host = harness.log(proc).splitlines()
    assert own == "own ok"
    assert host.startswith("blocked")


def test_memory_quota_oom_kill_is_reported(harness: Harness) -> None:
    proc = harness.spawn(
        "hog-1", "python3", "-m", "clawctl.agent.examples.hog", "--step", "8", "--max", "1024", memory_bytes=48 * 2**20
    )
    require(proc, "memory")
    exit_ = harness.wait_exit(proc)
    assert (exit_.signal, exit_.oom_killed, exit_.reason) == (signal.SIGKILL, True, "OOMKilled")
    assert "holding" in harness.log(proc)


def test_a_plain_sigkill_is_not_an_oom_kill(harness: Harness) -> None:
    proc = harness.python("killed", SLEEPER, memory_bytes=256 * 2**20)
    harness.wait_log(proc, "ready")
    harness.launcher.signal(proc, signal.SIGKILL)
    exit_ = harness.wait_exit(proc)
    assert (exit_.signal, exit_.oom_killed) == (signal.SIGKILL, False)


def _cgroup_value(proc: AgentProcess, *files: str) -> str:
    for directory in proc.cgroups:
        for name in files:
            if (directory / name).exists():
                return (directory / name).read_text().strip()
    raise AssertionError(f"none of {files} in {proc.cgroups}")


def test_cpu_quota_is_written(harness: Harness) -> None:
    proc = harness.python("cpu", SLEEPER, cpu_millis=250)
    require(proc, "cpu")
    assert _cgroup_value(proc, "cpu.cfs_quota_us", "cpu.max").split()[0] == "25000"


def test_processes_quota_limits_forks(harness: Harness) -> None:
    proc = harness.python(
        "forks",
        code(
            """
            import os, time
            made = 0
            for _ in range(30):
                try:
                    if os.fork() == 0:
                        time.sleep(60); os._exit(0)
                    made += 1
                except OSError:
                    break
            print("made", made, flush=True)
            time.sleep(60)
            """
        ),
        processes=8,
    )
    require(proc, "processes")
    assert _cgroup_value(proc, "pids.max") == "8"
    made = int(harness.wait_log(proc, r"made (\d+)").group(1))
    assert made == 7  # the agent itself is the eighth
    harness.launcher.stop(proc, 1.0)


def test_cgroups_are_removed_after_stop_and_after_a_crash(harness: Harness) -> None:
    running = harness.python("cg-stop", SLEEPER, memory_bytes=128 * 2**20)
    crashing = harness.python("cg-crash", "import sys; sys.exit(1)", memory_bytes=128 * 2**20)
    if not running.cgroups:
        pytest.skip(f"no cgroups here: {running.enforcement_notes['memory']}")
    assert all(path.is_dir() for path in running.cgroups)
    harness.launcher.stop(running, 1.0)
    assert not any(path.exists() for path in running.cgroups)
    harness.wait_exit(crashing)
    assert not any(path.exists() for path in crashing.cgroups)


# -- adoption ----------------------------------------------------------------------------------


def test_adopt_rebuilds_the_handle_and_refuses_a_wrong_create_time(harness: Harness, host: HostFacts) -> None:
    limits: dict[str, Any] = dict(memory_bytes=128 * 2**20, open_files=99)
    proc = harness.python("adoptee", SLEEPER, **limits)
    harness.wait_log(proc, "ready")
    successor = ProcessLauncher(host=host)  # a new daemon: the agent is not its child
    assert successor.adopt(proc.pid, proc.create_time + 5.0, agent_id="adoptee") is None
    adopted = successor.adopt(proc.pid, proc.create_time, agent_id="adoptee", limits=harness.spec("adoptee", "x", **limits).limits)
    assert adopted is not None and adopted.adopted
    assert (adopted.pid, adopted.pgid, adopted.cgroups) == (proc.pid, proc.pgid, proc.cgroups)
    assert dict(adopted.enforcement) == dict(proc.enforcement)
    assert successor.alive(adopted)
    assert successor.probe(adopted).processes == 1
    assert successor.adopt(proc.pid, proc.create_time, agent_id="someone-else") is None
    stranger = ProcessLauncher(host=host).adopt(proc.pid, proc.create_time, agent_id="someone-else")
    assert stranger is not None and stranger.cgroups == ()  # never another agent's cgroup
    successor.stop(adopted, 1.0)
    assert not successor.alive(adopted)
    assert successor.tracked() == ()
    assert not any(path.exists() for path in proc.cgroups)


def test_release_of_an_adopted_agent_that_died(harness: Harness, host: HostFacts) -> None:
    proc = harness.python("gone", SLEEPER, memory_bytes=128 * 2**20)
    harness.wait_log(proc, "ready")
    successor = ProcessLauncher(host=host)
    adopted = successor.adopt(proc.pid, proc.create_time, agent_id="gone")
    assert adopted is not None
    os.kill(proc.pid, signal.SIGKILL)  # the test's own agent, by pid
    wait_for(lambda: not successor.alive(adopted), PATIENCE, "death")
    exit_ = successor.release(adopted)
    assert (exit_.returncode, exit_.signal, exit_.oom_killed) == (None, None, False)
    assert not any(path.exists() for path in proc.cgroups)
    assert harness.wait_exit(proc).signal == signal.SIGKILL  # the real parent still learns the code


# -- measuring ----------------------------------------------------------------------------------


def test_probe_measures_the_tree_and_the_workdir(harness: Harness) -> None:
    proc = harness.python(
        "busy",
        code(
            """
            import subprocess, sys, time
            data = b"x" * (40 << 20)
            open("file.bin", "wb").write(b"y" * (1 << 20))
            tool = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            sum(range(3_000_000))
            print("ready", flush=True)
            time.sleep(60)
            """
        ),
    )
    harness.wait_log(proc, "ready")
    first = harness.launcher.probe(proc)
    assert first.processes == 2
    assert first.rss_bytes > 40 << 20
    assert first.cpu_seconds > 0 and first.cpu_percent is None
    assert first.disk_bytes is not None and first.disk_bytes >= 1 << 20
    second = harness.launcher.probe(proc)
    assert second.cpu_percent is not None and second.cpu_percent >= 0
    assert second.disk_measured_at == first.disk_measured_at  # rate-limited: not walked again
    harness.launcher.stop(proc, 1.0)
    assert harness.launcher.probe(proc).processes == 0


# -- the daemon's fd budget ------------------------------------------------------------------------


@pytest.mark.slow
def test_200_agents_cost_the_daemon_no_file_descriptors(harness: Harness) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    procs = [harness.spawn("s0", "sleep", "30")]
    server_fds = len(os.listdir("/proc/self/fd")) - fds_before
    assert server_fds <= 1  # the socket to the fork server, once per launcher
    procs += [harness.spawn(f"s{i}", "sleep", "30") for i in range(1, 200)]
    fds_after = len(os.listdir("/proc/self/fd"))
    assert fds_after <= fds_before + server_fds
    wait_for(lambda: all(psutil.Process(p.pid).name() == "sleep" for p in procs), PATIENCE, "every agent exec'd")
    for proc in procs:
        harness.launcher.stop(proc, 1.0)
    for proc in procs:
        harness.wait_exit(proc)
    assert {e.signal for e in harness.exits} == {signal.SIGTERM}
    assert len(os.listdir("/proc/self/fd")) <= fds_before + server_fds


def test_log_rotation_keeps_a_running_agent_writing(harness: Harness) -> None:
    from clawctl.runtime import rotate_logs

    proc = harness.python(
        "chatty", "import time\nfor i in range(100000):\n    print('line', i, flush=True); time.sleep(0.001)"
    )
    assert proc.log_path is not None
    log: Path = proc.log_path
    for _ in range(4):
        wait_for(lambda: log.stat().st_size > 2000, PATIENCE, "log growth")
        rotate_logs(log.parent, 1000, 2)
    wait_for(lambda: log.stat().st_size > 0, PATIENCE, "writes after rotation")
    names = sorted(p.name for p in log.parent.iterdir())
    assert names == ["chatty.log", "chatty.log.1", "chatty.log.2"]
    for path in log.parent.iterdir():
        assert b"\0" not in path.read_bytes()  # O_APPEND: no sparse holes after truncation
    harness.launcher.stop(proc, 1.0)


def test_release_reports_an_oom_kill_of_an_adopted_agent(harness: Harness, host: HostFacts) -> None:
    proc = harness.spawn(
        "adopted-hog", "python3", "-m", "clawctl.agent.examples.hog", "--interval", "0.2", memory_bytes=48 * 2**20
    )
    require(proc, "memory")
    harness.wait_log(proc, "started")
    successor = ProcessLauncher(host=host)
    adopted = successor.adopt(proc.pid, proc.create_time, agent_id="adopted-hog", limits=proc.limits)
    assert adopted is not None and adopted.enforcement["memory"] == "enforced"
    wait_for(lambda: not successor.alive(adopted), what="the OOM kill")
    assert successor.release(adopted).oom_killed
    assert harness.wait_exit(proc).signal == signal.SIGKILL
