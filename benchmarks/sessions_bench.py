"""Sessions through a real daemon: opens per second, request/reply latency, balance evenness.

    python benchmarks/sessions_bench.py [--agents 4] [--opens 2000] [--sends 3000] [--total 10000]

One private CLAWCTL_HOME, one fleet of ``--agents`` SDK agents (``--agent echo``, the
default, replies at once; ``worker`` also writes its session state on every message)
in a least-connections pool.
The client is an operator connection in this process (the protocol the CLI uses,
without its process start), so the figures are the daemon's path:

1. ``sessions.open`` one after another, then from 8 threads at once: opens per second
   and the latency of each.
2. ``sessions.send`` on one session, one after another (client → daemon → agent → daemon
   → client, with the message and the reply written to the session's history):
   p50 / p99 / max. Target: p99 under 5 ms. Then 8 threads on 8 sessions: replies per second.
3. Sessions opened until ``--total`` are open in the pool; the open sessions per agent,
   read from the registry: max − min (target ≤ 1).

Everything it started is stopped at the end (fleet deleted, daemon stopped, survivors
killed by pid).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import ProcessLedger, percentile  # noqa: E402
from supervise_bench import Clawctl  # noqa: E402

from clawctl.daemon.client import operator_connection as operator  # noqa: E402
from clawctl.protocol.connection import Connection  # noqa: E402

FLEET = """\
apiVersion: clawctl/v1
kind: Fleet
metadata: {{name: {fleet}}}
---
apiVersion: clawctl/v1
kind: AgentPool
metadata: {{name: p}}
spec:
  replicas: {replicas}
  command: [{argv}]
  capacity: {capacity}
  isolation: {{level: shared}}
  loadBalancing: {{strategy: least-connections}}
  sessions: {{idleTimeout: 1h, cleanup: immediate}}
  health: {{readiness: notify}}
"""


class SessionsFleet(Clawctl):
    capacity = 10_000

    def write_fleet(self, replicas: int, argv: tuple[str, ...], notify: bool) -> Path:
        import json

        path = self.home.parent / f"{self.fleet}.yaml"
        path.write_text(FLEET.format(fleet=self.fleet, replicas=replicas, capacity=self.capacity,
                                     argv=", ".join(json.dumps(a) for a in argv)))
        return path


def ms(values: list[float]) -> str:
    return (f"p50 {percentile(values, 50) * 1e3:.2f} ms, p99 {percentile(values, 99) * 1e3:.2f} ms, "
            f"max {max(values) * 1e3:.2f} ms")


def timed_opens(conn: Connection, count: int) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        conn.call("sessions.open", {"pool": "p"})
        times.append(time.perf_counter() - start)
    return times


def parallel(home: Path, threads: int, work: "callable[[Connection, int], list[float]]") -> tuple[list[float], float]:
    """Run ``work(conn, index)`` on ``threads`` threads with a connection each; (all latencies, wall seconds)."""
    conns = [operator(home) for _ in range(threads)]
    results: list[list[float]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = work(conns[i], i)

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    wall = time.perf_counter() - start
    for conn in conns:
        conn.close()
    return [x for r in results for x in r], wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--opens", type=int, default=2000, help="sequential opens timed")
    parser.add_argument("--sends", type=int, default=3000, help="sequential request/replies timed")
    parser.add_argument("--total", type=int, default=10_000, help="sessions open in the pool for the evenness check")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--agent", choices=("echo", "worker"), default="echo",
                        help="echo: replies at once (the daemon's path alone); worker: also writes the "
                             "session's state on every message (one more round trip and write)")
    args = parser.parse_args()

    ledger = ProcessLedger()
    with tempfile.TemporaryDirectory(prefix="clawctl-sessions-bench-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        fleet = SessionsFleet(home, "bench", ledger)
        try:
            started = fleet.apply(args.agents, argv=(sys.executable, "-m", f"clawctl.agent.examples.{args.agent}"),
                                  notify=True)
            fleet.agents()
            print(f"fleet of {args.agents} {args.agent} agents ready in {started:.2f}s")
            conn = operator(home)

            timed_opens(conn, 50)  # warm-up
            opens = timed_opens(conn, args.opens)
            print(f"opens, sequential:  {len(opens) / sum(opens):,.0f}/s  ({ms(opens)})")
            per_thread = max(1, args.opens // args.threads)
            lat, wall = parallel(home, args.threads, lambda c, i: timed_opens(c, per_thread))
            print(f"opens, {args.threads} clients:   {len(lat) / wall:,.0f}/s  ({ms(lat)})")

            session = conn.call("sessions.open", {"pool": "p"})["id"]
            for i in range(100):
                conn.call("sessions.send", {"session": session, "message": i})
            sends = []
            for i in range(args.sends):
                start = time.perf_counter()
                conn.call("sessions.send", {"session": session, "message": {"n": i}})
                sends.append(time.perf_counter() - start)
            p99 = percentile(sends, 99) * 1e3
            print(f"request/reply, sequential: {ms(sends)}  (target p99 < 5 ms: {'met' if p99 < 5 else 'NOT met'})")

            own = [conn.call("sessions.open", {"pool": "p"})["id"] for _ in range(args.threads)]
            deadline = time.perf_counter() + 3.0

            def chat(c: Connection, i: int) -> list[float]:
                out = []
                while time.perf_counter() < deadline:
                    start = time.perf_counter()
                    c.call("sessions.send", {"session": own[i], "message": "x"})
                    out.append(time.perf_counter() - start)
                return out

            lat, wall = parallel(home, args.threads, chat)
            print(f"request/reply, {args.threads} clients: {len(lat) / wall:,.0f}/s  ({ms(lat)})")

            db = sqlite3.connect(f"file:{home / 'registry.db'}?mode=ro", uri=True, timeout=10)
            open_now = db.execute("SELECT count(*) FROM sessions WHERE state = 'Open'").fetchone()[0]
            missing = max(0, args.total - open_now)
            start = time.perf_counter()
            lat, wall = parallel(home, args.threads,
                                 lambda c, i: timed_opens(c, missing // args.threads + (i < missing % args.threads)))
            counts = [n for (n,) in db.execute(
                "SELECT count(*) FROM sessions WHERE state = 'Open' AND pool = 'p' GROUP BY agent_id")]
            db.close()
            print(f"least-connections over {sum(counts):,} open sessions on {len(counts)} agents: "
                  f"min {min(counts)}, max {max(counts)}, max − min = {max(counts) - min(counts)} "
                  f"(target ≤ 1: {'met' if max(counts) - min(counts) <= 1 else 'NOT met'}); "
                  f"{len(lat) / wall:,.0f} opens/s with {args.threads} clients at that size")
            conn.close()
        finally:
            survivors = fleet.teardown()
            if survivors:
                print(f"killed {len(survivors)} leftover processes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
