"""FakeLauncher keeps the contract of ProcessLauncher in memory."""

from __future__ import annotations

import signal
from pathlib import Path

from clawctl.config.model import Isolation, NetworkMode
from clawctl.errors import RuntimeFailure
from clawctl.runtime import FakeLauncher, LaunchSpec, Usage
from clawctl.runtime.host import HostFacts

import pytest


def spec(agent_id: str = "pool-1", **limits: object) -> LaunchSpec:
    return LaunchSpec(agent_id, ("python3", "-m", "x"), {}, Path("/w") / agent_id, Path("/logs"), Isolation(**limits))  # type: ignore[arg-type]


def test_spawn_exit_reap_once() -> None:
    fake = FakeLauncher()
    proc = fake.spawn(spec(memory_bytes=1 << 30, network=NetworkMode.NONE))
    assert fake.alive(proc) and fake.spawned[0].agent_id == "pool-1"
    assert proc.enforcement["memory"] == "enforced" and proc.enforcement["cpu"] == "unlimited"
    assert proc.log_path == Path("/logs/pool-1.log")
    fake.exit(proc, 3)
    assert not fake.alive(proc)
    [exit_] = fake.reap()
    assert (exit_.pid, exit_.agent_id, exit_.returncode, exit_.signal) == (proc.pid, "pool-1", 3, None)
    assert fake.reap() == []


def test_oom_and_stop_with_grace() -> None:
    fake = FakeLauncher()
    hog, stubborn, polite = (fake.spawn(spec(f"a{i}")) for i in range(3))
    fake.exit(hog, oom_killed=True)
    fake.ignore_sigterm(stubborn)
    fake.stop(stubborn, 5.0)
    fake.signal(polite, signal.SIGTERM)
    exits = {e.agent_id: e for e in fake.reap()}
    assert exits["a0"].reason == "OOMKilled"
    assert exits["a1"].signal == signal.SIGKILL
    assert exits["a2"].signal == signal.SIGTERM
    assert fake.stops == [(stubborn.pid, 5.0)]
    assert (polite.pid, signal.SIGTERM) in fake.signals


def test_restart_and_adopt() -> None:
    fake = FakeLauncher()
    proc = fake.spawn(spec())
    successor = fake.restarted()
    assert successor.adopt(proc.pid, proc.create_time + 1, agent_id="pool-1") is None
    adopted = successor.adopt(proc.pid, proc.create_time, agent_id="pool-1")
    assert adopted is not None and adopted.adopted and successor.alive(adopted)
    successor.stop(adopted, 1.0)
    assert not successor.alive(adopted)
    assert successor.reap() == []  # not its child: exit codes are unknowable
    assert successor.release(adopted).returncode is None


def test_probe_spawn_error_and_monitored_hosts() -> None:
    fake = FakeLauncher(host=HostFacts(netns=False, netns_reason="no"))
    proc = fake.spawn(spec(memory_bytes=1 << 20))
    assert proc.enforcement["memory"] == "monitored"
    assert fake.probe(proc) == Usage(0, 0.0, None, 1)
    fake.usage[proc.pid] = Usage(5 << 20, 1.0, 50.0, 2)
    assert fake.probe(proc).rss_bytes == 5 << 20
    fake.spawn_error = RuntimeFailure("boom")
    with pytest.raises(RuntimeFailure):
        fake.spawn(spec("b"))
    assert fake.spawn(spec("c")).agent_id == "c"
    assert [p.agent_id for p in fake.running()] == ["pool-1", "c"]
