"""The daemon with real processes: start, restart with backoff, crash loop, OOM, re-adoption,
scaling, dependency order, and stopping that leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime

import psutil
import pytest

from clawctl.daemon.instance import read_info
from tests.daemon.conftest import FLEET, PY, Fleet, pool_yaml

ECHO = [PY, "-m", "clawctl.agent.examples.echo", "--interval", "0.5"]


def _pids(agents: list[dict[str, object]]) -> set[int]:
    return {int(a["pid"]) for a in agents if a["pid"] is not None}  # type: ignore[arg-type]


def _running(fleet: Fleet, pool: str | None = None) -> list[dict[str, object]]:
    return [a for a in fleet.agents() if a["state"] == "Running" and (pool is None or a["pool"] == pool)]


def test_apply_wait_starts_the_daemon_and_the_agents(fleet: Fleet) -> None:
    config = fleet.write("f.yaml", FLEET + pool_yaml("web", ECHO, replicas=2))
    run = fleet.cli("apply", str(config), "--wait", "--timeout", "30")
    assert run.code == 0, run.err
    assert "converged" in run.out
    agents = fleet.agents()
    assert sorted(a["id"] for a in agents) == ["web-0", "web-1"]
    assert all(a["state"] == "Running" and psutil.pid_exists(a["pid"]) for a in agents)
    status = fleet.status()
    assert status["daemon"]["running"] is True
    assert status["fleets"][0]["pools"][0]["live"]["ready"] == 2
    table = fleet.cli("status").out
    assert "web-0" in table and "Running" in table
    logs = fleet.cli("logs", "agent/web-0", "--tail", "5")
    assert logs.code == 0 and "agent=web-0" in logs.out


def test_a_second_daemon_refuses_to_start(fleet: Fleet) -> None:
    assert fleet.cli("daemon", "start").code == 0
    second = subprocess.run([sys.executable, "-m", "clawctl", "daemon", "run"], capture_output=True, text=True,
                            timeout=30, env=dict(os.environ, CLAWCTL_HOME=str(fleet.home)))
    assert second.returncode == 1
    assert "a daemon is already running" in second.stderr
    assert "Traceback" not in second.stderr


def test_crash_restarts_with_growing_backoff(fleet: Fleet) -> None:
    crashy = [PY, "-m", "clawctl.agent.examples.crashy", "--delay", "0.05", "--code", "3"]
    config = fleet.write("f.yaml", FLEET + pool_yaml("crash", crashy, extra="""
        failover:
          restart: on-failure
          maxRestarts: 20
          window: 1m
          backoff: {initial: 200ms, max: 2s, factor: 2, jitter: 0}
    """))
    assert fleet.cli("apply", str(config)).code == 0
    fleet.wait_for(lambda: [e for e in fleet.events() if e["reason"] == "Started"][3:], timeout=30,
                   what="four starts")
    starts = [datetime.fromisoformat(e["at"].replace("Z", "+00:00")) for e in fleet.events()
              if e["reason"] == "Started"]
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:])]
    # first restart at once, then 0.2 s, 0.4 s … (plus the 50 ms the agent lives)
    assert gaps[0] < 0.5
    assert gaps[2] > gaps[1] >= 0.2
    assert any(e["reason"] == "BackOff" for e in fleet.events())
    exits = [e for e in fleet.events() if e["reason"] == "Exited"]
    assert exits and exits[0]["message"] == "exit 3"


def test_crash_loop_is_visible_and_retry_clears_it(fleet: Fleet) -> None:
    crashy = [PY, "-m", "clawctl.agent.examples.crashy", "--delay", "0", "--code", "1"]
    config = fleet.write("f.yaml", FLEET + pool_yaml("bad", crashy, extra="""
        failover:
          maxRestarts: 2
          window: 5m
          backoff: {initial: 100ms, max: 200ms, jitter: 0}
    """))
    assert fleet.cli("apply", str(config)).code == 0
    agent = fleet.wait_for(lambda: [a for a in fleet.agents() if a["state"] == "CrashLoop"], timeout=30,
                           what="CrashLoop")[0]
    assert "maxRestarts 2" in agent["message"] and "exit 1" in agent["message"]
    assert fleet.status()["fleets"][0]["pools"][0]["live"]["state"] == "CrashLoop"
    time.sleep(1.0)  # no hot loop: it stays put
    assert [a["state"] for a in fleet.agents()] == ["CrashLoop"]
    retry = fleet.cli("retry", "pool/bad")
    assert retry.code == 0, retry.err
    fleet.wait_for(lambda: any(e["reason"] == "Retry" for e in fleet.events()), what="retry event")
    fleet.wait_for(lambda: [a for a in fleet.agents() if a["state"] == "CrashLoop"], timeout=30,
                   what="CrashLoop again after retry")


def test_memory_quota_kill_is_recorded_as_oom(fleet: Fleet) -> None:
    hog = [PY, "-m", "clawctl.agent.examples.hog", "--step", "8"]
    config = fleet.write("f.yaml", FLEET + pool_yaml("hog", hog, extra="""
        isolation: {memory: 64Mi}
        failover: {restart: never}
    """))
    assert fleet.cli("apply", str(config)).code == 0
    agents = fleet.wait_for(lambda: fleet.agents(), what="the agent")
    quotas = agents[0]["quotas"]
    if quotas.get("memory") != "enforced":
        pytest.skip(f"memory quotas are not enforceable on this host ({quotas})")
    exited = fleet.wait_for(lambda: [a for a in fleet.agents() if a["state"] == "Exited"], timeout=30,
                            what="the OOM kill")
    assert exited[0]["last_exit"] == "OOMKilled"


def test_daemon_kill9_then_restart_readopts_without_duplicates(fleet: Fleet) -> None:
    config = fleet.write("f.yaml", FLEET + pool_yaml("web", ECHO, replicas=3))
    assert fleet.cli("apply", str(config), "--wait", "--timeout", "30").code == 0
    before = _pids(fleet.agents())
    info = read_info(fleet.home)
    assert info is not None
    os.kill(info.pid, signal.SIGKILL)  # the daemon this test started
    fleet.wait_for(lambda: read_info(fleet.home) is None, what="the daemon to die")
    assert all(psutil.pid_exists(pid) for pid in before)  # agents survive the daemon
    assert fleet.cli("daemon", "start").code == 0
    fleet.wait_for(lambda: sum(1 for e in fleet.events() if e["reason"] == "Adopted") == 3, what="adoption")
    after = fleet.agents()
    assert _pids(after) == before and len(after) == 3
    victim = sorted(before)[0]
    os.kill(victim, signal.SIGKILL)  # an agent the daemon started for this test
    fleet.wait_for(lambda: len(_running(fleet)) == 3 and victim not in _pids(fleet.agents()), timeout=30,
                   what="the adopted agent's replacement")


def test_scale_up_and_down(fleet: Fleet) -> None:
    for replicas in (1, 3, 1):
        config = fleet.write("f.yaml", FLEET + pool_yaml("web", ECHO, replicas=replicas))
        run = fleet.cli("apply", str(config), "--wait", "--timeout", "30")
        assert run.code == 0, run.err
        fleet.wait_for(lambda: len(fleet.agents()) == replicas, what=f"{replicas} agents")
        assert sorted(a["id"] for a in _running(fleet)) == [f"web-{i}" for i in range(replicas)]


def test_depends_on_starts_dependencies_first(fleet: Fleet) -> None:
    config = fleet.write("f.yaml", FLEET + pool_yaml("db", ECHO) + pool_yaml("app", ECHO, extra="dependsOn: [db]"))
    assert fleet.cli("apply", str(config), "--wait", "--timeout", "30").code == 0
    started = {e["target"]: e["at"] for e in fleet.events() if e["reason"] == "Started"}
    assert started["app-0"] > started["db-0"]


def test_delete_stops_every_process_including_tool_subprocesses(fleet: Fleet) -> None:
    spawner = [PY, "-c", "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"]
    config = fleet.write("f.yaml", FLEET + pool_yaml("tools", spawner, replicas=2, extra="drain: {gracePeriod: 1s}"))
    assert fleet.cli("apply", str(config), "--wait", "--timeout", "30").code == 0
    tree: set[int] = set()
    for pid in _pids(fleet.agents()):
        tree.add(pid)
        tree.update(c.pid for c in psutil.Process(pid).children(recursive=True))
    assert len(tree) >= 4
    assert fleet.cli("delete", "t", "--yes").code == 0
    fleet.wait_for(lambda: not fleet.cli("events", "--fleet", "t", "-o", "json").out.count('"Stopping"') < 2
                   and all(not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE
                           for p in tree), timeout=30, what="every process of the fleet to end")
    assert fleet.cli("daemon", "stop").code == 0


def test_disk_quota_stops_the_agent_and_reports_it(fleet: Fleet) -> None:
    writer = [PY, "-c", "import time; open('blob', 'wb').write(b'x' * 3_000_000); time.sleep(300)"]
    config = fleet.write("f.yaml", FLEET + pool_yaml("disk", writer, extra="""
        isolation: {disk: 1Mi}
        failover: {restart: never}
        drain: {gracePeriod: 1s}
    """))
    assert fleet.cli("apply", str(config)).code == 0
    exited = fleet.wait_for(lambda: [a for a in fleet.agents() if a["state"] == "Exited"], timeout=40,
                            what="the disk quota stop")
    assert exited[0]["last_exit"] == "DiskQuotaExceeded"
    assert exited[0]["quotas"]["disk"] == "monitored"
    assert any(e["reason"] == "DiskQuota" for e in fleet.events())


def test_apply_wait_times_out_naming_what_is_not_ready(fleet: Fleet) -> None:
    crashy = [PY, "-m", "clawctl.agent.examples.crashy", "--delay", "0", "--code", "2"]
    config = fleet.write("f.yaml", FLEET + pool_yaml("web", ECHO) + pool_yaml("broken", crashy, extra="""
        failover: {restart: never}
    """))
    run = fleet.cli("apply", str(config), "--wait", "--timeout", "3")
    assert run.code == 1
    assert "fleet t did not converge within 3s: broken 0/1 ready" in run.err
    assert "web" not in run.err.split("converge")[1].split("hint")[0]
    assert "Traceback" not in run.err


def test_notify_readiness_waits_for_the_agent_and_times_out(fleet: Fleet) -> None:
    silent = [PY, "-c", "import time; time.sleep(300)"]
    config = fleet.write("f.yaml", FLEET + pool_yaml("talks", ECHO, extra="health: {readiness: notify}")
                         + pool_yaml("silent", silent, extra="""
        health: {readiness: notify, startTimeout: 1s}
        failover: {restart: never}
    """))
    assert fleet.cli("apply", str(config)).code == 0
    ready = fleet.wait_for(lambda: [e for e in fleet.events() if e["reason"] == "Ready"], what="the Ready event")
    assert ready[0]["target"] == "talks-0" and ready[0]["message"].startswith("said ready after ")
    fleet.wait_for(lambda: any(a["id"] == "silent-0" and a["state"] == "Exited" for a in fleet.agents()),
                   timeout=30, what="the start timeout")
    assert any(e["reason"] == "StartTimeout" and e["target"] == "silent-0" for e in fleet.events())
    states = {a["id"]: a["state"] for a in fleet.agents()}
    assert states["talks-0"] == "Running"


def test_daemon_start_on_a_foreign_registry_fails_at_once_and_clearly(fleet: Fleet) -> None:
    (fleet.home / "registry.db").write_bytes(b"not a database at all\n" * 10)
    started = time.monotonic()
    run = fleet.cli("daemon", "start")
    assert run.code == 1
    assert "the daemon could not start: " in run.err and "is not a clawctl registry" in run.err
    assert "Traceback" not in run.err
    assert time.monotonic() - started < 10
    assert read_info(fleet.home) is None
    assert (fleet.home / "registry.db").read_bytes() == b"not a database at all\n" * 10
