"""How fast the runtime starts agents, and what 1000 of them cost the daemon.

    python benchmarks/spawn_bench.py [--spawns 200] [--ready 50] [--fleet 1000]

1. spawn() -> agent exec'd: ``spawn()`` of a ``sleep`` agent until its
   /proc/PID/cmdline is the agent's (its setup is done), p50/p99 over
   ``--spawns`` sequential spawns, without quotas and with every quota
   (memory, cpu, processes, openFiles, network loopback), through the fork
   server (the default) and through the exec shim per agent (the fallback),
   with the CPU each path costs: this process (the daemon's share: the spawn,
   then stopping and reaping the agent) and the agents (their setup before
   exec; ``sleep`` itself adds ~0.5 ms). Baseline:
   plain ``subprocess.Popen`` of the same command (no shim, no isolation).
2. spawn() -> Python agent ready: until the example echo agent's start line is in
   its log, over ``--ready`` spawns: what a restart costs end to end.
3. ``--fleet`` sleep agents under RLIMIT_NOFILE 1024: time to spawn all and until
   all are exec'd, the daemon's open fds and RSS before/after, time to stop all.

Runs as any user; quotas the host cannot enforce are reported as monitored (see
the "enforcement" line).
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from clawctl.config.model import Isolation, NetworkMode
from clawctl.runtime import AgentProcess, LaunchSpec, ProcessLauncher

SLEEP = ("sleep", "600")
QUOTAS = Isolation(
    memory_bytes=256 << 20, cpu_millis=500, processes=64, open_files=256, network=NetworkMode.LOOPBACK
)


def cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise SystemExit("timed out waiting for an agent")
        time.sleep(0.0002)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return f"{name:<44} p50 {statistics.median(ms):7.1f} ms   p99 {percentile(ms, 0.99):7.1f} ms   (n={len(ms)})"


class Bench:
    def __init__(self, root: Path, *, fork_server: bool = True) -> None:
        self.root = root
        self.launcher = ProcessLauncher(fork_server=fork_server)
        self.count = 0

    def spec(self, argv: tuple[str, ...], limits: Isolation = Isolation()) -> LaunchSpec:
        self.count += 1
        agent_id = f"bench-{self.count}"
        return LaunchSpec(agent_id, argv, {}, self.root / "work" / agent_id, self.root / "logs", limits, "clawctl-bench")

    def finish(self, procs: list[AgentProcess]) -> None:
        for proc in procs:
            self.launcher.signal(proc, signal.SIGKILL)
        for proc in procs:
            self.launcher.stop(proc, 0)
        remaining = {p.pid for p in procs}
        deadline = time.monotonic() + 60
        while remaining and time.monotonic() < deadline:
            remaining -= {e.pid for e in self.launcher.reap()}
            time.sleep(0.005)

    def exec_latency(self, n: int, limits: Isolation) -> tuple[list[float], list[float], AgentProcess]:
        spawn_calls, execs, procs = [], [], []
        target = "\0".join(SLEEP).encode() + b"\0"
        procs.append(self.launcher.spawn(self.spec(SLEEP, limits)))  # warm: the host probe, the fork server
        for _ in range(n):
            spec = self.spec(SLEEP, limits)
            start = time.perf_counter()
            proc = self.launcher.spawn(spec)
            spawn_calls.append(time.perf_counter() - start)
            wait_until(lambda: cmdline(proc.pid) == target)
            execs.append(time.perf_counter() - start)
            procs.append(proc)
        sample = procs[0]
        self.finish(procs)
        return spawn_calls, execs, sample

    def ready_latency(self, n: int, limits: Isolation) -> list[float]:
        argv = ("python3", "-m", "clawctl.agent.examples.echo", "--role", "bench")
        times = []
        for _ in range(n):
            spec = self.spec(argv, limits)
            start = time.perf_counter()
            proc = self.launcher.spawn(spec)
            log = proc.log_path
            assert log is not None
            wait_until(lambda: log.exists() and b" started" in log.read_bytes())
            times.append(time.perf_counter() - start)
            self.finish([proc])
        return times


def popen_baseline(n: int) -> list[float]:
    times = []
    target = "\0".join(SLEEP).encode() + b"\0"
    for _ in range(n):
        start = time.perf_counter()
        child = subprocess.Popen(SLEEP, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: cmdline(child.pid) == target)
        times.append(time.perf_counter() - start)
        child.kill()
        child.wait()
    return times


def cpu_ms(n: int, before: tuple[resource.struct_rusage, resource.struct_rusage]) -> tuple[float, float]:
    """CPU ms per agent since ``before`` (RUSAGE_SELF, RUSAGE_CHILDREN): this process's, and the
    reaped agents' (their setup plus ``sleep``)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    own = me.ru_utime + me.ru_stime - before[0].ru_utime - before[0].ru_stime
    agents = kids.ru_utime + kids.ru_stime - before[1].ru_utime - before[1].ru_stime
    return own / n * 1000, agents / n * 1000


def usage() -> tuple[resource.struct_rusage, resource.struct_rusage]:
    return resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)


def fleet(bench: Bench, n: int) -> list[str]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    me = psutil.Process()
    fds_before, rss_before = me.num_fds(), me.memory_info().rss
    start = time.perf_counter()
    procs = [bench.launcher.spawn(bench.spec(SLEEP)) for _ in range(n)]
    spawned = time.perf_counter() - start
    target = "\0".join(SLEEP).encode() + b"\0"
    wait_until(lambda: all(cmdline(p.pid) == target for p in procs), timeout=300)
    running = time.perf_counter() - start
    fds_after, rss_after = me.num_fds(), me.memory_info().rss
    alive = sum(bench.launcher.alive(p) for p in procs)
    start = time.perf_counter()
    for proc in procs:
        bench.launcher.stop(proc, 5.0)
    stopped = time.perf_counter() - start
    bench.finish([])
    remaining = {p.pid for p in procs}
    deadline = time.monotonic() + 60
    while remaining and time.monotonic() < deadline:
        remaining -= {e.pid for e in bench.launcher.reap()}
        time.sleep(0.005)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return [
        f"{n} sleep agents, RLIMIT_NOFILE {min(1024, hard)}: all spawn() calls {spawned:.2f} s, "
        f"all exec'd {running:.2f} s, {alive} alive",
        f"daemon open fds: {fds_before} before, {fds_after} with {n} agents running",
        f"daemon RSS: {rss_before / 2**20:.1f} MiB before, {rss_after / 2**20:.1f} MiB with {n} agents",
        f"stop() of all {n}, one after another (SIGTERM, tree gone, cgroups removed): {stopped:.2f} s"
        + (f"; {len(remaining)} not reaped!" if remaining else ""),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawns", type=int, default=200)
    parser.add_argument("--ready", type=int, default=50)
    parser.add_argument("--fleet", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="clawctl-spawn-bench-") as tmp:
        bench = Bench(Path(tmp))
        lines = [f"host: {os.cpu_count()} cpus, Python {sys.version.split()[0]}, {'root' if os.geteuid() == 0 else 'non-root'}, "
                 f"load average {os.getloadavg()[0]:.2f}"]
        baseline = popen_baseline(args.spawns)
        lines.append(summary("baseline Popen(sleep) -> exec'd", baseline))
        for label, path in (("fork server", bench), ("exec shim", Bench(Path(tmp) / "shim", fork_server=False))):
            for quotas, limits in (("no quotas", Isolation()), ("all quotas", QUOTAS)):
                before = usage()
                calls, execs, sample = path.exec_latency(args.spawns, limits)
                own, agents = cpu_ms(args.spawns + 1, before)
                lines += [
                    summary(f"{label}: spawn() call, {quotas}", calls),
                    summary(f"{label}: spawn() -> agent exec'd, {quotas}", execs),
                    f"{label}, {quotas}: CPU per agent {own:.1f} ms in this process (spawn, then stop and reap), "
                    f"{agents:.1f} ms in the agent",
                ]
            path.launcher.close()
        lines.append("enforcement with quotas: " + ", ".join(f"{k}={v}" for k, v in sample.enforcement.items()))
        if args.ready:
            lines += [
                summary("spawn() -> echo agent ready, no quotas", bench.ready_latency(args.ready, Isolation())),
                summary("spawn() -> echo agent ready, all quotas", bench.ready_latency(args.ready, QUOTAS)),
            ]
        if args.fleet:
            lines += fleet(bench, args.fleet)
        bench.launcher.close()
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
