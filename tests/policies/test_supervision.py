"""plan_processes: a converged fleet plans nothing; starts, scale-down, dependencies, budget, removal order."""

from __future__ import annotations

from clawctl.policies.supervision import (
    AgentState,
    DesiredPool,
    ObservedAgent,
    Role,
    RoleChange,
    Start,
    Stop,
    StopReason,
    plan_processes,
    resolve_max_surge,
    resolve_max_unavailable,
)


def running(pool: str, slot: int, spec: str = "h1", state: AgentState = AgentState.RUNNING) -> ObservedAgent:
    return ObservedAgent(f"{pool}-{slot}", pool, slot, state, spec)


def test_converged_fleet_plans_nothing() -> None:
    pool = DesiredPool("web", replicas=2, spec_hash="h1")
    plan = plan_processes([pool], [running("web", 0), running("web", 1)], now=0.0, start_budget=10)
    assert plan.empty and plan.wake_at is None


def test_missing_slots_start_in_priority_phases_within_budget() -> None:
    low = DesiredPool("low", replicas=2, spec_hash="a", priority=1)
    high = DesiredPool("high", replicas=2, spec_hash="b", priority=9)
    same = DesiredPool("same", replicas=2, spec_hash="c", priority=9)
    plan = plan_processes([low, high, same], [], now=0.0, start_budget=3)
    assert plan.starts == (Start("high-0", "high", 0), Start("high-1", "high", 1), Start("same-0", "same", 0))
    starting = [running("high", 0, "b", AgentState.STARTING), running("high", 1, "b"), running("same", 0, "c"),
                running("same", 1, "c")]
    assert plan_processes([low, high, same], starting, now=0.0, start_budget=10).starts == ()
    up = [running("high", 0, "b"), running("high", 1, "b"), running("same", 0, "c"), running("same", 1, "c")]
    assert [s.agent_id for s in plan_processes([low, high, same], up, now=0.0, start_budget=10).starts] == \
        ["low-0", "low-1"]


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


def agent(pool: str, slot: int, role: Role, state: AgentState = AgentState.RUNNING, spec: str = "h1",
          next_start_at: float | None = None) -> ObservedAgent:
    return ObservedAgent(f"{pool}-{slot}", pool, slot, state, spec, next_start_at, role)


def test_standby_slots_start_as_standbys() -> None:
    pool = DesiredPool("chat", replicas=2, spec_hash="h", standbys=1)
    plan = plan_processes([pool], [], now=0.0, start_budget=10)
    assert [(s.agent_id, s.role) for s in plan.starts] == [
        ("chat-0", Role.PRIMARY), ("chat-1", Role.PRIMARY), ("chat-2", Role.STANDBY)]


def test_failed_primary_swaps_roles_with_a_ready_standby_at_once() -> None:
    pool = DesiredPool("chat", replicas=2, spec_hash="h1", standbys=1)
    observed = [agent("chat", 0, Role.PRIMARY, AgentState.BACKOFF, next_start_at=5.0),
                agent("chat", 1, Role.PRIMARY), agent("chat", 2, Role.STANDBY)]
    plan = plan_processes([pool], observed, now=0.0, start_budget=10)
    assert set(plan.roles) == {RoleChange("chat-2", "chat", Role.PRIMARY), RoleChange("chat-0", "chat", Role.STANDBY)}
    assert plan.starts == () and plan.wake_at == 5.0
    # The failed one restarts later as the standby.
    after = [agent("chat", 0, Role.STANDBY, AgentState.BACKOFF, next_start_at=5.0), agent("chat", 1, Role.PRIMARY),
             agent("chat", 2, Role.PRIMARY)]
    assert plan_processes([pool], after, now=5.0, start_budget=10).starts == (
        Start("chat-0", "chat", 0, Role.STANDBY),)


def test_no_promotion_without_a_ready_standby() -> None:
    pool = DesiredPool("chat", replicas=1, spec_hash="h1", standbys=1)
    observed = [agent("chat", 0, Role.PRIMARY, AgentState.CRASHLOOP),
                agent("chat", 1, Role.STANDBY, AgentState.STARTING)]
    assert plan_processes([pool], observed, now=0.0, start_budget=10).roles == ()


def test_scale_up_promotes_the_standby_and_starts_a_new_standby() -> None:
    pool = DesiredPool("chat", replicas=3, spec_hash="h1", standbys=1)
    observed = [agent("chat", 0, Role.PRIMARY), agent("chat", 1, Role.PRIMARY), agent("chat", 2, Role.STANDBY)]
    plan = plan_processes([pool], observed, now=0.0, start_budget=10)
    assert plan.roles == (RoleChange("chat-2", "chat", Role.PRIMARY),)
    assert plan.starts == (Start("chat-3", "chat", 3, Role.STANDBY),)


def test_rolling_update_surges_first_then_drains_within_budget() -> None:
    pool = DesiredPool("web", replicas=3, spec_hash="new", max_unavailable=1, max_surge=1)
    old = [agent("web", i, Role.PRIMARY, spec="old") for i in range(3)]
    first = plan_processes([pool], old, now=0.0, start_budget=10)
    assert first.starts == (Start("web-3", "web", 3, Role.SURGE),)
    assert [s.agent_id for s in first.stops] == ["web-2"]  # 3 serving, floor 2: one may go now
    surged = old + [agent("web", 3, Role.SURGE, spec="new")]
    second = plan_processes([pool], surged, now=0.0, start_budget=10)
    assert [s.agent_id for s in second.stops] == ["web-2", "web-1"] and second.starts == ()
    draining = [agent("web", 0, Role.PRIMARY, spec="old"), agent("web", 1, Role.PRIMARY, AgentState.DRAINING, "old"),
                agent("web", 3, Role.SURGE, spec="new")]
    # web-2 ended and restarts on the new spec; web-0 waits (serving 2 = floor).
    third = plan_processes([pool], draining, now=0.0, start_budget=10)
    assert third.starts == (Start("web-2", "web", 2, Role.PRIMARY),) and third.stops == ()
    done = [agent("web", i, Role.PRIMARY, spec="new") for i in range(3)] + [agent("web", 3, Role.SURGE, spec="new")]
    last = plan_processes([pool], done, now=0.0, start_budget=10)
    assert last.stops == (Stop("web-3", "web", StopReason.ROLLOUT_DONE),) and last.starts == ()


def test_rolling_update_without_surge_never_goes_below_the_floor() -> None:
    pool = DesiredPool("web", replicas=2, spec_hash="new", max_unavailable=1, max_surge=0)
    old = [agent("web", 0, Role.PRIMARY, spec="old"), agent("web", 1, Role.PRIMARY, spec="old")]
    plan = plan_processes([pool], old, now=0.0, start_budget=10)
    assert [s.agent_id for s in plan.stops] == ["web-1"] and plan.starts == ()
    one_down = [agent("web", 0, Role.PRIMARY, spec="old"), agent("web", 1, Role.PRIMARY, AgentState.STARTING, "new")]
    assert plan_processes([pool], one_down, now=0.0, start_budget=10).stops == ()


def test_stale_standby_is_replaced_one_at_a_time() -> None:
    pool = DesiredPool("chat", replicas=1, spec_hash="new", standbys=2, max_surge=0)
    observed = [agent("chat", 0, Role.PRIMARY, spec="new"), agent("chat", 1, Role.STANDBY, spec="old"),
                agent("chat", 2, Role.STANDBY, spec="old")]
    assert [s.agent_id for s in plan_processes([pool], observed, now=0.0, start_budget=10).stops] == ["chat-2"]


def test_cordoned_pool_drains_everything_and_starts_nothing() -> None:
    pool = DesiredPool("web", replicas=2, spec_hash="h1", cordoned=True)
    observed = [agent("web", 0, Role.PRIMARY), agent("web", 1, Role.PRIMARY, AgentState.DRAINING)]
    plan = plan_processes([pool], observed, now=0.0, start_budget=10)
    assert plan.stops == (Stop("web-0", "web", StopReason.DRAINED),) and plan.starts == ()


def test_resolve_max_surge() -> None:
    assert resolve_max_surge(0, 10) == 0
    assert resolve_max_surge("25%", 10) == 3
    assert resolve_max_surge(2, 3) == 2
