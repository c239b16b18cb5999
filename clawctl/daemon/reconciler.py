"""One reconcile pass: observe → decide (pure policies) → act → record.

Level-triggered: a pass carries no event payload. Wake-ups (apply, a child's
exit, a command) only make the next pass come sooner. A pass with nothing to
do reads nothing from disk but a tiny "which revisions are current" query
(skipped entirely while nothing asked for it), writes nothing and signals
nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from clawctl.config.build import build_pool
from clawctl.config.model import AgentPool
from clawctl.config.normalize import canonical_json
from clawctl.daemon.control.directory import AgentView, Directory, PoolView
from clawctl.daemon.convergence import spec_hash
from clawctl.daemon.paths import agent_log_dir, agent_workdir, control_socket, ready_file
from clawctl.daemon.records import AgentRecord, DesiredFleet, Event
from clawctl.daemon.targets import target_matches
from clawctl.errors import ClawctlError
from clawctl.policies.restart import ExitInfo, classify_exit, decide_restart
from clawctl.protocol.auth import ProcessStamp, new_token, token_digest
from clawctl.policies.supervision import (
    ACTIVE,
    FAILURE_STOPS,
    LIVE,
    AgentState,
    DesiredPool,
    ObservedAgent,
    Role,
    RoleChange,
    Start,
    StopReason,
    plan_processes,
    resolve_max_surge,
    resolve_max_unavailable,
    standby_slots,
)
from clawctl.registry import supervision as store
from clawctl.runtime.launcher import Launcher
from clawctl.runtime.records import LaunchSpec

log = logging.getLogger("clawctl.daemon")

READY_AFTER = 0.3
"""Seconds an agent must stay up after spawn to count as running (readiness: process)."""
READY_POLL = 0.02
"""While an agent with readiness: notify is starting, how often to look for its ready file."""
ADOPTED_STOP_GRACE = 5.0
"""Grace left to an agent found mid-stop by a new daemon when its pool is gone."""
ADOPTED_CHECK_INTERVAL = 1.0
"""Seconds between liveness checks of processes the daemon did not spawn itself."""
ADOPTED_CHECK_SLICE = 200
"""At most this many adopted agents are verified per check (1000 adopted: each within 5 s)."""
DEFAULT_START_CONCURRENCY = 32
QUOTA_CHECK_INTERVAL = 5.0
"""Seconds between measurements of agents with a disk quota (the walk itself is rate-limited too)."""
LOG_ROTATE_INTERVAL = 30.0
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_KEEP = 5
EVENTS_KEPT = 50_000
"""The events table keeps the newest this many (a crash-looping fleet must not fill the disk)."""
EVENTS_PRUNE_INTERVAL = 60.0
HANDOFF_SECONDS = 30.0
"""How long a promotion (failed agent → standby) stays published for the control server."""


class Registry(Protocol):
    def reading(self) -> Any: ...
    def writing(self) -> Any: ...


@dataclass
class PassResult:
    changed: bool
    next_wake: float | None


class Reconciler:
    """Owns the daemon's view of every agent and moves it toward the registry's desired state."""

    def __init__(self, registry: Registry, launcher: Launcher, *, home: Path, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None, start_concurrency: int = DEFAULT_START_CONCURRENCY,
                 directory: Directory | None = None) -> None:
        self.registry = registry
        self.launcher = launcher
        self.home = home
        self.clock = clock
        self.rng = rng or random.Random()
        self.start_concurrency = start_concurrency
        self.directory = directory
        """Where the control server learns of live agents and reports their signs of life."""
        self._published: tuple[Any, ...] | None = None
        self.records: dict[str, AgentRecord] = {}
        self.desired: dict[str, DesiredFleet] = {}
        self._heads: tuple[tuple[int, str, int | None], ...] | None = None
        self._pool_cache: dict[tuple[str, str], tuple[str, AgentPool, DesiredPool]] = {}
        self._last_known: dict[tuple[str, str], AgentPool] = {}
        self._by_pid: dict[int, str] = {}
        self._dirty: set[str] = set()
        self._removed: set[str] = set()
        self._events: list[Event] = []
        self._next_adopted_check = 0.0
        self._adopted_cursor = 0
        self._next_quota_check = 0.0
        self._next_log_rotation = 0.0
        self._next_event_prune = 0.0
        self.cordons: set[tuple[int, str]] = set()
        """(fleet id, pool or ``*``) drained by the operator, from the registry's ``cordons``."""
        self._handoffs: dict[str, tuple[str, float]] = {}
        """Failed agent key → (promoted standby key, when): published for HANDOFF_SECONDS."""
        self._degraded: set[tuple[str, str]] = set()
        self.check_registry = True
        """Set by wake-ups from apply and commands; the periodic pass also looks now and then."""

    # ----------------------------------------------------------------- startup
    def restore(self) -> None:
        """Load agent rows of a previous daemon and re-adopt the processes still running."""
        with self.registry.reading() as conn:
            rows = store.load_agents(conn) if conn is not None else []
            self.cordons = store.load_cordons(conn) if conn is not None else set()
        self._refresh_desired(force=True)
        now = self.clock()
        for row in rows:
            pool = self._pool_model(row.fleet, row.pool)
            try:
                state = AgentState(row.state)
            except ValueError:
                state = AgentState.EXITED
            record = AgentRecord(
                fleet=row.fleet, fleet_id=row.fleet_id, agent_id=row.agent_id, pool=row.pool, slot=row.slot,
                state=state, spec_hash=row.spec_hash or "", started_at=row.started_at,
                next_start_at=row.next_start_at, restarts=row.restarts, last_exit=row.last_exit_reason,
                last_exit_code=row.last_exit_code, message=row.message or "", enforcement=row.enforcement,
                token_digest=row.token_digest, role=_role(row.role), drain_deadline=row.drain_deadline,
            )
            if row.pid is not None and row.process_started is not None and state in ACTIVE:
                proc = self.launcher.adopt(row.pid, row.process_started, agent_id=row.agent_id,
                                           limits=pool.policies.isolation if pool else None,
                                           workdir=agent_workdir(self.home, row.fleet, row.agent_id),
                                           log_dir=agent_log_dir(self.home, row.fleet))
                if proc is not None:
                    stopping = state is AgentState.STOPPING
                    grace = pool.policies.drain.grace_period if pool else ADOPTED_STOP_GRACE
                    kept = state if state in (AgentState.STOPPING, AgentState.DRAINING) else AgentState.RUNNING
                    record = record.evolve(process=proc, state=kept, stop_deadline=now + grace if stopping else None,
                                           drain_deadline=(record.drain_deadline or now)
                                           if kept is AgentState.DRAINING else None)
                    self._by_pid[proc.pid] = record.key
                    self._event(record, "Adopted", f"re-adopted pid {proc.pid}")
                elif state in (AgentState.STOPPING, AgentState.DRAINING):
                    self._event(record, "Stopped", "ended while the daemon was away")
                    self._forget(record)
                    continue
                else:
                    record = self._after_exit(record, classify_exit(code=None, signal=None, at=now), now,
                                              reason="Lost", text="gone while the daemon was away")
            self.records[record.key] = record
            self._dirty.add(record.key)

    # ------------------------------------------------------------------ a pass
    def run_pass(self) -> PassResult:
        """Observe, plan, act and record once. Returns when the next pass is due (if sooner
        than the periodic tick)."""
        now = self.clock()
        self._collect_exits(now)
        self._check_adopted(now)
        if self.check_registry:
            self.check_registry = False
            self._run_commands(now)
            self._refresh_desired()
        self._promote_and_escalate(now)
        self._check_heartbeats(now)
        self._check_disk_quotas(now)
        self._rotate_logs(now)
        wake = self._plan_and_act(now)
        changed = self._persist()
        self._publish(changed)
        return PassResult(changed, _earliest(wake, self._next_internal_deadline()))

    # --------------------------------------------------------------- observing
    def _collect_exits(self, now: float) -> None:
        for ex in self.launcher.reap():
            key = self._by_pid.pop(ex.pid, None)
            record = self.records.get(key) if key else None
            if record is None or record.process is None or record.process.pid != ex.pid:
                continue
            info = classify_exit(code=ex.returncode, signal=ex.signal, oom_killed=ex.oom_killed,
                                 requested_stop=record.state is AgentState.STOPPING, at=now)
            self._handle_exit(record, info, now)

    def _check_adopted(self, now: float) -> None:
        """Notice adopted agents (not our children, so no SIGCHLD) that ended. Each check
        looks at a rotating slice, so a pass stays cheap however many were adopted."""
        if now < self._next_adopted_check:
            return
        self._next_adopted_check = now + ADOPTED_CHECK_INTERVAL
        adopted = [r for r in self.records.values()
                   if r.process is not None and r.process.adopted and r.state in ACTIVE]
        if not adopted:
            return
        start = self._adopted_cursor % len(adopted)
        chosen = (adopted + adopted)[start:start + min(len(adopted), ADOPTED_CHECK_SLICE)]
        self._adopted_cursor = start + len(chosen)
        for record in chosen:
            proc = record.process
            assert proc is not None
            if not self.launcher.alive(proc):
                self._by_pid.pop(proc.pid, None)
                self.launcher.release(proc)
                info = classify_exit(code=None, signal=None, requested_stop=record.state is AgentState.STOPPING,
                                     at=now)
                self._handle_exit(record, info, now)

    def _handle_exit(self, record: AgentRecord, info: ExitInfo, now: float) -> None:
        if record.state is AgentState.STOPPING and record.stop_reason in (StopReason.DISK_QUOTA, StopReason.HUNG):
            info = classify_exit(code=info.code, signal=info.signal, disk_quota=record.stop_reason is StopReason.DISK_QUOTA,
                                 hung=record.stop_reason is StopReason.HUNG, at=now)
            self.records[record.key] = self._after_exit(record.evolve(state=AgentState.RUNNING), info, now,
                                                        reason="Exited", text=info.describe())
            return
        if record.state in (AgentState.STOPPING, AgentState.DRAINING):
            # Ended while draining (before its SIGTERM): it was on its way out anyway.
            self._event(record, "Stopped", f"{info.describe()} ({record.stop_reason.value if record.stop_reason else 'stop'})")
            self._forget(record)
            return
        self.records[record.key] = self._after_exit(record, info, now, reason="Exited", text=info.describe())

    def _after_exit(self, record: AgentRecord, info: ExitInfo, now: float, *, reason: str, text: str) -> AgentRecord:
        pool = self._pool_model(record.fleet, record.pool)
        level = "warning" if info.exit_class.value not in ("success", "stopped") else "info"
        self._event(record, reason, text, level)
        base = record.evolve(process=None, last_exit=info.describe(), last_exit_code=info.code, stop_deadline=None)
        if pool is None:  # its pool is gone: nothing to restart into
            return base.evolve(state=AgentState.EXITED, message="pool removed")
        decision = decide_restart(pool.policies.failover, record.history, info,
                                  started_at=record.started_at or now, now=now, rng=self.rng)
        self._dirty.add(record.key)
        if decision.crash_loop:
            self._event(record, "CrashLoop", decision.reason, "warning")
            return base.evolve(state=AgentState.CRASHLOOP, history=decision.history, message=decision.reason,
                               next_start_at=None)
        if decision.restart:
            delay = (decision.at or now) - now
            if delay > 0.001:
                self._event(record, "BackOff", f"restarting in {delay:.2f}s after {info.describe()}")
            return base.evolve(state=AgentState.BACKOFF, history=decision.history, next_start_at=decision.at,
                               message=decision.reason)
        return base.evolve(state=AgentState.EXITED, history=decision.history, message=decision.reason,
                           next_start_at=None)

    def _promote_and_escalate(self, now: float) -> None:
        for record in list(self.records.values()):
            if record.state is AgentState.STARTING and record.started_at is not None:
                self._check_ready(record, now)
            elif record.state is AgentState.DRAINING:
                handed_over = self.directory is None or self.directory.handed_over(record.key)
                if handed_over or (record.drain_deadline is not None and now >= record.drain_deadline):
                    why = "sessions handed over" if handed_over else "drain deadline reached"
                    self._terminate(record, now, why)
            elif record.state is AgentState.STOPPING and record.stop_deadline is not None \
                    and now >= record.stop_deadline and record.process is not None:
                self.launcher.signal(record.process, signal.SIGKILL)
                self._event(record, "Killed", "grace period over; sent SIGKILL to the whole process tree", "warning")
                self.records[record.key] = record.evolve(stop_deadline=None)
                self._dirty.add(record.key)

    def _check_ready(self, record: AgentRecord, now: float) -> None:
        """Starting → Running: after READY_AFTER alive, or — for ``readiness: notify`` — when
        the agent created its ready file; a notify agent silent past startTimeout is killed
        (its exit then goes through the restart policy)."""
        model = self._pool_model(record.fleet, record.pool)
        started = record.started_at or now
        notify = model is not None and model.policies.health.readiness == "notify"
        if model is None or not notify:
            ready = now - started >= READY_AFTER
        else:
            ready = ready_file(self.home, record.fleet, record.agent_id).exists()
            if not ready and now - started >= model.policies.health.start_timeout and record.process is not None:
                self._event(record, "StartTimeout", f"not ready within {model.policies.health.start_timeout:g}s; "
                                                    "killing it", "warning")
                self.launcher.signal(record.process, signal.SIGKILL)
                # No second kill while the exit is on its way: started_at None means "killed".
                self.records[record.key] = record.evolve(started_at=None)
                return
        if ready:
            self.records[record.key] = record.evolve(state=AgentState.RUNNING)
            self._dirty.add(record.key)
            if notify:
                self._event(record, "Ready", f"said ready after {now - started:.3f}s")

    def _check_heartbeats(self, now: float) -> None:
        """Kill agents whose heartbeats stopped for longer than their pool's heartbeatTimeout.

        Only agents that have talked to the control socket are watched (an agent
        without the SDK never sends heartbeats); the exit then goes through the
        restart policy as ``Hung``.
        """
        if self.directory is None:
            return
        for record in list(self.records.values()):
            proc = record.process
            if proc is None or record.state is not AgentState.RUNNING:
                continue
            seen = self.directory.last_seen(record.key)
            model = self._pool_model(record.fleet, record.pool)
            if seen is None or seen.pid != proc.pid or model is None:
                continue
            timeout = model.policies.health.heartbeat_timeout
            if timeout > 0 and now - seen.at > timeout:
                self._event(record, "Hung", f"no heartbeat for {now - seen.at:.1f}s (heartbeatTimeout "
                                            f"{timeout:g}s); killing it", "warning")
                self.launcher.signal(proc, signal.SIGKILL)
                self.records[record.key] = record.evolve(state=AgentState.STOPPING, stop_reason=StopReason.HUNG,
                                                         stop_deadline=None)
                self._dirty.add(record.key)

    def _check_disk_quotas(self, now: float) -> None:
        """Stop agents whose workdir outgrew their disk quota (monitored, never kernel-enforced)."""
        if now < self._next_quota_check:
            return
        self._next_quota_check = now + QUOTA_CHECK_INTERVAL
        from clawctl.runtime.enforcement import over_disk_quota

        for record in list(self.records.values()):
            proc = record.process
            if proc is None or record.state is not AgentState.RUNNING or proc.limits.disk_bytes is None:
                continue
            usage = self.launcher.probe(proc)
            if over_disk_quota(usage, proc.limits):
                self._event(record, "DiskQuota", f"workdir uses {usage.disk_bytes} bytes, quota "
                                                 f"{proc.limits.disk_bytes}", "warning")
                self._stop(record, StopReason.DISK_QUOTA, now)

    def _rotate_logs(self, now: float) -> None:
        if now < self._next_log_rotation:
            return
        self._next_log_rotation = now + LOG_ROTATE_INTERVAL
        from clawctl.runtime.logs import rotate_logs

        for fleet in {r.fleet for r in self.records.values()}:
            try:
                rotate_logs(agent_log_dir(self.home, fleet), LOG_MAX_BYTES, LOG_KEEP)
            except ClawctlError as exc:
                log.warning("log rotation for fleet %s: %s", fleet, exc.message)

    # ------------------------------------------------------------ desired state
    def _refresh_desired(self, *, force: bool = False) -> None:
        with self.registry.reading() as conn:
            if conn is None:
                heads: list[store.FleetHead] = []
            else:
                heads = store.fleet_heads(conn)
            key = tuple(sorted((h.fleet_id, h.name, h.revision) for h in heads))
            if key == self._heads and not force:
                return
            fresh: dict[str, DesiredFleet] = {}
            for head in heads:
                previous = self.desired.get(head.name)
                if previous is not None and previous.revision == head.revision and not force:
                    fresh[head.name] = previous
                    continue
                fresh[head.name] = self._load_fleet(conn, head)
        for name, fleet in fresh.items():
            before = self.desired.get(name)
            if before is not None and before.revision != fleet.revision:
                self._clear_given_up(name)
        for name, fleet in self.desired.items():
            for pool_name, model in fleet.specs.items():
                self._last_known[(name, pool_name)] = model
        self.desired = fresh
        self._heads = key

    def _load_fleet(self, conn: Any, head: store.FleetHead) -> DesiredFleet:
        pools: list[DesiredPool] = []
        specs: dict[str, AgentPool] = {}
        for document in store.pool_documents(conn, head.fleet_id):
            name = document["metadata"]["name"]
            digest = spec_hash(document)
            whole = canonical_json(document.get("spec", {}))
            cached = self._pool_cache.get((head.name, name))
            if cached is not None and cached[0] == whole:
                _, model, desired = cached
            else:
                model = build_pool(name, document["spec"], {})
                desired = DesiredPool(
                    name=name, replicas=model.replicas, spec_hash=digest,
                    standbys=standby_slots(model.policies.failover.strategy.value, model.policies.failover.standbys),
                    priority=model.priority, depends_on=model.depends_on,
                    max_unavailable=resolve_max_unavailable(model.policies.rollout.max_unavailable, model.replicas),
                    max_surge=resolve_max_surge(model.policies.rollout.max_surge, model.replicas),
                )
                self._pool_cache[(head.name, name)] = (whole, model, desired)
            pools.append(desired)
            specs[name] = model
        return DesiredFleet(head.name, head.fleet_id, head.revision or 0, tuple(pools), specs)

    def _clear_given_up(self, fleet: str) -> None:
        """A new revision retries agents that had given up (CrashLoop, Exited)."""
        for record in list(self.records.values()):
            if record.fleet == fleet and record.state in (AgentState.CRASHLOOP, AgentState.EXITED):
                self._event(record, "Reset", "new revision applied")
                self._forget(record)

    def _pool_model(self, fleet: str, pool: str) -> AgentPool | None:
        desired = self.desired.get(fleet)
        if desired is not None and pool in desired.specs:
            return desired.specs[pool]
        return self._last_known.get((fleet, pool))

    # ------------------------------------------------------------------ acting
    def _plan_and_act(self, now: float) -> float | None:
        self._forget_unwanted()
        starting = sum(1 for r in self.records.values() if r.state is AgentState.STARTING)
        budget = max(0, self.start_concurrency - starting)
        wake: float | None = None
        fleets = set(self.desired) | {r.fleet for r in self.records.values()}
        starts: list[tuple[DesiredFleet, Start]] = []
        promoted = False
        for fleet in sorted(fleets):
            desired = self.desired.get(fleet)
            pools = [self._with_cordon(desired.fleet_id, p) for p in desired.pools] if desired else []
            observed = [
                ObservedAgent(r.agent_id, r.pool, r.slot, r.state, r.spec_hash, r.next_start_at, r.role)
                for r in self.records.values() if r.fleet == fleet
            ]
            removed_deps = {
                pool: model.depends_on for (f, pool), model in self._last_known.items()
                if f == fleet and (desired is None or pool not in desired.specs)
            }
            plan = plan_processes(pools, observed, now=now, start_budget=budget, removed_depends_on=removed_deps)
            self._change_roles(fleet, plan.roles)
            promoted = promoted or any(c.role is Role.PRIMARY for c in plan.roles)
            for stop in plan.stops:
                self._stop(self.records[f"{fleet}/{stop.agent_id}"], stop.reason, now)
            if desired is not None:
                starts += [(desired, start) for start in plan.starts]
                budget -= len(plan.starts)
                self._note_degraded(desired, pools)
            wake = _earliest(wake, plan.wake_at)
        if promoted and starts:
            # A promoted standby serves at once: record and publish before the (slower) spawns, so
            # the control server moves the failed agent's sessions while the replacement starts.
            self._publish(self._persist())
        for desired, start in starts:
            self._start(desired, start.agent_id, start.pool, start.slot, now, role=start.role)
        return wake

    def _with_cordon(self, fleet_id: int, pool: DesiredPool) -> DesiredPool:
        cordoned = (fleet_id, pool.name) in self.cordons or (fleet_id, store.FLEET_WIDE) in self.cordons
        return dataclasses.replace(pool, cordoned=True) if cordoned else pool

    def _change_roles(self, fleet: str, changes: tuple[RoleChange, ...]) -> None:
        """Promote ready standbys over failed primaries (and demote the failed ones) at once;
        the failed primary's sessions are handed to the standby that took its place."""
        promoted = [c for c in changes if c.role is Role.PRIMARY]
        demoted = [c for c in changes if c.role is Role.STANDBY]
        for change in changes:
            record = self.records[f"{fleet}/{change.agent_id}"]
            self.records[record.key] = record.evolve(role=change.role)
            self._dirty.add(record.key)
            if change.role is Role.PRIMARY:
                self._event(record, "Promoted", "hot standby now serves in place of a failed primary"
                            if demoted else "standby now serves (the pool needs another primary)")
            else:
                self._event(record, "Demoted", "now the pool's standby")
        for failed, standby in zip(demoted, promoted):
            self._handoffs[f"{fleet}/{failed.agent_id}"] = (f"{fleet}/{standby.agent_id}", self.clock())

    def _note_degraded(self, fleet: DesiredFleet, pools: list[DesiredPool]) -> None:
        """Record when a ``degrade`` pool falls below ``minReady`` ready agents, and when it recovers."""
        for pool in pools:
            model = fleet.specs[pool.name]
            failover = model.policies.failover
            if failover.strategy.value != "degrade" or failover.min_ready <= 0:
                continue
            ready = sum(1 for r in self.records.values() if r.fleet == fleet.name and r.pool == pool.name
                        and r.state is AgentState.RUNNING and r.role is not Role.STANDBY)
            key = (fleet.name, pool.name)
            if ready < failover.min_ready and key not in self._degraded and not pool.cordoned:
                self._degraded.add(key)
                target = failover.fallback_pool
                self._pool_event(fleet.name, pool.name, "Degraded",
                                 f"{ready} ready, minReady {failover.min_ready}; new sessions "
                                 + (f"go to pool {target}" if target else "are refused"), "warning")
            elif ready >= failover.min_ready and key in self._degraded:
                self._degraded.discard(key)
                self._pool_event(fleet.name, pool.name, "Recovered", f"{ready} ready (minReady {failover.min_ready})")

    def _start(self, fleet: DesiredFleet, agent_id: str, pool_name: str, slot: int, now: float, *,
               role: Role = Role.PRIMARY) -> bool:
        model = fleet.specs[pool_name]
        desired = next(p for p in fleet.pools if p.name == pool_name)
        key = f"{fleet.name}/{agent_id}"
        previous = self.records.get(key)
        env = dict(model.env)
        token = new_token()
        env.update({"CLAWCTL_AGENT_ID": agent_id, "CLAWCTL_POOL": pool_name, "CLAWCTL_FLEET": fleet.name,
                    "CLAWCTL_HOME": str(self.home), "CLAWCTL_SOCKET": str(control_socket(self.home)),
                    "CLAWCTL_TOKEN": token,
                    "CLAWCTL_READY_FILE": str(ready_file(self.home, fleet.name, agent_id))})
        spec = LaunchSpec(
            agent_id=agent_id, argv=model.command, env=env,
            workdir=agent_workdir(self.home, fleet.name, agent_id), log_dir=agent_log_dir(self.home, fleet.name),
            limits=model.policies.isolation, cgroup_parent=f"clawctl/{fleet.name}",
        )
        base = previous or AgentRecord(fleet=fleet.name, fleet_id=fleet.fleet_id, agent_id=agent_id, pool=pool_name,
                                       slot=slot, state=AgentState.STARTING, spec_hash=desired.spec_hash, role=role)
        self._dirty.add(key)
        try:
            spec.workdir.mkdir(parents=True, exist_ok=True)
            ready_file(self.home, fleet.name, agent_id).unlink(missing_ok=True)  # a note from the previous run
            proc = self.launcher.spawn(spec)
        except (ClawctlError, OSError, ValueError) as exc:
            message = getattr(exc, "message", str(exc))
            self._event(base, "StartFailed", message, "warning")
            failed = base.evolve(started_at=now, spec_hash=desired.spec_hash)
            self.records[key] = self._after_exit(failed, classify_exit(code=127, signal=None, at=now), now,
                                                 reason="Exited", text=f"could not start: {message}")
            return False
        restarts = base.restarts + (1 if previous is not None else 0)
        record = base.evolve(state=AgentState.STARTING, process=proc, started_at=now, next_start_at=None,
                             spec_hash=desired.spec_hash, restarts=restarts, fleet_id=fleet.fleet_id, message="",
                             enforcement=dict(proc.enforcement), token_digest=token_digest(key, token),
                             drain_deadline=None, successor=False)
        self.records[key] = record
        self._by_pid[proc.pid] = key
        self._event(record, "Started", f"pid {proc.pid}" + (f" (restart {restarts})" if previous else ""))
        return True

    def _forget_unwanted(self) -> None:
        """Drop records without a process whose slot is no longer desired (pool removed or
        scaled below it): nothing will ever restart them, so they must not linger."""
        for record in list(self.records.values()):
            if record.state in ACTIVE:
                continue
            desired = self.desired.get(record.fleet)
            pool = next((p for p in desired.pools if p.name == record.pool), None) if desired else None
            if pool is None or record.slot >= pool.slots or self._with_cordon(record.fleet_id, pool).cordoned:
                self._forget(record)

    def _stop(self, record: AgentRecord, reason: StopReason, now: float, *, grace: float | None = None,
              successor: bool | None = None) -> None:
        """Stop an agent. A failing one (hung, over its disk quota) or one still starting gets
        SIGTERM at once; any other is first drained: cordoned while the control server moves
        its sessions to peers, then stopped when they are handed over or at ``now + grace``."""
        if record.process is None:
            self._forget(record)
            return
        if record.state is AgentState.DRAINING or record.state is AgentState.STOPPING:
            return
        model = self._pool_model(record.fleet, record.pool)
        grace = grace if grace is not None else (model.policies.drain.grace_period if model else 30.0)
        if reason in FAILURE_STOPS or record.state is not AgentState.RUNNING or self.directory is None:
            self.records[record.key] = record.evolve(stop_reason=reason, drain_grace=grace)
            self._terminate(self.records[record.key], now, reason.value)
            return
        if successor is None:
            successor = reason is StopReason.SPEC_CHANGED
        self.records[record.key] = record.evolve(state=AgentState.DRAINING, stop_reason=reason,
                                                 drain_deadline=now + grace, drain_grace=grace, successor=successor)
        self._dirty.add(record.key)
        self._event(record, "Draining", f"{reason.value}; moving its sessions to peers (up to {grace:g}s)")

    def _terminate(self, record: AgentRecord, now: float, why: str) -> None:
        """SIGTERM now; SIGKILL to the whole tree after the grace period."""
        assert record.process is not None
        model = self._pool_model(record.fleet, record.pool)
        grace = record.drain_grace if record.drain_grace is not None else (
            model.policies.drain.grace_period if model else 30.0)
        self.launcher.signal(record.process, signal.SIGTERM)
        self.records[record.key] = record.evolve(state=AgentState.STOPPING, stop_deadline=now + grace,
                                                 drain_deadline=None)
        self._dirty.add(record.key)
        self._event(record, "Stopping", f"{why}; SIGTERM, {grace:g}s grace")

    # ---------------------------------------------------------------- commands
    def _run_commands(self, now: float) -> None:
        with self.registry.reading() as conn:
            pending = store.pending_commands(conn) if conn is not None else []
        if not pending:
            return
        results = []
        cordons_before = set(self.cordons)
        for command in pending:
            if command.verb == "drain":
                results.append((command.id, self._drain(command, now)))
            elif command.verb == "uncordon":
                results.append((command.id, self._uncordon(command)))
            elif command.verb == "retry":
                matched = [r for r in list(self.records.values()) if _matches(r, command.target)
                           and r.state in (AgentState.CRASHLOOP, AgentState.EXITED, AgentState.BACKOFF)]
                for record in matched:
                    self._event(record, "Retry", f"retry requested by {command.actor}")
                    self._forget(record)
                results.append((command.id, f"retrying {len(matched)} agent(s)"))
            else:
                results.append((command.id, f"unknown command {command.verb!r}"))
        with self.registry.writing() as conn:
            for fleet_id, pool in cordons_before - self.cordons:
                store.remove_cordons(conn, fleet_id, pool)
            for fleet_id, pool in sorted(self.cordons - cordons_before):
                store.add_cordon(conn, fleet_id, pool, actor="clawctl drain")
            for command_id, result in results:
                store.complete_command(conn, command_id, result)

    def _drain(self, command: store.Command, now: float) -> str:
        """``drain agent/ID``: hand its sessions over, stop it, start its slot again.
        ``drain pool/NAME`` / ``fleet/NAME``: cordon, hand over (to the fallbackPool), stop all."""
        kind, _, name = command.target.partition("/")
        grace = (command.args or {}).get("grace_period")
        if kind == "agent":
            matched = [r for r in self.records.values() if _matches(r, command.target)]
            if not matched:
                return f"error: no agent {name}"
            for record in matched:
                if record.state in LIVE:
                    self._stop(record, StopReason.DRAINED, now, grace=grace, successor=True)
            return f"draining {len(matched)} agent(s)"
        fleets = [f for f in self.desired.values()
                  if (kind == "fleet" and f.name == name) or (kind == "pool" and (name in f.specs or any(
                      f"{f.name}/{p}" == name for p in f.specs)))]
        if not fleets:
            return f"error: no {kind} {name}"
        for fleet in fleets:
            pool = store.FLEET_WIDE if kind == "fleet" else name.rpartition("/")[2]
            self.cordons.add((fleet.fleet_id, pool))
            for record in list(self.records.values()):
                if record.fleet == fleet.name and (kind == "fleet" or record.pool == pool) and record.state in LIVE:
                    self._stop(record, StopReason.DRAINED, now, grace=grace, successor=False)
        return f"cordoned {kind} {name}"

    def _uncordon(self, command: store.Command) -> str:
        """Lift a drain: a pool or fleet gets its agents again; an agent still draining keeps serving."""
        kind, _, name = command.target.partition("/")
        if kind == "agent":
            resumed = 0
            for record in list(self.records.values()):
                if _matches(record, command.target) and record.state is AgentState.DRAINING:
                    self.records[record.key] = record.evolve(state=AgentState.RUNNING, drain_deadline=None,
                                                             stop_reason=None, successor=False)
                    self._dirty.add(record.key)
                    self._event(record, "Uncordoned", "serving again")
                    resumed += 1
            return f"uncordoned {resumed} agent(s)"
        lifted = []
        for fleet in self.desired.values():
            if kind == "fleet" and fleet.name == name:
                lifted += [c for c in self.cordons if c[0] == fleet.fleet_id]
            elif kind == "pool":
                fleet_name, _, pool = name.rpartition("/")
                if fleet_name in ("", fleet.name) and (fleet.fleet_id, pool) in self.cordons:
                    lifted.append((fleet.fleet_id, pool))
        for fleet_id, pool in lifted:
            self.cordons.discard((fleet_id, pool))
            fleet_name = next(f.name for f in self.desired.values() if f.fleet_id == fleet_id)
            self._pool_event(fleet_name, fleet_name if pool == store.FLEET_WIDE else pool, "Uncordoned",
                             f"{command.target} takes agents again")
        return f"uncordoned {command.target}" if lifted else f"error: {command.target} was not cordoned"

    # --------------------------------------------------------------- recording
    def _event(self, record: AgentRecord, reason: str, message: str, level: str = "info") -> None:
        self._events.append(Event(self.clock(), record.fleet, record.agent_id, reason, message, level))
        log.log(logging.WARNING if level == "warning" else logging.INFO, "%s/%s %s: %s", record.fleet,
                record.agent_id, reason, message)

    def _pool_event(self, fleet: str, target: str, reason: str, message: str, level: str = "info") -> None:
        self._events.append(Event(self.clock(), fleet, target, reason, message, level))
        log.log(logging.WARNING if level == "warning" else logging.INFO, "%s/%s %s: %s", fleet, target, reason,
                message)

    def _forget(self, record: AgentRecord) -> None:
        self.records.pop(record.key, None)
        if record.process is not None:
            self._by_pid.pop(record.process.pid, None)
        self._dirty.discard(record.key)
        self._removed.add(store.agent_key(record.fleet, record.agent_id))

    def _next_internal_deadline(self) -> float | None:
        soonest: float | None = None
        for record in self.records.values():
            if record.state is AgentState.STARTING and record.started_at is not None:
                model = self._pool_model(record.fleet, record.pool)
                if model is not None and model.policies.health.readiness == "notify":
                    # The agent's note arrives as a file: look again shortly, while it starts.
                    soonest = _earliest(soonest, min(self.clock() + READY_POLL,
                                                     record.started_at + model.policies.health.start_timeout))
                else:
                    soonest = _earliest(soonest, record.started_at + READY_AFTER)
            elif record.state is AgentState.STOPPING and record.stop_deadline is not None:
                soonest = _earliest(soonest, record.stop_deadline)
        return soonest

    def _publish(self, changed: bool) -> None:
        """Tell the control server which agents have a live process (after the rows exist)."""
        if self.directory is None or (not changed and self._published == self._heads):
            return
        self._published = self._heads
        agents: dict[str, AgentView] = {}
        for record in self.records.values():
            proc = record.process
            if proc is None or record.token_digest is None:
                continue
            agents[record.key] = AgentView(
                record.fleet, record.fleet_id, record.agent_id, record.pool, record.slot, record.state.value,
                ProcessStamp(proc.pid, proc.create_time), record.token_digest,
                tuple(PurePosixPath(p) for p in proc.cgroups), record.role is Role.STANDBY,
                record.state is AgentState.DRAINING, record.successor)
        pools = {(fleet.name, name): PoolView(fleet.name, fleet.fleet_id, fleet.revision, model)
                 for fleet in self.desired.values() for name, model in fleet.specs.items()}
        cordoned = frozenset((fleet.name, p.name) for fleet in self.desired.values() for p in fleet.pools
                             if self._with_cordon(fleet.fleet_id, p).cordoned)
        # The control server reads a handoff when it recovers the failed agent's sessions, which may be
        # after the failed agent already restarted (as the standby): so it stays published a while.
        now = self.clock()
        self._handoffs = {old: (new, at) for old, (new, at) in self._handoffs.items()
                          if new in agents and now - at < HANDOFF_SECONDS}
        self.directory.publish(agents, pools, {old: new for old, (new, _) in self._handoffs.items()}, cordoned)

    def _persist(self) -> bool:
        if not self._dirty and not self._removed and not self._events:
            return False
        rows = [_row(self.records[k]) for k in sorted(self._dirty) if k in self.records]
        events = [(e.at, e.fleet, e.target, e.reason, e.level, e.message) for e in self._events]
        prune = bool(events) and self.clock() >= self._next_event_prune
        with self.registry.writing() as conn:
            store.save_agents(conn, rows, removed=sorted(self._removed - set(self._dirty)))
            store.append_events(conn, events)
            if prune:
                store.prune_events(conn, keep=EVENTS_KEPT)
                self._next_event_prune = self.clock() + EVENTS_PRUNE_INTERVAL
        self._dirty.clear()
        self._removed.clear()
        self._events.clear()
        return True


def _matches(record: AgentRecord, target: str) -> bool:
    return target_matches(target, fleet=record.fleet, pool=record.pool, agent_id=record.agent_id)


def _row(record: AgentRecord) -> store.AgentRow:
    proc = record.process
    return store.AgentRow(
        fleet=record.fleet, fleet_id=record.fleet_id, agent_id=record.agent_id, pool=record.pool, slot=record.slot,
        state=record.state.value, pid=proc.pid if proc else None, process_started=proc.create_time if proc else None,
        spec_hash=record.spec_hash, restarts=record.restarts, last_exit_code=record.last_exit_code,
        last_exit_reason=record.last_exit, started_at=record.started_at, next_start_at=record.next_start_at,
        message=record.message or None, enforcement=dict(proc.enforcement) if proc else record.enforcement,
        token_digest=record.token_digest if proc else None, role=record.role.value,
        drain_deadline=record.drain_deadline,
    )


def _role(text: str | None) -> Role:
    try:
        return Role(text or Role.PRIMARY.value)
    except ValueError:
        return Role.PRIMARY


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
