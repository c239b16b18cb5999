"""Supervision quality bars (DESIGN.md §5), side by side with supervisord in one run.

    python benchmarks/supervise_bench.py [--quick] [--kills 50] [--ready-kills 40] [--pool 5]
        [--ready-n 200] [--ready-agent plain|echo] [--idle 10] [--agents 1000] [--passes 50]
        [--skip SECTION] [--rss-breakdown]

1. Crash -> replacement. One clawctl daemon and one supervisord, each keeping a
   pool of ``--pool`` ``sleep 3600`` agents (clawctl: strategy restart, restart
   always; supervisord: numprocs, autorestart=true, startsecs=0). ``--kills``
   times per tool, interleaved, a running agent is SIGKILLed (its pid as the tool
   records it, and a child of the tool) and the benchmark polls the tool's
   children every ~1 ms (/proc/PID/task/*/children, the same for both) for:
   a new child (fork/spawn seen), the new child exec'd ``sleep 3600``, and the
   tool reporting the slot running on that new pid (clawctl: the agent row in
   the registry; supervisord: getProcessInfo over XML-RPC). Each killed agent has
   run longer than clawctl's ``backoff.resetAfter`` (1 s here), so every crash
   is the "first after a stable run", which clawctl replaces at once by design
   (supervisord with startsecs=0 never backs off).
1b. Crash -> replacement READY. The same, ``--ready-kills`` times, with Python
   agents (``--ready-agent``: ``plain``, benchmarks/agents/ready.py, calls
   ``clawctl.agent.notify_ready()`` right after start, the same work under both
   tools; ``echo``, the echo example, connects through the SDK first under
   clawctl only): clawctl pool with
   ``health: {readiness: notify}``; supervisord with its default startsecs=1 (a
   timer: RUNNING after 1 s up). Ready = the tool reports the slot ready on the
   new pid, polled every ~1 ms for both (clawctl: registry row Running;
   supervisord: RUNNING over XML-RPC). Also: when the agent said so (mtime of
   clawctl's ready file; supervisord: of the agent's stdout log after its start
   line) and, for clawctl, the time of the ``Ready`` event (the daemon saw it).
1c. Cold start of ``--ready-n`` (200) of those Python agents, one tool at a time:
   the whole ``clawctl apply f.yaml --wait`` (it starts the daemon; notify
   readiness) against supervisord from its start until getAllProcessInfo shows
   all RUNNING (polled every 50 ms). Also the CPU the agents used in all (for
   clawctl including each one's setup before its exec). Then each supervisor's RSS (and its parts
   from /proc/PID/status and smaps), fds, and idle CPU over ``--idle`` seconds
   (psutil cpu_times deltas). ``--rss-breakdown`` then runs the same daemon code
   (``python -m clawctl.daemon``) under tracemalloc with an import hook and says
   which packages and modules hold its memory.
2. Scale. RLIMIT_NOFILE soft = hard = 1024 for this process, inherited by the
   daemon and by supervisord. ``clawctl apply --wait`` of ``--agents`` sleep agents
   (``isolation: {level: shared}``: no cgroups, no namespaces), then the daemon's
   RSS, open fds and idle CPU. supervisord gets the same number of programs under
   the same limit; reported: how many reach RUNNING, its RSS/fds, its error.
3. No-op reconcile pass of ``--agents`` agents: the daemon of (2) is stopped
   (agents keep running), a Reconciler in this process re-adopts them
   (``restore()``), passes run until one changes nothing, then ``--passes``
   no-op passes are timed: the periodic pass (check_registry False) with and
   without the adopted-process liveness check due, and the pass after a wake-up
   (check_registry True). A variant over the 20 ms bar is profiled (cProfile).

Everything started here is stopped by pid: fleets deleted, daemons stopped,
supervisord terminated, survivors (checked by start time) killed.
Needs the bench extra: pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import re
import resource
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from _common import ProcessLedger, bench_env, children_of, cmdline, executable, percentile

AGENT_ARGV = ("sleep", "3600")
ECHO_ARGV = (sys.executable, "-m", "clawctl.agent.examples.echo", "--role", "bench", "--interval", "3600")
"""``--ready-agent echo``: the echo example. Under clawctl (``CLAWCTL_SOCKET`` set) it imports the
agent SDK, connects to the daemon and says hello before notify_ready(); under supervisord it only
calls notify_ready() (a no-op): the two tools' agents then do different work (~55 against ~36 ms
of CPU each here). One heartbeat an hour, so "idle" means idle for both tools."""
PLAIN_ARGV = (sys.executable, str(Path(__file__).resolve().parent / "agents" / "ready.py"))
"""``--ready-agent plain`` (the default): benchmarks/agents/ready.py, the same program and the same
work under both tools — a start line, notify_ready(), then asleep until SIGTERM."""
READY_AGENTS = {"plain": PLAIN_ARGV, "echo": ECHO_ARGV}
RESET_AFTER = 1.0
"""clawctl backoff.resetAfter (s) in the crash test; every victim has run longer than this."""
POLL = 0.001
KILL_TIMEOUT = 15.0
NOFILE = 1024
PASS_BAR_MS = 20.0
RSS_BAR_MB = 100.0
RESTART_BAR_MS = 100.0
READY_BAR_MS = 200.0
"""Issue 4: SIGKILL -> replacement ready (the agent said so), p50."""
RSS_BAR_200_MB = 40.0
"""Issue 4: daemon RSS at 200 agents."""

FLEET_YAML = """\
apiVersion: clawctl/v1
kind: Fleet
metadata:
  name: {fleet}
spec:
  description: Generated by benchmarks/supervise_bench.py
---
apiVersion: clawctl/v1
kind: AgentPool
metadata:
  name: {pool}
spec:
  replicas: {replicas}
  command: [{argv}]
  isolation: {{level: shared}}
{health}  drain: {{gracePeriod: 5s}}
  failover:
    strategy: restart
    restart: always
    maxRestarts: 100000
    window: 1s
    backoff: {{initial: 1s, max: 10s, factor: 2, jitter: 0.2, resetAfter: {reset_after}s}}
"""

SUPERVISORD_CONF = """\
[supervisord]
nodaemon=true
user=root
logfile={dir}/supervisord.log
pidfile={dir}/supervisord.pid
childlogdir={dir}/childlogs
loglevel=info

[unix_http_server]
file={dir}/supervisor.sock

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[program:x]
command={command}
process_name=%(program_name)s_%(process_num)d
numprocs={numprocs}
autorestart=true
{startsecs}startretries=100000
stopwaitsecs=5
"""


def epoch(stamp: str) -> float:
    """Epoch seconds of a registry timestamp (SQLite keeps UTC datetimes naive, as text)."""
    from datetime import datetime, timezone

    return datetime.fromisoformat(stamp).replace(tzinfo=timezone.utc).timestamp()


def log(message: str) -> None:
    """Progress on stderr, so stdout holds only the results."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ the two tools


class Clawctl:
    """One private CLAWCTL_HOME with its daemon, driven through the CLI."""

    def __init__(self, home: Path, fleet: str, ledger: ProcessLedger) -> None:
        self.home = home
        self.fleet = fleet
        self.ledger = ledger
        self.env = bench_env(home)
        self.env.pop("CLAWCTL_REGISTRY", None)  # never the user's registry
        self.cli = executable("clawctl")
        self._db: sqlite3.Connection | None = None

    def run(self, *args: str, timeout: float = 900.0) -> subprocess.CompletedProcess[str]:
        """Run ``clawctl ARGS`` for this home; fails loudly on a non-zero exit."""
        proc = subprocess.run([self.cli, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise SystemExit(f"clawctl {' '.join(args)} exited {proc.returncode}: {proc.stderr[-800:]}")
        return proc

    def apply(self, replicas: int, timeout: float = 600.0, argv: tuple[str, ...] = AGENT_ARGV,
              notify: bool = False) -> float:
        """Write and apply the fleet, wait until it converged; returns wall seconds of the whole
        ``clawctl apply --wait`` (starting the daemon when none runs). ``notify``: the pool has
        ``health: {readiness: notify}``, so an agent counts as ready only once it said so."""
        path = self.write_fleet(replicas, argv, notify)
        start = time.perf_counter()
        self.run("apply", str(path), "--wait", "--timeout", str(int(timeout)), timeout=timeout + 60)
        elapsed = time.perf_counter() - start
        self.record_daemon()
        return elapsed

    def write_fleet(self, replicas: int, argv: tuple[str, ...], notify: bool) -> Path:
        """The fleet file: one pool ``p`` of ``replicas`` agents running ``argv``."""
        path = self.home.parent / f"{self.fleet}.yaml"
        health = "  health: {readiness: notify}\n" if notify else ""
        path.write_text(FLEET_YAML.format(fleet=self.fleet, pool="p", replicas=replicas, reset_after=RESET_AFTER,
                                          argv=", ".join(json.dumps(a) for a in argv), health=health))
        return path

    def daemon(self) -> psutil.Process | None:
        """The running daemon of this home (pid and start time as daemon.json says), or None."""
        try:
            raw = json.loads((self.home / "daemon.json").read_text())
            proc = psutil.Process(int(raw["pid"]))
            if abs(proc.create_time() - float(raw["create_time"])) < 0.05 and proc.status() != psutil.STATUS_ZOMBIE:
                return proc
        except (OSError, ValueError, KeyError, psutil.Error):
            pass
        return None

    def record_daemon(self) -> None:
        proc = self.daemon()
        if proc is not None:
            self.ledger.record(proc.pid)

    def agents(self) -> list[dict[str, Any]]:
        """The fleet's agents from ``clawctl status -o json``; records their pids (children of the daemon)."""
        data = json.loads(self.run("status", "-o", "json").stdout)
        fleets = [f for f in data.get("fleets", []) if f["name"] == self.fleet]
        agents: list[dict[str, Any]] = fleets[0]["agents"] if fleets else []
        daemon = self.daemon()
        kids = children_of(daemon.pid) if daemon else set()
        for agent in agents:
            if agent.get("pid") and (agent["pid"] in kids or daemon is None):
                self.ledger.record(agent["pid"])
        return agents

    def row(self, agent_id: str) -> tuple[str, int | None] | None:
        """(state, pid) of one agent row, read straight from the registry file (read-only)."""
        rows = self.db().execute("SELECT state, pid FROM agents WHERE id = ?", (f"{self.fleet}/{agent_id}",)).fetchall()
        return (rows[0][0], rows[0][1]) if rows else None

    def db(self) -> sqlite3.Connection:
        """A read-only connection to this home's registry."""
        if self._db is None:
            self._db = sqlite3.connect(f"file:{self.home / 'registry.db'}?mode=ro", uri=True, timeout=5)
        return self._db

    def event_times(self, reason: str) -> list[float]:
        """Epoch seconds of this fleet's events of one reason, oldest first."""
        return [epoch(at) for (at,) in self.db().execute(
            "SELECT at FROM events WHERE fleet = ? AND reason = ? ORDER BY id", (self.fleet, reason))]

    def ready_events(self) -> dict[str, list[float]]:
        """Epoch seconds of every ``Ready`` event per agent id: when the daemon saw the agent's
        note (the reconciler's clock at that pass; the row is written at the end of the pass)."""
        found: dict[str, list[float]] = {}
        for target, at in self.db().execute("SELECT target, at FROM events WHERE fleet = ? AND reason = 'Ready' "
                                            "ORDER BY id", (self.fleet,)):
            found.setdefault(target, []).append(epoch(at))
        return found

    def ready_file(self, agent_id: str) -> Path:
        """The file ``notify_ready()`` touches (its mtime: when the agent said it is ready)."""
        return self.home / "agents" / self.fleet / agent_id / ".clawctl-ready"

    def event_counts(self) -> Counter[str]:
        """How many events of each reason the daemon recorded for this fleet."""
        self.db()
        assert self._db is not None
        return Counter(dict(self._db.execute("SELECT reason, count(*) FROM events WHERE fleet = ? GROUP BY reason",
                                             (self.fleet,)).fetchall()))

    def teardown(self, timeout: float = 120.0) -> list[int]:
        """Delete the fleet, wait for its agents, stop the daemon, kill what is left (by pid)."""
        if self._db is not None:
            self._db.close()
            self._db = None
        try:
            if self.daemon() is None and (self.home / "registry.db").exists():
                self.run("daemon", "start")
                self.record_daemon()
            if (self.home / "registry.db").exists():
                self.run("delete", self.fleet, "--yes")
            daemon = self.daemon()
            agents = [pid for pid in self.ledger.alive() if daemon is None or pid != daemon.pid]
            deadline = time.monotonic() + timeout
            while agents and time.monotonic() < deadline:
                time.sleep(0.2)
                agents = [pid for pid in self.ledger.alive() if daemon is None or pid != daemon.pid]
            if self.daemon() is not None:
                self.run("daemon", "stop")
        except (SystemExit, subprocess.TimeoutExpired) as exc:
            log(f"clawctl teardown: {exc}")
        return self.ledger.kill_survivors()


class Supervisord:
    """``supervisord -n`` with one [program:x] of ``numprocs`` processes, a child of this process."""

    def __init__(self, directory: Path, numprocs: int, ledger: ProcessLedger, argv: tuple[str, ...] = AGENT_ARGV,
                 startsecs: int | None = 0) -> None:
        """``startsecs`` None: supervisord's default (1 s up counts as RUNNING)."""
        self.dir = directory
        self.numprocs = numprocs
        self.ledger = ledger
        self.argv = argv
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "childlogs").mkdir(exist_ok=True)
        self.conf = directory / "supervisord.conf"
        self.conf.write_text(SUPERVISORD_CONF.format(
            dir=directory, numprocs=numprocs, command=" ".join(argv),
            startsecs="" if startsecs is None else f"startsecs={startsecs}\n"))
        self.proc: subprocess.Popen[bytes] | None = None
        self._rpc: Any = None

    def start(self) -> None:
        out = open(self.dir / "stdout.log", "wb")
        self.proc = subprocess.Popen([executable("supervisord"), "-n", "-c", str(self.conf)], stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()
        self.ledger.record(self.proc.pid)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def rpc(self) -> Any:
        if self._rpc is None:
            from supervisor.xmlrpc import SupervisorTransport

            transport = SupervisorTransport(None, None, f"unix://{self.dir / 'supervisor.sock'}")
            self._rpc = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
        return self._rpc

    def info(self, slot: int) -> dict[str, Any]:
        result: dict[str, Any] = self.rpc.supervisor.getProcessInfo(f"x:x_{slot}")
        return result

    def all_info(self) -> list[dict[str, Any]] | str:
        """getAllProcessInfo, or the error text when supervisord does not answer."""
        try:
            result: list[dict[str, Any]] = self.rpc.supervisor.getAllProcessInfo()
            return result
        except Exception as exc:  # noqa: BLE001 - any failure is a result to report
            self._rpc = None
            return f"{type(exc).__name__}: {exc}"

    def running_children(self) -> set[int]:
        """Children of supervisord that have exec'd the agent command; records them."""
        kids = {pid for pid in children_of(self.pid) if cmdline(pid) == self.argv}
        for pid in kids:
            self.ledger.record(pid)
        return kids

    def started_lines(self) -> dict[str, float]:
        """Per program: mtime of its stdout log once the echo agent wrote its start line there."""
        found: dict[str, float] = {}
        for path in (self.dir / "childlogs").glob("x_*-stdout-*.log"):
            try:
                if b" started" in path.read_bytes():
                    found[path.name.split("-stdout-")[0]] = path.stat().st_mtime
            except OSError:
                continue
        return found

    def wait_rpc(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if isinstance(self.all_info(), list):
                return
            time.sleep(0.05)
        raise SystemExit(f"supervisord did not answer within {timeout:g}s; see {self.dir}/supervisord.log")

    def log_lines(self, *patterns: str, limit: int = 3) -> list[str]:
        """First lines of supervisord's log matching any of ``patterns`` (regular expressions)."""
        try:
            text = (self.dir / "supervisord.log").read_text(errors="replace").splitlines()
        except OSError:
            return []
        text += (self.dir / "stdout.log").read_text(errors="replace").splitlines()
        found: list[str] = []
        for line in text:
            if any(re.search(p, line) for p in patterns) and line not in found:
                found.append(line)
        return found[:limit]

    def teardown(self, timeout: float = 60.0) -> list[int]:
        """SIGTERM supervisord (it stops its programs), wait, then kill what is left by pid."""
        if self.proc is not None and self.proc.poll() is None:
            self.running_children()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.ledger.wait_gone(5.0)
        return self.ledger.kill_survivors()


# ------------------------------------------------------------- 1. crash -> replacement


@dataclass
class Sample:
    """Seconds from one SIGKILL to each stage of its replacement (None: not seen)."""

    child: float | None = None
    exec: float | None = None
    running: float | None = None
    said: float | None = None
    """Readiness tests: the replacement said it is ready (clawctl: mtime of the ready file it
    touched; supervisord: mtime of its stdout log after the start line the agent prints just
    before notify_ready())."""
    seen: float | None = None
    """clawctl readiness test: the daemon saw the note (time of the ``Ready`` event)."""
    killed_at: float = 0.0
    """Epoch seconds of the kill, to place file mtimes and events."""
    slot: int = -1


@dataclass
class Target:
    """What the crash loop needs from one tool."""

    name: str
    parent: Callable[[], int]
    victim: Callable[[int], int]
    reports_running: Callable[[int, int], bool]
    ledger: ProcessLedger
    argv: tuple[str, ...] = AGENT_ARGV
    after: Callable[[int, int, Sample], None] | None = None
    """Called once the replacement is reported running: (slot, new pid, sample)."""
    samples: list[Sample] = field(default_factory=list)
    started: dict[int, float] = field(default_factory=dict)
    current: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def kill_and_watch(target: Target, slot: int, rng: random.Random) -> None:
    """SIGKILL the slot's agent and time: new child, exec of the agent command, reported running.

    The victim is the pid the tool reported running for the slot at the end of the previous
    round, so nothing talks to the tool right before the kill; a random pause (0-1 s) puts
    the kill at a random phase of any periodic loop the tool has.
    """
    parent = target.parent()
    time.sleep(max(rng.uniform(0.0, 1.0), target.started.get(slot, 0.0) + RESET_AFTER + 0.2 - time.monotonic()))
    before = children_of(parent)
    victim = target.current.get(slot, -1)
    if victim not in before or cmdline(victim) != target.argv:
        target.failures.append(f"slot {slot}: pid {victim} is not a running agent child of {parent}")
        target.current[slot] = target.victim(slot)
        return
    sample = Sample(slot=slot)
    new: int | None = None
    sample.killed_at = time.time()
    t0 = time.perf_counter()
    os.kill(victim, signal.SIGKILL)
    while time.perf_counter() - t0 < KILL_TIMEOUT:
        if new is None:
            fresh = children_of(parent) - before
            if fresh:
                sample.child = time.perf_counter() - t0
                new = min(fresh)
                target.ledger.record(new)
        if new is not None:
            if sample.exec is None and cmdline(new) == target.argv:
                sample.exec = time.perf_counter() - t0
            if sample.running is None and target.reports_running(slot, new):
                sample.running = time.perf_counter() - t0
            if sample.exec is not None and sample.running is not None:
                break
        time.sleep(POLL)
    target.started[slot] = time.monotonic()
    if sample.running is None or sample.exec is None or new is None:
        target.failures.append(f"slot {slot}: after {KILL_TIMEOUT:g}s {sample}")
        target.current[slot] = target.victim(slot)
    else:
        target.current[slot] = new
        if target.after is not None:
            target.after(slot, new, sample)
    target.samples.append(sample)


def crash_bench(tmp: Path, pool: int, kills: int, ready: bool = False,
                ready_argv: tuple[str, ...] = PLAIN_ARGV) -> tuple[list[Target], dict[str, Any]]:
    """Section 1 (``ready`` False: sleep agents) or 1b (``ready``: Python echo agents, clawctl
    with readiness notify, supervisord with its default startsecs=1); returns both targets
    with their samples and notes."""
    argv = ready_argv if ready else AGENT_ARGV
    name = "crash-ready" if ready else "crash"
    claw = Clawctl(tmp / f"{name}-home", name, ProcessLedger())
    sup = Supervisord(tmp / f"{name}-supervisord", pool, ProcessLedger(), argv=argv, startsecs=None if ready else 0)
    notes: dict[str, Any] = {}
    try:
        log(f"{name} test: clawctl apply of {pool} agents")
        claw.apply(pool, argv=argv, notify=ready)
        agents = claw.agents()
        ids = {a["slot"]: a["id"] for a in agents}
        daemon = claw.daemon()
        if daemon is None or len(ids) != pool:
            raise SystemExit(f"clawctl daemon or agents missing: {agents}")
        daemon_pid = daemon.pid

        def claw_victim(slot: int) -> int:
            row = claw.row(ids[slot])
            return row[1] if row and row[1] else -1

        def claw_running(slot: int, pid: int) -> bool:
            return claw.row(ids[slot]) == ("Running", pid)

        def claw_said(slot: int, pid: int, sample: Sample) -> None:
            try:
                sample.said = claw.ready_file(ids[slot]).stat().st_mtime - sample.killed_at
            except OSError:
                pass

        log(f"{name} test: supervisord with numprocs={pool}")
        sup.start()
        sup.wait_rpc()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
                len(sup.running_children()) == pool
                and all(sup.info(slot)["statename"] == "RUNNING" for slot in range(pool))):
            time.sleep(0.05)

        def sup_said(slot: int, pid: int, sample: Sample) -> None:
            for path in (sup.dir / "childlogs").glob(f"x_{slot}-stdout-*.log"):
                sample.said = path.stat().st_mtime - sample.killed_at

        def sup_victim(slot: int) -> int:
            return int(sup.info(slot)["pid"])

        def sup_running(slot: int, pid: int) -> bool:
            info = sup.info(slot)
            return bool(info["statename"] == "RUNNING" and info["pid"] == pid)

        targets = [
            Target("clawctl", lambda: daemon_pid, claw_victim, claw_running, claw.ledger, argv,
                   claw_said if ready else None),
            Target("supervisord", lambda: sup.pid, sup_victim, sup_running, sup.ledger, argv,
                   sup_said if ready else None),
        ]
        now = time.monotonic()
        for target in targets:
            target.started = {slot: now for slot in range(pool)}
            target.current = {slot: target.victim(slot) for slot in range(pool)}
        log(f"{name} test: {kills} SIGKILLs per tool, interleaved (about {kills * (3.5 if ready else 1.9):.0f} s)")
        rng = random.Random(4)
        for i in range(kills):
            for target in targets:
                kill_and_watch(target, i % pool, rng)
        if ready:
            time.sleep(0.1)  # the last pass's events are written with its rows; be sure they are in
            seen = claw.ready_events()
            for sample in targets[0].samples:
                after = [at for at in seen.get(ids[sample.slot], []) if at >= sample.killed_at]
                sample.seen = min(after) - sample.killed_at if after else None
        counts = claw.event_counts()
        notes["clawctl events"] = {k: counts.get(k, 0) for k in ("Exited", "Started", "Ready", "StartTimeout",
                                                                 "BackOff", "CrashLoop")}
        notes["clawctl daemon rss"] = daemon.memory_info().rss if daemon.is_running() else None
        return targets, notes
    finally:
        left = claw.teardown() + sup.teardown()
        if left:
            log(f"{name} test: killed leftover pids {left}")


# ------------------------------------------------- 1c. N Python agents ready, RSS, idle CPU


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile, RssShmem (bytes) and Threads from /proc/PID/status."""
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                    found[key] = int(value.split()[0]) * 1024
                elif key == "Threads":
                    found[key] = int(value)
    except OSError:
        pass
    return found


def smaps_top(pid: int, top: int = 8) -> list[tuple[str, int]]:
    """Resident bytes per mapping (file path, [heap], [anon] ...) from /proc/PID/smaps, biggest first."""
    sizes: Counter[str] = Counter()
    name = "[anon]"
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                first = line.split(maxsplit=6)
                if first and "-" in first[0] and len(first) >= 5 and ":" not in first[0]:
                    name = first[5].strip() if len(first) > 5 and first[5].strip() else "[anon]"
                elif line.startswith("Rss:"):
                    sizes[name] += int(line.split()[1]) * 1024
    except OSError:
        pass
    return sizes.most_common(top)


def describe_daemon(proc: psutil.Process) -> dict[str, Any]:
    """What a supervisor process holds: RSS and its parts, fds, threads, biggest mappings."""
    return {"rss": proc.memory_info().rss, "status": proc_status(proc.pid), "fds": proc.num_fds(),
            "threads": proc.num_threads(), "smaps": smaps_top(proc.pid)}


def agents_cpu(parent: int, argv: tuple[str, ...]) -> tuple[int, float]:
    """How many children of ``parent`` run ``argv``, and the CPU seconds they used in all (for
    clawctl this includes each agent's setup before its exec: exec keeps a process's times)."""
    count, total = 0, 0.0
    for pid in children_of(parent):
        if cmdline(pid) != argv:
            continue
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        count, total = count + 1, total + times.user + times.system
    return count, total


def clawctl_ready(tmp: Path, n: int, idle_seconds: float, timeout: float = 300.0,
                  argv: tuple[str, ...] = PLAIN_ARGV) -> dict[str, Any]:
    """Cold start (no daemon) to N Python agents ready (readiness notify): the whole
    ``clawctl apply f.yaml --wait``; then the daemon's RSS and idle CPU."""
    claw = Clawctl(tmp / "ready-home", "ready", ProcessLedger())
    path = claw.write_fleet(n, argv, notify=True)
    result: dict[str, Any] = {}
    try:
        log(f"ready: clawctl apply --wait of {n} Python agents {argv[1:]} (readiness notify), daemon not running")
        cmd = [claw.cli, "apply", str(path), "--wait", "--timeout", str(int(timeout))]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall0 = time.time()
        start = time.perf_counter()
        apply = subprocess.Popen(cmd, env=claw.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        exec_all: float | None = None
        while apply.poll() is None:  # the same 50 ms watch of exec'd children as for supervisord
            daemon = claw.daemon()
            if exec_all is None and daemon is not None and \
                    sum(1 for pid in children_of(daemon.pid) if cmdline(pid) == argv) >= n:
                exec_all = time.perf_counter() - start
            time.sleep(0.05)
        result["apply_s"] = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # poll() reaped the CLI: its CPU counts now
        result["cli_cpu_s"] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        _, err = apply.communicate()
        if apply.returncode != 0:
            raise SystemExit(f"clawctl apply --wait exited {apply.returncode}: {err[-800:]}")
        claw.record_daemon()
        daemon = claw.daemon()
        if daemon is None:
            raise SystemExit("the clawctl daemon is not running after apply")
        rows = claw.agents()
        result["states"] = dict(Counter(a["state"] for a in rows))
        result["running"] = result["states"].get("Running", 0)
        result["exec_all_s"] = exec_all
        seen = claw.ready_events()
        result["ready_events"] = len(seen)
        result["seen_last_s"] = max(min(v) for v in seen.values()) - wall0 if seen else None
        said = []
        for row in rows:
            try:
                said.append(claw.ready_file(row["id"]).stat().st_mtime - wall0)
            except OSError:
                pass
        result["said"] = len(said)
        result["said_last_s"] = max(said) if said else None
        started = claw.event_times("Started")
        result["daemon_up_s"] = daemon.create_time() - wall0
        times = daemon.cpu_times()
        result["start_cpu_s"] = times.user + times.system
        result["agents_cpu"] = agents_cpu(daemon.pid, argv)
        result["first_started_s"] = started[0] - wall0 if started else None
        result["last_started_s"] = started[-1] - wall0 if started else None
        result.update(describe_daemon(daemon))
        log(f"ready: clawctl daemon idle CPU over {idle_seconds:g}s")
        result["idle_cpu"] = idle_cpu(daemon, idle_seconds)
        result["rss_after_idle"] = daemon.memory_info().rss
        return result
    finally:
        log("ready: tearing down the clawctl fleet")
        left = claw.teardown()
        if left:
            log(f"ready: killed {len(left)} leftover clawctl pids")


def supervisord_ready(tmp: Path, n: int, idle_seconds: float, timeout: float = 300.0,
                      argv: tuple[str, ...] = PLAIN_ARGV) -> dict[str, Any]:
    """supervisord with numprocs=N Python agents and its default startsecs (1 s): from its start
    until getAllProcessInfo reports all N RUNNING (polled every 50 ms); then RSS, idle CPU."""
    sup = Supervisord(tmp / "ready-supervisord", n, ProcessLedger(), argv=argv, startsecs=None)
    result: dict[str, Any] = {}
    try:
        log(f"ready: supervisord with numprocs={n} Python agents {argv[1:]} (startsecs default)")
        wall0 = time.time()
        start = time.perf_counter()
        sup.start()
        exec_all: float | None = None
        states: Counter[str] = Counter()
        while time.perf_counter() - start < timeout:
            if sup.proc is not None and sup.proc.poll() is not None:
                break
            if exec_all is None and len(sup.running_children()) >= n:
                exec_all = time.perf_counter() - start
            info = sup.all_info()
            if isinstance(info, list):
                states = Counter(p["statename"] for p in info)
                if states.get("RUNNING", 0) == n:
                    result["running_s"] = time.perf_counter() - start
                    break
            time.sleep(0.05)
        result["states"] = dict(states)
        result["running"] = states.get("RUNNING", 0)
        result["exec_all_s"] = exec_all
        said = sup.started_lines()
        result["said"] = len(said)
        result["said_last_s"] = max(said.values()) - wall0 if said else None
        if sup.proc is None or sup.proc.poll() is not None:
            raise SystemExit(f"supervisord exited; see {sup.dir}/supervisord.log")
        proc = psutil.Process(sup.pid)
        times = proc.cpu_times()
        result["start_cpu_s"] = times.user + times.system
        result["agents_cpu"] = agents_cpu(sup.pid, argv)
        result.update(describe_daemon(proc))
        log(f"ready: supervisord idle CPU over {idle_seconds:g}s")
        result["idle_cpu"] = idle_cpu(proc, idle_seconds)
        result["rss_after_idle"] = proc.memory_info().rss
        return result
    finally:
        log("ready: stopping supervisord")
        left = sup.teardown()
        if left:
            log(f"ready: killed {len(left)} leftover supervisord pids")


RSS_PROBE = r"""
import importlib.machinery as machinery, json, os, runpy, signal, sys, threading, time, tracemalloc
out, trigger = sys.argv[1], sys.argv[2]
retained = {}   # module -> bytes traced when its loading ended, minus its nested imports (exclusive)
stack = []

def measured(fn, name):
    def wrapper(*args):
        stack.append(0)
        before = tracemalloc.get_traced_memory()[0]
        try:
            return fn(*args)
        finally:
            total = tracemalloc.get_traced_memory()[0] - before
            retained[name] = retained.get(name, 0) + total - stack.pop()
            if stack:
                stack[-1] += total
    return wrapper

class Finder:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        for finder in sys.meta_path:
            if finder is not cls and hasattr(finder, "find_spec"):
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    break
        else:
            return None
        loader = spec.loader
        if isinstance(loader, (machinery.SourceFileLoader, machinery.SourcelessFileLoader,
                               machinery.ExtensionFileLoader)):
            loader.exec_module = measured(loader.exec_module, name)
            loader.create_module = measured(loader.create_module, name)
        return spec

sys.meta_path.insert(0, Finder)

def where(module):
    path = getattr(module, "__file__", None) or ""
    top = module.__name__.split(".")[0]
    if "site-packages" in path:
        return top
    if top == "clawctl":
        return "clawctl"
    return f"stdlib {top}" if path else "builtin"

def dump():
    while not os.path.exists(trigger):
        time.sleep(0.2)
    snapshot = tracemalloc.take_snapshot()
    by_file = [(str(s.traceback[0].filename), s.size) for s in snapshot.statistics("filename")[:25]]
    groups, counts = {}, {}
    for name, module in list(sys.modules.items()):
        key = where(module) if module is not None else "builtin"
        counts[key] = counts.get(key, 0) + 1
        groups[key] = groups.get(key, 0) + retained.get(name, 0)
    status = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "Threads"):
                status[key] = value.strip()
    top_modules = sorted(retained.items(), key=lambda kv: -kv[1])[:25]
    with open(out + ".tmp", "w") as f:
        json.dump({"status": status, "traced": tracemalloc.get_traced_memory()[0],
                   "tracemalloc_overhead": tracemalloc.get_tracemalloc_memory(),
                   "import_retained": sum(retained.values()), "by_group": groups, "modules": counts,
                   "top_modules": top_modules, "top_files": by_file, "n_modules": len(sys.modules),
                   "module_names": sorted(n for n, m in sys.modules.items() if m is not None),
                   "blocked": sorted(n for n, m in sys.modules.items() if m is None)}, f)
    os.rename(out + ".tmp", out)

# The daemon takes its signals with sigwaitinfo in the main thread: this thread must never get one.
old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
threading.Thread(target=dump, daemon=True).start()
signal.pthread_sigmask(signal.SIG_SETMASK, old)
sys.argv = ["clawctl-daemon"]
runpy.run_module("clawctl.daemon", run_name="__main__", alter_sys=True)
"""

RSS_STEPS = r"""
import importlib, json, sys
for name in json.loads(sys.argv[2]):  # what the daemon keeps out (clawctl.daemon.__main__.keep_openssl_out)
    sys.modules.setdefault(name, None)
def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
out = [("python itself (with site, as the daemon)", rss())]
for label, names in json.loads(sys.argv[1]):
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:
            pass
    out.append((label, rss()))
print(json.dumps(out))
"""

IMPORT_STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("asyncio, importlib.metadata (sqlalchemy.util.compat's)", ("asyncio", "importlib.metadata")),
    ("sqlalchemy (core, sqlite dialect)", ("sqlalchemy", "sqlalchemy.dialects.sqlite", "sqlalchemy.pool")),
    ("apscheduler BackgroundScheduler (+ tzlocal)", ("apscheduler.schedulers.background",)),
    ("filelock", ("filelock",)),
    ("clawctl.daemon, registry, runtime", ("clawctl.daemon.__main__", "clawctl.registry.engine",
                                          "clawctl.runtime.launcher")),
)


def import_steps(module_names: list[str], blocked: list[str]) -> list[tuple[str, int]]:
    """VmRSS of a fresh ``python`` after each group of imports, ending with every module the
    daemon had loaded (no tracemalloc: what these imports cost in RSS, in this order); the
    modules the daemon kept out (``blocked``) are kept out here too."""
    steps = [[label, list(names)] for label, names in IMPORT_STEPS]
    steps.append(["the rest of the daemon's sys.modules", [m for m in module_names if m != "__main__"]])
    proc = subprocess.run([sys.executable, "-c", RSS_STEPS, json.dumps(steps), json.dumps(blocked)],
                          capture_output=True, text=True,
                          timeout=120)
    if proc.returncode != 0:
        raise SystemExit(f"import steps failed: {proc.stderr[-800:]}")
    return [(label, size) for label, size in json.loads(proc.stdout)]


def rss_breakdown(tmp: Path, n: int, argv: tuple[str, ...] = PLAIN_ARGV) -> dict[str, Any]:
    """Run the daemon (``python -m clawctl.daemon``, foreground, same code) under tracemalloc with
    an import hook, apply N Python agents (``argv``), and dump: retained bytes per module as it was imported
    (exclusive of nested imports), modules per package, biggest allocating files, VmRSS."""
    claw = Clawctl(tmp / "rss-home", "rss", ProcessLedger())
    out, trigger = tmp / "rss-dump.json", tmp / "rss-dump.request"
    claw.home.mkdir(parents=True, exist_ok=True)
    with open(tmp / "rss-daemon.log", "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-X", "tracemalloc=1", "-c", RSS_PROBE, str(out), str(trigger)],
                                env=claw.env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    claw.ledger.record(proc.pid)
    try:
        deadline = time.monotonic() + 30
        while claw.daemon() is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the traced daemon did not start; see {tmp / 'rss-daemon.log'}")
            time.sleep(0.1)
        log(f"rss breakdown: apply --wait of {n} Python agents to the traced daemon (pid {proc.pid})")
        claw.apply(n, argv=argv, notify=True)
        claw.agents()
        time.sleep(3.0)
        trigger.touch()
        deadline = time.monotonic() + 60
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        data: dict[str, Any] = json.loads(out.read_text())
        data["steps"] = import_steps(data["module_names"], data.get("blocked", []))
        return data
    finally:
        left = claw.teardown()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if left:
            log(f"rss breakdown: killed {len(left)} leftover pids")


# ------------------------------------------------------------------------ 2. scale


def idle_cpu(proc: psutil.Process, seconds: float) -> float:
    """CPU use of ``proc`` (percent of one core) over ``seconds`` of doing nothing."""
    before = proc.cpu_times()
    time.sleep(seconds)
    after = proc.cpu_times()
    return 100.0 * ((after.user + after.system) - (before.user + before.system)) / seconds


def limit_open_files() -> tuple[int, int]:
    """Set RLIMIT_NOFILE soft = hard = 1024 for this process (children inherit); returns the old limits."""
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    return old


def restore_open_files(old: tuple[int, int]) -> None:
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)
    except (ValueError, OSError):
        pass  # lowering the hard limit is one-way without CAP_SYS_RESOURCE


def clawctl_scale(claw: Clawctl, agents: int, idle_seconds: float) -> dict[str, Any]:
    """Apply ``agents`` agents and measure the daemon that runs them."""
    log(f"scale: clawctl apply --wait of {agents} agents under RLIMIT_NOFILE {NOFILE}")
    elapsed = claw.apply(agents)
    daemon = claw.daemon()
    if daemon is None:
        raise SystemExit("the clawctl daemon is not running after apply")
    rows = claw.agents()
    states = Counter(a["state"] for a in rows)
    kids = {pid for pid in children_of(daemon.pid) if cmdline(pid) == AGENT_ARGV}
    for pid in kids:
        claw.ledger.record(pid)
    result = {
        "apply_s": elapsed, "running": states.get("Running", 0), "exec": len(kids), "states": dict(states),
        "rss": daemon.memory_info().rss, "fds": daemon.num_fds(), "threads": daemon.num_threads(),
        "nofile": daemon.rlimit(psutil.RLIMIT_NOFILE),
    }
    log(f"scale: clawctl daemon idle CPU over {idle_seconds:g}s")
    result["idle_cpu"] = idle_cpu(daemon, idle_seconds)
    result["rss_after_idle"] = daemon.memory_info().rss
    return result


def supervisord_scale(sup: Supervisord, agents: int, settle: float, timeout: float,
                      idle_seconds: float) -> dict[str, Any]:
    """Start supervisord with ``agents`` programs; wait until the running count settles."""
    log(f"scale: supervisord with {agents} programs under RLIMIT_NOFILE {NOFILE}")
    start = time.perf_counter()
    sup.start()
    best, best_at, changed_at = 0, 0.0, time.perf_counter()
    while time.perf_counter() - start < timeout:
        if sup.proc is not None and sup.proc.poll() is not None:
            break
        running = len(sup.running_children())
        if running != best:
            changed_at = time.perf_counter()
            if running > best:
                best, best_at = running, changed_at - start
        elif running and time.perf_counter() - changed_at > settle:
            break
        time.sleep(0.1)
    alive = sup.proc is not None and sup.proc.poll() is None
    result: dict[str, Any] = {"exec": len(sup.running_children()) if alive else 0, "max_exec": best,
                              "max_exec_at_s": best_at, "alive": alive,
                              "exit": None if alive or sup.proc is None else sup.proc.returncode}
    info = sup.all_info() if alive else "supervisord exited"
    if isinstance(info, list):
        result["states"] = dict(Counter(p["statename"] for p in info))
        result["running"] = result["states"].get("RUNNING", 0)
        spawnerr = [re.sub(r"'x_\d+'", "'x_N'", p["spawnerr"]) for p in info if p.get("spawnerr")]
        result["spawnerr"] = Counter(spawnerr).most_common(2)
    else:
        result["rpc_error"] = info
    if alive:
        proc = psutil.Process(sup.pid)
        result.update(rss=proc.memory_info().rss, fds=proc.num_fds(), nofile=proc.rlimit(psutil.RLIMIT_NOFILE))
        result["idle_cpu"] = idle_cpu(proc, idle_seconds)
    result["log"] = sup.log_lines(r"Too many open files", r"EMFILE", r"spawnerr", r"CRIT (?!Server 'unix_http_server')",
                                  r"couldn't")
    return result


# ------------------------------------------------------------ 3. no-op reconcile


def time_passes(reconciler: Any, passes: int, prepare: Callable[[], None]) -> tuple[list[float], int]:
    """Wall seconds of ``passes`` passes, each after ``prepare()``; also how many changed something."""
    times, changed = [], 0
    for _ in range(passes):
        prepare()
        start = time.perf_counter()
        result = reconciler.run_pass()
        times.append(time.perf_counter() - start)
        changed += result.changed
    return times, changed


def profile_passes(reconciler: Any, prepare: Callable[[], None], passes: int = 10, top: int = 14) -> str:
    """cProfile of ``passes`` passes: the functions with the most own time, and the reconciler's steps."""
    profiler = cProfile.Profile()
    for _ in range(passes):
        prepare()
        profiler.enable()
        reconciler.run_pass()
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(r"reconciler\.py|launcher\.py|identity\.py|supervision\.py", top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def reconcile_bench(claw: Clawctl, passes: int) -> dict[str, Any]:
    """Section 3: stop the daemon, re-adopt in this process, time no-op passes."""
    from clawctl.daemon.reconciler import Reconciler
    from clawctl.registry.engine import Registry
    from clawctl.runtime.launcher import ProcessLauncher

    log("reconcile: stopping the daemon (agents keep running)")
    claw.run("daemon", "stop")
    registry = Registry(home=claw.home)
    result: dict[str, Any] = {}
    try:
        # move_self=False: the probe must not move this benchmark process between cgroups.
        launcher = ProcessLauncher(move_self=False)
        reconciler = Reconciler(registry, launcher, home=claw.home)
        start = time.perf_counter()
        reconciler.restore()
        result["restore_s"] = time.perf_counter() - start
        result["adopted"] = sum(1 for r in reconciler.records.values() if r.process is not None and r.process.adopted)
        settle = 0
        while reconciler.run_pass().changed:
            settle += 1
            if settle > 50:
                raise SystemExit("reconcile passes keep changing something; not a no-op state")
        result["settle_passes"] = settle + 1
        log(f"reconcile: timing {passes} no-op passes per variant")

        def periodic() -> None:
            reconciler.check_registry = False
            reconciler._next_adopted_check = time.time() + 3600  # liveness check of adopted pids not due

        def periodic_adopted() -> None:
            reconciler.check_registry = False
            reconciler._next_adopted_check = 0.0  # due: every tick of a daemon that re-adopted its agents

        def woken() -> None:
            reconciler.check_registry = True
            reconciler._next_adopted_check = time.time() + 3600

        variants = {"periodic (check_registry False)": periodic,
                    "periodic + adopted liveness check": periodic_adopted,
                    "after wake-up (check_registry True)": woken}
        result["variants"] = {}
        for name, prepare in variants.items():
            times, changed = time_passes(reconciler, passes, prepare)
            entry: dict[str, Any] = {"times": times, "changed": changed}
            if statistics.median(times) * 1000 > PASS_BAR_MS:
                entry["profile"] = profile_passes(reconciler, prepare)
            result["variants"][name] = entry
    finally:
        registry.close()
    return result


# ------------------------------------------------------------------------ report


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.1f} MB"


def print_crash(targets: list[Target], notes: dict[str, Any], pool: int, kills: int, ready: bool = False) -> None:
    if ready:
        print(f"\n1b. SIGKILL -> replacement READY ({pool} Python agents per tool, {kills} kills each; "
              "ms from the kill)")
        stages: tuple[tuple[str, Callable[[Sample], float | None]], ...] = (
            ("new child", lambda s: s.child), ("exec'd", lambda s: s.exec), ("said", lambda s: s.said),
            ("seen", lambda s: s.seen), ("READY", lambda s: s.running))
    else:
        print(f"\n1. SIGKILL -> replacement ({pool} sleep agents per tool, {kills} kills each; ms from the kill)")
        stages = (("new child", lambda s: s.child), ("exec'd", lambda s: s.exec), ("running", lambda s: s.running))
    print(f"   {'':13} {'':9} {'p50':>8} {'p90':>8} {'p95':>8} {'p99':>8} {'max':>8}")
    for target in targets:
        for label, pick in stages:
            values = [v for v in map(pick, target.samples) if v is not None]
            if not values:
                continue
            cells = [ms(percentile(values, q)) for q in (50, 90, 95, 99)] + [ms(max(values))]
            print(f"   {target.name:13} {label:9} " + " ".join(f"{c:>8}" for c in cells)
                  + (f"   ({len(values)}/{kills})" if len(values) != kills else ""))
        for failure in target.failures[:3]:
            print(f"   {target.name}: FAILED {failure}")
    if ready:
        ours = [s.running for s in targets[0].samples if s.running is not None]
        p50 = percentile(ours, 50) * 1000 if ours else float("nan")
        print("   exec'd = runs the agent command; said = the agent said it is ready (clawctl: mtime of the ready")
        print("   file notify_ready() touched; supervisord: mtime of its stdout log after the start line, printed")
        print("   just before notify_ready()); seen = clawctl's Ready event (the daemon saw the note); READY = the")
        print("   tool reports the slot ready on the new pid (clawctl: registry row Running, polled ~1 ms;")
        print("   supervisord: RUNNING over XML-RPC, polled ~1 ms, startsecs=1 default: a timer).")
        print(f"   clawctl READY p50 {p50:.1f} ms: target < {READY_BAR_MS:g} ms "
              f"{'MET' if p50 < READY_BAR_MS else 'NOT MET'}")
        print(f"   clawctl events: {notes.get('clawctl events')}")
        return
    print("   new child = a new child of the tool; exec'd = it runs `sleep 3600` (clawctl: after its setup in the clone);")
    print("   running = the tool reports the slot running on the new pid (clawctl: registry row, Running after")
    print(f"   READY_AFTER 0.3 s; supervisord: RUNNING over XML-RPC, startsecs=0). clawctl resetAfter {RESET_AFTER:g} s.")
    print(f"   clawctl events: {notes.get('clawctl events')}")


def print_ready(n: int, ours: dict[str, Any], theirs: dict[str, Any] | None, idle_seconds: float,
                agent: str = "plain") -> None:
    print(f"\n1c. {n} Python agents ({agent}: {' '.join(READY_AGENTS[agent][1:])}) from a cold start until the "
          "tool reports all of them ready")

    def sec(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f} s"

    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("reported ready", lambda r: f"{sec(r.get('apply_s', r.get('running_s')))} ({r['running']}/{n})"),
        ("all exec'd", lambda r: sec(r.get("exec_all_s"))),
        ("last agent said ready", lambda r: f"{sec(r.get('said_last_s'))} ({r['said']}/{n})"),
        ("supervisor CPU so far", lambda r: sec(r.get("start_cpu_s"))),
        ("agents' CPU (per agent)", lambda r: f"{r['agents_cpu'][1]:.2f} s ({r['agents_cpu'][1] / max(1, r['agents_cpu'][0]) * 1000:.1f} ms)"),
        ("daemon RSS", lambda r: f"{mb(r['rss'])} (after idle {mb(r['rss_after_idle'])})"),
        ("RSS anon / file", lambda r: f"{mb(r['status'].get('RssAnon'))} / {mb(r['status'].get('RssFile'))}"),
        ("open fds / threads", lambda r: f"{r['fds']} / {r['threads']}"),
        (f"idle CPU ({idle_seconds:g} s)", lambda r: f"{r['idle_cpu']:.2f} %"),
    ]
    print(f"   {'':24} {'clawctl':>32}   {'supervisord':>32}")
    for label, cell in rows:
        print(f"   {label:24} {cell(ours):>32}   {cell(theirs) if theirs else '-':>32}")
    print("   clawctl: the whole `clawctl apply f.yaml --wait` (it starts the daemon; readiness notify: Running")
    print(f"   only once the agent said so). clawctl timeline: daemon process created {sec(ours.get('daemon_up_s'))},")
    print(f"   first agent started {sec(ours.get('first_started_s'))}, last started {sec(ours.get('last_started_s'))}, "
          f"last Ready event {sec(ours.get('seen_last_s'))}; the `apply` process used {sec(ours.get('cli_cpu_s'))} "
          "of CPU.")
    print("   supervisord: from its start until getAllProcessInfo shows all RUNNING (startsecs=1, a timer).")
    if theirs and theirs.get("running_s") is not None:
        verdict = "MET" if ours["apply_s"] <= theirs["running_s"] else "NOT MET"
        print(f"   target: clawctl no later than supervisord: {verdict}")
    rss_ok = ours["rss"] <= RSS_BAR_200_MB * 2**20
    print(f"   target: clawctl daemon RSS <= {RSS_BAR_200_MB:g} MB at {n} agents: {'MET' if rss_ok else 'NOT MET'}")
    for name, result in (("clawctl", ours), ("supervisord", theirs)):
        if result:
            print(f"   {name} biggest mappings: " + ", ".join(f"{Path(k).name or k} {mb(v)}"
                                                             for k, v in result["smaps"][:6]))


def print_breakdown(n: int, data: dict[str, Any]) -> None:
    print(f"\nRSS breakdown: the daemon (python -m clawctl.daemon) under tracemalloc, {n} Python agents")
    print(f"   /proc status: {data['status']}  (tracemalloc's own {mb(data['tracemalloc_overhead'])} included)")
    print(f"   Python heap traced {mb(data['traced'])}, of which retained by imports "
          f"{mb(data['import_retained'])}; {data['n_modules']} modules")
    stdlib = sum(v for k, v in data["by_group"].items() if k.startswith("stdlib "))
    stdlib_modules = sum(v for k, v in data["modules"].items() if k.startswith("stdlib "))
    print(f"   retained at import, by package (stdlib in all: {mb(stdlib)}, {stdlib_modules} modules):")
    for group, size in sorted(data["by_group"].items(), key=lambda kv: -kv[1])[:16]:
        print(f"     {group:24} {mb(size):>10}  ({data['modules'].get(group, 0)} modules)")
    print("   biggest modules (exclusive of their own imports):")
    for name, size in data["top_modules"][:15]:
        print(f"     {name:48} {mb(size):>10}")
    if data.get("blocked"):
        print(f"   kept out of the daemon (None in sys.modules): {', '.join(data['blocked'])}")
    print("   VmRSS of a fresh python importing, step by step, what the daemon imports (no tracemalloc):")
    previous = 0
    for label, size in data["steps"]:
        print(f"     {label:62} {mb(size):>10}  (+{mb(size - previous)})")
        previous = size
    print("   biggest allocating files now (tracemalloc, innermost frame):")
    for name, size in data["top_files"][:12]:
        print(f"     {name[-70:]:70} {mb(size):>10}")


def print_scale(agents: int, ours: dict[str, Any], theirs: dict[str, Any] | None) -> None:
    print(f"\n2. {agents} sleep agents under one supervisor, RLIMIT_NOFILE soft=hard={NOFILE}")
    print(f"   clawctl apply --wait      {ours['apply_s']:8.1f} s   (isolation level shared: no cgroups)")
    print(f"   clawctl running           {ours['running']:8d}     (status Running; {ours['exec']} exec'd children)")
    print(f"   clawctl daemon RSS        {mb(ours['rss']):>11}   (after {mb(ours['rss_after_idle'])} idle)")
    print(f"   clawctl daemon open fds   {ours['fds']:8d}     (threads {ours['threads']}, nofile {ours['nofile']})")
    print(f"   clawctl daemon idle CPU   {ours['idle_cpu']:8.2f} %")
    if theirs is None:
        return
    print(f"   supervisord running       {theirs.get('running', '-')!s:>8}     ({theirs['exec']} exec'd children; "
          f"max {theirs['max_exec']} at {theirs['max_exec_at_s']:.1f} s)")
    if "states" in theirs:
        print(f"   supervisord states        {theirs['states']}")
    if "rpc_error" in theirs:
        print(f"   supervisord XML-RPC       {theirs['rpc_error']}")
    if theirs.get("alive"):
        print(f"   supervisord RSS           {mb(theirs['rss']):>11}")
        print(f"   supervisord open fds      {theirs['fds']:8d}     (nofile {theirs['nofile']})")
        print(f"   supervisord idle CPU      {theirs['idle_cpu']:8.2f} %")
    else:
        print(f"   supervisord exited        {theirs['exit']}")
    for text, count in theirs.get("spawnerr", []):
        print(f"   supervisord spawnerr      {count} x {text!r}")
    for line in theirs.get("log", []):
        print(f"   supervisord log           {line[:140]}")


def print_reconcile(agents: int, result: dict[str, Any]) -> None:
    print(f"\n3. No-op reconcile pass, {result['adopted']} re-adopted agents (bar {PASS_BAR_MS:g} ms)")
    print(f"   restore() re-adopting {result['adopted']}: {result['restore_s'] * 1000:.0f} ms; "
          f"{result['settle_passes']} passes until one changed nothing")
    print("   (the adopted liveness check is due every 1 s, so a daemon that re-adopted its agents pays it on")
    print("   every 2 s tick; agents it spawned itself are not checked that way)")
    print(f"   {'':38} {'median':>8} {'p90':>8} {'max':>8}  changed")
    for name, entry in result["variants"].items():
        times = entry["times"]
        cells = [ms(statistics.median(times)), ms(percentile(times, 90)), ms(max(times))]
        print(f"   {name:38} " + " ".join(f"{c:>8}" for c in cells) + f"  {entry['changed']}/{len(times)}")
    for name, entry in result["variants"].items():
        if "profile" in entry:
            print(f"\n   profile of '{name}' (10 passes):")
            print("\n".join("     " + line for line in entry["profile"].splitlines() if line.strip()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 + 10 kills, 200 agents, 20 passes")
    parser.add_argument("--kills", type=int, default=None)
    parser.add_argument("--pool", type=int, default=5)
    parser.add_argument("--agents", type=int, default=None)
    parser.add_argument("--passes", type=int, default=None)
    parser.add_argument("--ready-n", type=int, default=200, help="agents of the cold-start readiness test")
    parser.add_argument("--ready-kills", type=int, default=None, help="SIGKILLs per tool of the readiness crash test")
    parser.add_argument("--idle", type=float, default=None, help="seconds of the idle CPU measure at --ready-n")
    parser.add_argument("--rss-breakdown", action="store_true",
                        help="also run the daemon under tracemalloc at --ready-n agents and say what its memory is")
    parser.add_argument("--ready-agent", choices=sorted(READY_AGENTS), default="plain",
                        help="the Python agent of 1b, 1c and --rss-breakdown: plain (the same work under both "
                             "tools) or echo (under clawctl it also connects through the SDK)")
    parser.add_argument("--skip", choices=["crash", "crash-ready", "ready", "scale", "supervisord-scale",
                                           "supervisord-ready"],
                        action="append", default=[])
    args = parser.parse_args()
    kills = args.kills or (20 if args.quick else 50)
    agents = args.agents or (200 if args.quick else 1000)
    passes = args.passes or (20 if args.quick else 50)
    idle = 3.0 if args.quick else 6.0
    ready_kills = args.ready_kills or (10 if args.quick else 40)
    ready_idle = args.idle or (5.0 if args.quick else 10.0)
    ready_argv = READY_AGENTS[args.ready_agent]
    os.environ.pop("CLAWCTL_REGISTRY", None)
    executable("supervisord")

    print(f"supervise_bench: {os.cpu_count()} cores, Linux {os.uname().release}, Python "
          f"{sys.version.split()[0]}, {len(psutil.pids())} processes on the host at start")
    with tempfile.TemporaryDirectory(prefix="supervise-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if "crash" not in args.skip:
            targets, notes = crash_bench(tmp, args.pool, kills)
            print_crash(targets, notes, args.pool, kills)
        if "crash-ready" not in args.skip:
            targets, notes = crash_bench(tmp, args.pool, ready_kills, ready=True, ready_argv=ready_argv)
            print_crash(targets, notes, args.pool, ready_kills, ready=True)
        if "ready" not in args.skip:
            ours_ready = clawctl_ready(tmp, args.ready_n, ready_idle, argv=ready_argv)
            theirs_ready = None
            if "supervisord-ready" not in args.skip:
                theirs_ready = supervisord_ready(tmp, args.ready_n, ready_idle, argv=ready_argv)
            print_ready(args.ready_n, ours_ready, theirs_ready, ready_idle, args.ready_agent)
        if args.rss_breakdown:
            print_breakdown(args.ready_n, rss_breakdown(tmp, args.ready_n, ready_argv))
        sys.stdout.flush()
        if "scale" in args.skip:
            return
        old = limit_open_files()
        try:
            ledger = ProcessLedger()
            claw = Clawctl(tmp / "scale-home", "scale", ledger)
            try:
                ours = clawctl_scale(claw, agents, idle)
                reconcile = reconcile_bench(claw, passes)
            finally:
                log("scale: tearing down the clawctl fleet")
                left = claw.teardown()
                if left:
                    log(f"scale: killed {len(left)} leftover clawctl pids")
            theirs = None
            if "supervisord-scale" not in args.skip:
                sup = Supervisord(tmp / "scale-supervisord", agents, ProcessLedger())
                try:
                    theirs = supervisord_scale(sup, agents, settle=5.0, timeout=90.0, idle_seconds=idle)
                finally:
                    log("scale: stopping supervisord")
                    left = sup.teardown()
                    if left:
                        log(f"scale: killed {len(left)} leftover supervisord pids")
        finally:
            restore_open_files(old)
        print_scale(agents, ours, theirs)
        print_reconcile(agents, reconcile)


if __name__ == "__main__":
    main()
