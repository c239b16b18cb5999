"""plan_processes: a converged fleet plans nothing; starts, scale-down, dependencies, budget, removal order."""

from __future__ import annotations

from clawctl.policies.supervision import (
    AgentState,
    DesiredPool,
    ObservedAgent,
    Start,
    Stop,
    StopReason,
    plan_processes,
    resolve_max_unavailable,
)


def running(pool: str, slot: int, spec: str = "h1", state: AgentState = AgentState.RUNNING) -> ObservedAgent:
    return ObservedAgent(f"{pool}-{slot}", pool, slot, state, spec)


def test_converged_fleet_plans_nothing() -> None:
    pool = DesiredPool("web", replicas=2, spec_hash="h1")
    plan = plan_processes([pool], [running("web", 0), running("web", 1)], now=0.0, start_budget=10)
    assert plan.empty and plan.wake_at is None


def test_missing_slots_start_in_priority_order_within_budget() -> None:
    low = DesiredPool("low", replicas=2, spec_hash="a", priority=1)
    high = DesiredPool("high", replicas=2, spec_hash="b", priority=9)
    plan = plan_processes([low, high], [], now=0.0, start_budget=3)
    assert plan.starts == (Start("high-0", "high", 0), Start("high-1", "high", 1), Start("low-0", "low", 0))


def test_standbys_are_extra_slots() -> None:
    pool = DesiredPool("chat", replicas=2, spec_hash="h", standbys=1)
    plan = plan_processes([pool], [], now=0.0, start_budget=10)
    assert [s.agent_id for s in plan.starts] == ["chat-0", "chat-1", "chat-2"]


def test_scale_down_stops_highest_slots() -> None:
    pool = DesiredPool("web", replicas=1, spec_hash="h1")
    plan = plan_processes([pool], [running("web", 0), running("web", 1), running("web", 2)], now=0.0,
                          start_budget=10)
    assert plan.stops == (Stop("web-2", "web", StopReason.SCALE_DOWN), Stop("web-1", "web", StopReason.SCALE_DOWN))
    assert plan.starts == ()


def test_dependent_pool_waits_until_dependency_ready() -> None:
    db = DesiredPool("db", replicas=1, spec_hash="d")
    app = DesiredPool("app", replicas=1, spec_hash="a", depends_on=("db",))
    first = plan_processes([db, app], [], now=0.0, start_budget=10)
    assert [s.agent_id for s in first.starts] == ["db-0"]
    starting = plan_processes([db, app], [running("db", 0, "d", AgentState.STARTING)], now=0.0, start_budget=10)
    assert starting.starts == ()
    ready = plan_processes([db, app], [running("db", 0, "d")], now=0.0, start_budget=10)
    assert [s.agent_id for s in ready.starts] == ["app-0"]


def test_backoff_restart_waits_until_due_and_reports_wake_time() -> None:
    pool = DesiredPool("web", replicas=1, spec_hash="h1")
    waiting = ObservedAgent("web-0", "web", 0, AgentState.BACKOFF, "h1", next_start_at=5.0)
    early = plan_processes([pool], [waiting], now=4.0, start_budget=10)
    assert early.starts == () and early.wake_at == 5.0
    due = plan_processes([pool], [waiting], now=5.0, start_budget=10)
    assert due.starts == (Start("web-0", "web", 0),)


def test_crash_loop_and_exited_slots_are_left_alone() -> None:
    pool = DesiredPool("web", replicas=2, spec_hash="h1")
    agents = [running("web", 0, state=AgentState.CRASHLOOP), running("web", 1, state=AgentState.EXITED)]
    assert plan_processes([pool], agents, now=0.0, start_budget=10).empty


def test_removed_pools_stop_dependents_first() -> None:
    observed = [running("db", 0), running("app", 0)]
    plan = plan_processes([], observed, now=0.0, start_budget=10, removed_depends_on={"app": ("db",)})
    assert plan.stops == (Stop("app-0", "app", StopReason.POOL_REMOVED),)
    later = plan_processes([], [running("db", 0)], now=0.0, start_budget=10, removed_depends_on={"app": ("db",)})
    assert later.stops == (Stop("db-0", "db", StopReason.POOL_REMOVED),)


def test_spec_change_replaces_within_max_unavailable() -> None:
    pool = DesiredPool("web", replicas=3, spec_hash="new", max_unavailable=1)
    agents = [running("web", i, "old") for i in range(3)]
    plan = plan_processes([pool], agents, now=0.0, start_budget=10)
    assert len(plan.stops) == 1 and plan.stops[0].reason is StopReason.SPEC_CHANGED
    one_down = [running("web", 0, "old"), running("web", 1, "old")]
    assert plan_processes([pool], one_down, now=0.0, start_budget=10).stops == ()


def test_resolve_max_unavailable() -> None:
    assert resolve_max_unavailable(2, 10) == 2
    assert resolve_max_unavailable("25%", 10) == 2
    assert resolve_max_unavailable("10%", 3) == 1
