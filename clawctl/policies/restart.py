"""Restart decisions: which exits restart, how long to wait, when to give up (CrashLoop).

Pure functions of the pool's failover policy, the agent's restart history and
``now`` (and ``rng`` for jitter); nothing here reads a clock or touches a process.

Backoff: the first restart after a stable run is immediate (a crash is replaced
at once); the k-th consecutive one waits ``initial * factor**(k-2)`` capped at
``max``, spread by ±``jitter`` so that agents that failed together do not
restart in lock-step. A run of at least ``resetAfter`` clears the count.
More than ``maxRestarts`` restarts within ``window`` puts the agent in
CrashLoop: no more restarts until ``clawctl retry`` or a new apply.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

from clawctl.config.model import Failover, RestartPolicy


class ExitClass(str, Enum):
    """Why a process ended, as far as restart policy is concerned."""

    SUCCESS = "success"          # exit code 0
    FAILURE = "failure"          # non-zero exit code
    SIGNALED = "signaled"        # killed by a signal we did not send
    OOM_KILLED = "oom-killed"    # killed for its memory quota
    DISK_QUOTA = "disk-quota"    # stopped by the daemon for its disk quota
    HUNG = "hung"                # killed by the daemon: its heartbeats stopped
    STOPPED = "stopped"          # stopped on purpose (scale-down, drain, delete)
    VANISHED = "vanished"        # an adopted process that is gone; its exit status is unknowable


@dataclass(frozen=True)
class ExitInfo:
    """How one run ended."""

    exit_class: ExitClass
    code: int | None = None
    signal: int | None = None
    at: float = 0.0

    def describe(self) -> str:
        """Short human text: 'exit 3', 'signal 9', 'OOMKilled'…"""
        if self.exit_class is ExitClass.OOM_KILLED:
            return "OOMKilled"
        if self.exit_class is ExitClass.DISK_QUOTA:
            return "DiskQuotaExceeded"
        if self.exit_class is ExitClass.HUNG:
            return "Hung"
        if self.exit_class is ExitClass.VANISHED:
            return "vanished (exit status unknown)"
        if self.signal is not None:
            return f"signal {self.signal}"
        if self.code is not None:
            return f"exit {self.code}"
        return self.exit_class.value


def classify_exit(*, code: int | None, signal: int | None, oom_killed: bool = False, requested_stop: bool = False,
                  disk_quota: bool = False, hung: bool = False, at: float = 0.0) -> ExitInfo:
    """Classify a raw exit (code or signal) into the class restart policy uses."""
    if requested_stop:
        cls = ExitClass.STOPPED
    elif oom_killed:
        cls = ExitClass.OOM_KILLED
    elif disk_quota:
        cls = ExitClass.DISK_QUOTA
    elif hung:
        cls = ExitClass.HUNG
    elif signal is not None:
        cls = ExitClass.SIGNALED
    elif code is None:
        cls = ExitClass.VANISHED
    elif code == 0:
        cls = ExitClass.SUCCESS
    else:
        cls = ExitClass.FAILURE
    return ExitInfo(cls, code=code, signal=signal, at=at)


def should_restart(policy: RestartPolicy, exit: ExitInfo) -> bool:
    """Whether ``policy`` restarts after ``exit``. A requested stop never restarts."""
    if exit.exit_class is ExitClass.STOPPED:
        return False
    if policy is RestartPolicy.ALWAYS:
        return True
    if policy is RestartPolicy.NEVER:
        return False
    return exit.exit_class is not ExitClass.SUCCESS


@dataclass(frozen=True)
class RestartHistory:
    """What restart decisions need to remember about one agent slot."""

    restart_times: tuple[float, ...] = ()
    consecutive: int = 0

    def within(self, window: float, now: float) -> int:
        return sum(1 for t in self.restart_times if now - t <= window)


@dataclass(frozen=True)
class RestartDecision:
    """Restart at ``at`` (absolute time), or give up (``crash_loop``), or leave it stopped."""

    restart: bool
    at: float | None = None
    crash_loop: bool = False
    history: RestartHistory = RestartHistory()
    reason: str = ""


def backoff_delay(failover: Failover, consecutive: int, rng: random.Random) -> float:
    """Seconds to wait before the ``consecutive``-th restart in a row (1-based)."""
    if consecutive <= 1:
        return 0.0
    b = failover.backoff
    base = min(b.max, b.initial * (b.factor ** (consecutive - 2)))
    if b.jitter:
        base *= 1.0 + rng.uniform(-b.jitter, b.jitter)
    return max(0.0, min(base, b.max * (1.0 + b.jitter)))


def decide_restart(failover: Failover, history: RestartHistory, exit: ExitInfo, *, started_at: float,
                   now: float, rng: random.Random) -> RestartDecision:
    """What to do after an agent's process ended at ``now`` having started at ``started_at``."""
    if not should_restart(failover.restart, exit):
        return RestartDecision(False, history=history, reason=f"{exit.describe()}; restart: {failover.restart.value}")
    uptime = max(0.0, exit.at - started_at) if exit.at else max(0.0, now - started_at)
    consecutive = 1 if uptime >= failover.backoff.reset_after else history.consecutive + 1
    recent = tuple(t for t in history.restart_times if now - t <= failover.window)
    if len(recent) >= failover.max_restarts:
        return RestartDecision(
            False, crash_loop=True, history=RestartHistory(recent, consecutive),
            reason=f"{len(recent)} restarts within {failover.window:g}s (maxRestarts {failover.max_restarts}); "
                   f"last exit: {exit.describe()}",
        )
    delay = backoff_delay(failover, consecutive, rng)
    return RestartDecision(True, at=now + delay, history=RestartHistory(recent + (now + delay,), consecutive),
                           reason=f"{exit.describe()}; restart #{consecutive} in {delay:.2f}s")
