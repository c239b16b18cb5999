"""Durable agent → agent messages through a real daemon: messages per second and latency.

    python benchmarks/messaging_bench.py [--senders 2] [--receivers 2] [--count 20000] [--threads 8] [--batch 100]

One private CLAWCTL_HOME, a pool ``send`` of ``--senders`` agents and a pool ``recv`` of
``--receivers`` agents (``benchmarks/agents/msgbench.py``, on the agent SDK), and a
CommunicationPolicy letting ``send`` message ``recv``. Each sender sends ``--count``
messages to ``pool/recv`` from ``--threads`` threads, ``--batch`` per ``send_messages`` call. A message counts once the
receiver's handler ran (the SDK acknowledges it right after; the daemon stored it before
answering the sender). Reported:

- messages per second, from the first send to the last message handled (target ≥ 5,000/s);
- latency of each message from its send to the receiver's handler, p50 / p99 / max
  (target p99 under 5 ms), and of the send alone (until the daemon stored it).

Throughput is measured under saturation (its latencies are queueing). Latency is measured on
lone messages (one sender thread, one message per call, nothing else in flight) and at a
paced 5,000 messages/s (``--paced-rate``, batches of 10 from 4 threads per sender; the threads of
a sender call at the same moments, every 16 ms; ``--paced-stagger``: all 8 threads take turns, a
call every 2 ms).
Everything it started is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import ProcessLedger  # noqa: E402
from supervise_bench import Clawctl  # noqa: E402

import psutil  # noqa: E402

from clawctl.daemon.client import operator_connection  # noqa: E402
from clawctl.protocol.connection import Connection  # noqa: E402

AGENT = str(Path(__file__).resolve().parent / "agents" / "msgbench.py")

FLEET = """\
apiVersion: clawctl/v1
kind: Fleet
metadata: {{name: {fleet}}}
---
apiVersion: clawctl/v1
kind: AgentPool
metadata: {{name: send}}
spec:
  replicas: {senders}
  command: [{argv}]
  isolation: {{level: shared}}
  health: {{readiness: notify}}
---
apiVersion: clawctl/v1
kind: AgentPool
metadata: {{name: recv}}
spec:
  replicas: {receivers}
  command: [{argv}]
  isolation: {{level: shared}}
  loadBalancing: {{strategy: round-robin}}
  health: {{readiness: notify}}
---
apiVersion: clawctl/v1
kind: CommunicationPolicy
metadata: {{name: bench}}
spec:
  rules:
    - from: send
      messages: [recv]
"""


class MessagingFleet(Clawctl):
    receivers = 2

    def write_fleet(self, replicas: int, argv: tuple[str, ...], notify: bool) -> Path:
        path = self.home.parent / f"{self.fleet}.yaml"
        path.write_text(FLEET.format(fleet=self.fleet, senders=replicas, receivers=self.receivers,
                                     argv=", ".join(json.dumps(a) for a in argv)))
        return path


def command(conn: Connection, session: str, **message: Any) -> Any:
    return conn.call("sessions.send", {"session": session, "message": message, "timeout": 600}, timeout=620)["reply"]


def cpu_seconds(procs: dict[str, psutil.Process]) -> dict[str, float]:
    """User + system CPU seconds used so far by each named process (0 when it is gone)."""
    used: dict[str, float] = {}
    for name, proc in procs.items():
        try:
            times = proc.cpu_times()
            used[name] = times.user + times.system
        except psutil.Error:
            used[name] = 0.0
    return used


def run_round(conn: Connection, senders: list[str], receivers: list[str], count: int, threads: int,
              batch: int, rate: float = 0.0, procs: dict[str, psutil.Process] | None = None,
              stagger: bool = False) -> dict[str, Any]:
    for session in receivers:
        command(conn, session, do="reset")
    results: list[Any] = [None] * len(senders)
    cpu_before = cpu_seconds(procs or {})
    machine_before = psutil.cpu_times()
    start = time.perf_counter()
    # Staggered: every sending thread of every sender gets its own slot of the interval (a common
    # start time, a phase per sender), so calls come one at a time, not all threads at once.
    begin = time.time() + 0.1
    if rate > 0 and stagger:
        start += 0.1  # the first call goes at ``begin``

    def blast(i: int) -> None:
        pacing = {"start": begin, "phase": i / len(senders)} if stagger else {}
        results[i] = command(conn, senders[i], do="blast", to="pool/recv", count=count, threads=threads, batch=batch,
                             rate=rate, **pacing)

    workers = [threading.Thread(target=blast, args=(i,)) for i in range(len(senders))]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    total = count * len(senders)
    while True:
        stats = [command(conn, s, do="stats") for s in receivers]
        if sum(s["received"] for s in stats) >= total:
            break
        if time.perf_counter() - start > 600:
            raise SystemExit(f"only {sum(s['received'] for s in stats)} of {total} messages arrived")
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    cpu = {name: (used - cpu_before[name]) / elapsed for name, used in cpu_seconds(procs or {}).items()}
    machine_after = psutil.cpu_times()
    busy = sum(after - before for after, before, field in zip(machine_after, machine_before, machine_after._fields)
               if field not in ("idle", "iowait"))
    return {"total": total, "seconds": elapsed, "senders": results, "receivers": stats, "cpu": cpu,
            "machine": busy / elapsed, "load": os.getloadavg()[0]}


def report(title: str, result: dict[str, Any]) -> None:
    lat = [r["latency_ms"] for r in result["receivers"]]
    store = [s["store_ms"] for s in result["senders"]]
    p99 = max(x[1] for x in lat)
    print(f"{title}: {result['total']:,} messages in {result['seconds']:.2f}s = "
          f"{result['total'] / result['seconds']:,.0f}/s")
    print(f"  send → handled: p50 {max(x[0] for x in lat):.2f} ms, p99 {p99:.2f} ms, max {max(x[2] for x in lat):.2f} ms"
          f" (worst receiver); send → stored: p50 {max(x[0] for x in store):.2f} ms, "
          f"p99 {max(x[1] for x in store):.2f} ms")
    if result["cpu"]:
        ours = sum(result["cpu"].values())
        print("  CPU (share of one core, whole round): " + ", ".join(
            f"{name} {share:.0%}" for name, share in result["cpu"].items()) +
            f"; the machine {result['machine']:.0%} of {psutil.cpu_count()} cores, "
            f"{max(0.0, result['machine'] - ours):.0%} not ours; load average {result['load']:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--receivers", type=int, default=2)
    parser.add_argument("--count", type=int, default=20000, help="messages per sender")
    parser.add_argument("--threads", type=int, default=8, help="sending threads per sender")
    parser.add_argument("--batch", type=int, default=100, help="messages per send_messages call (throughput round)")
    parser.add_argument("--single", type=int, default=2000, help="messages for the lone-message latency round")
    parser.add_argument("--paced-rate", type=float, default=5000.0, help="messages/s of the paced latency round")
    parser.add_argument("--paced-seconds", type=float, default=4.0)
    parser.add_argument("--paced-batch", type=int, default=10, help="messages per call in the paced round")
    parser.add_argument("--paced-threads", type=int, default=4, help="sending threads per sender in the paced round")
    parser.add_argument("--paced-stagger", action="store_true",
                        help="paced threads take turns (one call every interval / (threads × senders)) instead of "
                             "the threads of a sender calling at the same moments")
    parser.add_argument("--rounds", default="throughput,lone,paced",
                        help="which rounds to run, comma-separated (default: all three)")
    parser.add_argument("--repeat", type=int, default=1, help="run the chosen rounds this many times")
    args = parser.parse_args()
    rounds = set(args.rounds.split(","))

    ledger = ProcessLedger()
    with tempfile.TemporaryDirectory(prefix="clawctl-messaging-bench-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        fleet = MessagingFleet(home, "bench", ledger)
        fleet.receivers = args.receivers
        try:
            fleet.apply(args.senders, argv=(sys.executable, AGENT), notify=True)
            procs = {"daemon": fleet.daemon()} if fleet.daemon() else {}
            procs["bench"] = psutil.Process()  # this process: its stats polling is load too
            for agent in fleet.agents():
                if agent.get("pid"):
                    procs[agent["id"] if "id" in agent else str(agent["pid"])] = psutil.Process(agent["pid"])
            if os.environ.get("MSGBENCH_PIDS"):  # for profilers attached from outside
                Path(os.environ["MSGBENCH_PIDS"]).write_text(json.dumps({n: p.pid for n, p in procs.items()}))
            conn = operator_connection(home)
            senders = [conn.call("sessions.open", {"pool": "send"})["id"] for _ in range(args.senders)]
            receivers = [conn.call("sessions.open", {"pool": "recv"})["id"] for _ in range(args.receivers)]
            run_round(conn, senders, receivers, 200, 2, args.batch)  # warm-up
            for _ in range(args.repeat):
                if "throughput" in rounds:
                    report(f"throughput: {args.senders} senders × {args.threads} threads × batches of {args.batch} "
                           f"→ {args.receivers} receivers", run_round(conn, senders, receivers, args.count,
                                                                      args.threads, args.batch, procs=procs))
                if "lone" in rounds:
                    report("latency: lone messages (one sender, one thread, one message per call)",
                           run_round(conn, senders[:1], receivers, args.single, 1, 1, procs=procs))
                if "paced" in rounds:
                    per_sender = args.paced_rate / len(senders)
                    report(f"latency under load: {args.paced_rate:,.0f} messages/s paced, batches of "
                           f"{args.paced_batch} from {args.paced_threads} threads per sender",
                           run_round(conn, senders, receivers, int(per_sender * args.paced_seconds),
                                     args.paced_threads, args.paced_batch, per_sender, procs=procs,
                                     stagger=args.paced_stagger))
            conn.close()
        finally:
            survivors = fleet.teardown()
            if survivors:
                print(f"killed {len(survivors)} leftover processes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
