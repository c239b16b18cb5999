"""The reconciler over a real SQLite registry and the in-memory FakeLauncher: no processes.

A converged fleet plans nothing and a no-op pass writes nothing; exits, restarts,
crash loops, scale-down and re-adoption go through the same observe/plan/act path
the daemon uses.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from clawctl.config.loader import load_sources
from clawctl.config.sources import Source
from clawctl.daemon.reconciler import READY_AFTER, Reconciler
from clawctl.policies.supervision import AgentState
from clawctl.registry.apply import plan_fleet, record, revision_meta
from clawctl.registry.engine import Registry
from clawctl.registry.records import RevisionKind
from clawctl.runtime.fake import FakeLauncher


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingRegistry(Registry):
    """The real registry, counting write transactions."""

    writes = 0

    @contextmanager
    def writing(self) -> Iterator[Any]:
        type(self).writes += 1
        with super().writing() as conn:
            yield conn


def apply(registry: Registry, text: str) -> None:
    loaded = load_sources([Source("fleet.yaml", text.encode())])
    assert loaded.fleet is not None, loaded.diagnostics
    change = plan_fleet(registry, loaded.fleet)
    record(registry, change, meta=revision_meta(RevisionKind.APPLY, message=None),
           approved_removals=change.removed_pools)


def fleet_yaml(replicas: int, *, extra: str = "") -> str:
    return (
        "apiVersion: clawctl/v1\nkind: Fleet\nmetadata: {name: f}\n---\n"
        "apiVersion: clawctl/v1\nkind: AgentPool\nmetadata: {name: web}\n"
        f"spec:\n  replicas: {replicas}\n  command: [agent]\n{extra}"
    )


@pytest.fixture
def world(clawctl_home: Path) -> Iterator[tuple[CountingRegistry, FakeLauncher, Clock, Reconciler]]:
    registry = CountingRegistry(home=clawctl_home)
    launcher = FakeLauncher()
    clock = Clock()
    reconciler = Reconciler(registry, launcher, home=clawctl_home, clock=clock, rng=random.Random(0))
    yield registry, launcher, clock, reconciler
    registry.close()


def settle(reconciler: Reconciler, clock: Clock, passes: int = 5) -> None:
    for _ in range(passes):
        reconciler.check_registry = True
        reconciler.run_pass()
        clock.advance(READY_AFTER)


def states(reconciler: Reconciler) -> dict[str, AgentState]:
    return {r.agent_id: r.state for r in reconciler.records.values()}


def test_converged_fleet_pass_writes_nothing_and_signals_nothing(world: Any) -> None:
    registry, launcher, clock, reconciler = world
    apply(registry, fleet_yaml(3))
    settle(reconciler, clock)
    assert states(reconciler) == {f"web-{i}": AgentState.RUNNING for i in range(3)}
    writes, spawned, signals = registry.writes, len(launcher.spawned), len(launcher.signals)
    for _ in range(10):
        result = reconciler.run_pass()
        assert result.changed is False
    reconciler.check_registry = True
    assert reconciler.run_pass().changed is False
    assert (registry.writes, len(launcher.spawned), len(launcher.signals)) == (writes, spawned, signals)


def test_exit_restarts_then_crash_loops(world: Any) -> None:
    registry, launcher, clock, reconciler = world
    apply(registry, fleet_yaml(1, extra="  failover: {maxRestarts: 2, window: 1m, backoff: {initial: 1s, jitter: 0}}\n"))
    settle(reconciler, clock)
    for expected in (AgentState.STARTING, AgentState.BACKOFF, AgentState.CRASHLOOP):
        launcher.exit(launcher.running()[0], 1)
        reconciler.run_pass()
        assert states(reconciler)["web-0"] is expected
        clock.advance(1.0)
        reconciler.run_pass()
        clock.advance(READY_AFTER)
        reconciler.run_pass()
        if expected is AgentState.CRASHLOOP:
            break
    record_ = next(iter(reconciler.records.values()))
    assert "maxRestarts 2" in record_.message and record_.last_exit == "exit 1"
    assert launcher.running() == []


def test_scale_down_sends_sigterm_then_sigkill_after_grace(world: Any) -> None:
    registry, launcher, clock, reconciler = world
    apply(registry, fleet_yaml(2, extra="  drain: {gracePeriod: 5s}\n"))
    settle(reconciler, clock)
    apply(registry, fleet_yaml(1, extra="  drain: {gracePeriod: 5s}\n"))
    victim = next(r.process for r in reconciler.records.values() if r.slot == 1)
    assert victim is not None
    launcher.ignore_sigterm(victim)
    reconciler.check_registry = True
    reconciler.run_pass()
    assert states(reconciler)["web-1"] is AgentState.STOPPING
    clock.advance(5.0)
    reconciler.run_pass()
    reconciler.run_pass()
    assert "web-1" not in states(reconciler)
    assert [s for _, s in launcher.signals][-2:] == [15, 9]


def test_restart_of_the_daemon_adopts_running_agents(world: Any, clawctl_home: Path) -> None:
    registry, launcher, clock, reconciler = world
    apply(registry, fleet_yaml(2))
    settle(reconciler, clock)
    pids = {r.process.pid for r in reconciler.records.values() if r.process}
    successor = launcher.restarted()
    again = Reconciler(registry, successor, home=clawctl_home, clock=clock, rng=random.Random(0))
    again.restore()
    again.run_pass()
    assert {r.process.pid for r in again.records.values() if r.process} == pids
    assert len(successor.spawned) == 0


def test_events_are_pruned_to_the_newest(world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import clawctl.daemon.reconciler as module
    from clawctl.registry import supervision as store

    registry, launcher, clock, reconciler = world
    monkeypatch.setattr(module, "EVENTS_KEPT", 3)
    monkeypatch.setattr(module, "EVENTS_PRUNE_INTERVAL", 0.0)
    apply(registry, fleet_yaml(4))
    settle(reconciler, clock)
    launcher.exit(launcher.running()[0], 1)
    reconciler.run_pass()
    with registry.reading() as conn:
        kept = store.recent_events(conn, limit=100)
    assert len(kept) == 3
    assert kept[-1]["reason"] == "Started"


def test_given_up_agents_of_removed_slots_are_forgotten(world: Any) -> None:
    registry, launcher, clock, reconciler = world
    policy = "  failover: {restart: never}\n"
    apply(registry, fleet_yaml(3, extra=policy))
    settle(reconciler, clock)
    victim = next(r.process for r in reconciler.records.values() if r.slot == 2)
    assert victim is not None
    launcher.exit(victim, 1)
    reconciler.run_pass()
    assert states(reconciler)["web-2"] is AgentState.EXITED
    apply(registry, fleet_yaml(2, extra=policy))
    settle(reconciler, clock)
    assert sorted(states(reconciler)) == ["web-0", "web-1"]
    with registry.reading() as conn:
        from clawctl.registry import supervision as store

        assert sorted(r.agent_id for r in store.load_agents(conn)) == ["web-0", "web-1"]


def _command(registry: Registry, verb: str, target: str, args: dict[str, Any] | None = None) -> int:
    from clawctl.registry import supervision as store

    with registry.writing() as conn:
        return store.enqueue_command(conn, verb=verb, target=target, actor="test", args=args)


def test_a_drained_pool_stays_drained_across_a_daemon_restart_until_uncordoned(world: Any,
                                                                               clawctl_home: Path) -> None:
    from clawctl.registry import supervision as store

    registry, launcher, clock, reconciler = world
    apply(registry, fleet_yaml(2))
    settle(reconciler, clock)
    command = _command(registry, "drain", "pool/web", {"grace_period": 1.0})
    settle(reconciler, clock)
    assert launcher.running() == [] and states(reconciler) == {}
    with registry.reading() as conn:
        assert store.command_result(conn, command) == "cordoned pool web"
        assert store.load_cordons(conn) == {(1, "web")}
    again = Reconciler(registry, launcher.restarted(), home=clawctl_home, clock=clock, rng=random.Random(0))
    again.restore()
    settle(again, clock)
    assert states(again) == {}  # still drained: nothing started
    _command(registry, "uncordon", "pool/web")
    settle(again, clock)
    assert sorted(states(again)) == ["web-0", "web-1"]
    with registry.reading() as conn:
        assert store.load_cordons(conn) == set()


def test_drain_of_an_unknown_target_says_so(world: Any) -> None:
    from clawctl.registry import supervision as store

    registry, _, clock, reconciler = world
    apply(registry, fleet_yaml(1))
    settle(reconciler, clock)
    command = _command(registry, "drain", "agent/nope")
    settle(reconciler, clock)
    with registry.reading() as conn:
        assert store.command_result(conn, command) == "error: no agent nope"


def test_a_mass_failure_recovers_in_priority_phases(world: Any) -> None:
    registry, launcher, clock, reconciler = world
    apply(registry, fleet_yaml(2, extra="  priority: 1\n") + (
        "---\napiVersion: clawctl/v1\nkind: AgentPool\nmetadata: {name: core}\n"
        "spec:\n  replicas: 2\n  priority: 10\n  command: [agent]\n"))
    settle(reconciler, clock)
    assert len(launcher.running()) == 4
    for proc in launcher.running():
        launcher.exit(proc, 1)
    reconciler.run_pass()  # the first restart after a stable run is immediate, but phase by phase
    restarted = {r.agent_id for r in reconciler.records.values() if r.state is AgentState.STARTING}
    assert restarted == {"core-0", "core-1"}
    clock.advance(READY_AFTER + 0.01)
    reconciler.run_pass()  # core is ready: the next phase starts
    assert {r.agent_id for r in reconciler.records.values() if r.state is AgentState.STARTING} == {"web-0", "web-1"}
