"""Restart decisions: exit classes, backoff growth and jitter, reset after stable uptime, CrashLoop."""

from __future__ import annotations

import random

import pytest

from clawctl.config.model import Backoff, Failover, RestartPolicy
from clawctl.policies.restart import (
    ExitClass,
    RestartHistory,
    backoff_delay,
    classify_exit,
    decide_restart,
    should_restart,
)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"code": 0, "signal": None}, ExitClass.SUCCESS),
        ({"code": 3, "signal": None}, ExitClass.FAILURE),
        ({"code": None, "signal": 11}, ExitClass.SIGNALED),
        ({"code": None, "signal": 9, "oom_killed": True}, ExitClass.OOM_KILLED),
        ({"code": None, "signal": 15, "requested_stop": True}, ExitClass.STOPPED),
        ({"code": None, "signal": None}, ExitClass.VANISHED),
        ({"code": None, "signal": 9, "disk_quota": True}, ExitClass.DISK_QUOTA),
    ],
)
def test_classify_exit(kwargs: dict[str, object], expected: ExitClass) -> None:
    assert classify_exit(**kwargs).exit_class is expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("policy", "exit_class", "restart"),
    [
        (RestartPolicy.ALWAYS, ExitClass.SUCCESS, True),
        (RestartPolicy.ALWAYS, ExitClass.STOPPED, False),
        (RestartPolicy.ON_FAILURE, ExitClass.SUCCESS, False),
        (RestartPolicy.ON_FAILURE, ExitClass.FAILURE, True),
        (RestartPolicy.ON_FAILURE, ExitClass.OOM_KILLED, True),
        (RestartPolicy.ON_FAILURE, ExitClass.SIGNALED, True),
        (RestartPolicy.NEVER, ExitClass.FAILURE, False),
    ],
)
def test_should_restart(policy: RestartPolicy, exit_class: ExitClass, restart: bool) -> None:
    from clawctl.policies.restart import ExitInfo

    assert should_restart(policy, ExitInfo(exit_class)) is restart


def test_first_restart_is_immediate_then_exponential_capped() -> None:
    failover = Failover(backoff=Backoff(initial=1.0, max=8.0, factor=2.0, jitter=0.0))
    rng = random.Random(0)
    delays = [backoff_delay(failover, k, rng) for k in range(1, 8)]
    assert delays == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_jitter_spreads_agents_that_failed_together() -> None:
    failover = Failover(backoff=Backoff(initial=1.0, max=60.0, factor=2.0, jitter=0.2))
    delays = {round(backoff_delay(failover, 3, random.Random(seed)), 4) for seed in range(20)}
    assert len(delays) > 10
    assert all(1.6 <= d <= 2.4 for d in delays)


def test_stable_uptime_resets_the_count() -> None:
    failover = Failover(backoff=Backoff(initial=1.0, max=60.0, factor=2.0, jitter=0.0, reset_after=60.0))
    history = RestartHistory(restart_times=(10.0,), consecutive=4)
    crash = classify_exit(code=1, signal=None, at=1000.0)
    decision = decide_restart(failover, history, crash, started_at=500.0, now=1000.0, rng=random.Random(0))
    assert decision.restart and decision.at == 1000.0
    assert decision.history.consecutive == 1


def test_crash_loop_after_max_restarts_within_window() -> None:
    failover = Failover(max_restarts=3, window=60.0, backoff=Backoff(initial=0.1, max=1.0, jitter=0.0))
    history = RestartHistory()
    now = 100.0
    outcomes = []
    for _ in range(5):
        crash = classify_exit(code=2, signal=None, at=now)
        decision = decide_restart(failover, history, crash, started_at=now - 0.01, now=now, rng=random.Random(0))
        outcomes.append((decision.restart, decision.crash_loop))
        history = decision.history
        now = (decision.at or now) + 0.01
    assert outcomes[:3] == [(True, False)] * 3
    assert outcomes[3] == (False, True)
    assert "maxRestarts 3" in decide_restart(
        failover, history, classify_exit(code=2, signal=None, at=now), started_at=now, now=now, rng=random.Random(0)
    ).reason


def test_restarts_outside_window_do_not_count() -> None:
    failover = Failover(max_restarts=2, window=10.0)
    history = RestartHistory(restart_times=(0.0, 1.0), consecutive=2)
    decision = decide_restart(failover, history, classify_exit(code=1, signal=None, at=100.0), started_at=99.0,
                              now=100.0, rng=random.Random(0))
    assert decision.restart and not decision.crash_loop


def test_never_policy_leaves_it_stopped_with_a_reason() -> None:
    decision = decide_restart(Failover(restart=RestartPolicy.NEVER), RestartHistory(),
                              classify_exit(code=1, signal=None), started_at=0.0, now=1.0, rng=random.Random(0))
    assert not decision.restart and not decision.crash_loop
    assert decision.reason == "exit 1; restart: never"
