"""Failover: time from an agent's death to its sessions answering again, for clawctl's
``restart`` and ``hot-standby`` strategies, side by side with supervisord restarting the same
kind of Python agent.

    python benchmarks/failover_bench.py              # --kills 30 --sessions 4
    python benchmarks/failover_bench.py --quick      # 10 kills each

clawctl: one pool running the SDK worker example (``readiness: notify``, sessions
``retention: persistent``, ``recovery: automatic``). ``restart``: 1 replica, so its
sessions answer again only once the agent was restarted and said hello. ``hot-standby``:
1 replica + 1 standby, so the standby is promoted and the sessions move to it. Each
round SIGKILLs the agent owning the sessions, at a random moment, and at once sends one
message on each session from its own thread; the figure is the time from the kill until
every session has answered (the sends wait inside the daemon until the session has an
agent again — nothing is retried by the client). supervisord has no sessions: its
figure is the time from the SIGKILL until the replacement process printed its start
line (benchmarks/agents/ready.py), the earliest it could answer anything; its
``startsecs=0``, ``autorestart=true``.

Every process started is recorded by pid and start time and ended by pid afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ProcessLedger, executable, percentile  # noqa: E402
from supervise_bench import PLAIN_ARGV, Clawctl, Supervisord, log  # noqa: E402

WORKER_ARGV = (sys.executable, "-m", "clawctl.agent.examples.worker")
BAR_HOT_STANDBY_MS = 50.0
"""Issue 7: hot-standby promotion, death → sessions answering, under 50 ms."""
SETTLE = 1.2
"""Seconds between a recovery and the next kill: past backoff.resetAfter (1 s), so every
kill is a 'first' crash that restarts at once (as supervisord always does)."""
TIMEOUT = 20.0

FLEET = """\
apiVersion: clawctl/v1
kind: Fleet
metadata: {{name: fo}}
---
apiVersion: clawctl/v1
kind: AgentPool
metadata: {{name: p}}
spec:
  replicas: 1
  command: [{argv}]
  health: {{readiness: notify, heartbeatInterval: 1s, heartbeatTimeout: 10s}}
  sessions: {{retention: persistent, recovery: automatic}}
  failover:
    strategy: {strategy}
    standbys: {standbys}
    maxRestarts: 10000
    window: 1s
    backoff: {{initial: 100ms, resetAfter: 1s}}
"""


def clawctl_failover(tmp: Path, strategy: str, kills: int, sessions: int, rng: random.Random,
                     ledger: ProcessLedger) -> dict[str, Any]:
    """Kill the sessions' agent ``kills`` times; seconds from each kill until every session answered."""
    from clawctl.daemon.client import operator_connection

    home = tmp / strategy / "home"
    home.mkdir(parents=True)
    claw = Clawctl(home, "fo", ledger)
    path = home.parent / "fleet.yaml"
    path.write_text(FLEET.format(argv=", ".join(json.dumps(a) for a in WORKER_ARGV), strategy=strategy,
                                 standbys=1 if strategy == "hot-standby" else 0))
    samples: list[float] = []
    first: list[float] = []
    failures: list[str] = []
    try:
        claw.run("apply", str(path), "--wait", "--timeout", "120")
        claw.record_daemon()
        claw.agents()
        conn = operator_connection(home)
        try:
            ids = [conn.call("sessions.open", {"pool": "p"})["id"] for _ in range(sessions)]
            for sid in ids:
                conn.call("sessions.send", {"session": sid, "message": "warm-up"})
            for _ in range(kills):
                owner = _settle(claw, strategy, ids, conn)
                time.sleep(rng.uniform(0.0, 0.5))
                row = claw.row(owner)
                if row is None or row[1] is None:
                    failures.append(f"no pid for {owner}")
                    continue
                answered: list[float] = []
                lock = threading.Lock()
                start = threading.Event()

                def send(sid: str) -> None:
                    start.wait()
                    try:
                        conn.call("sessions.send", {"session": sid, "message": "after"}, timeout=TIMEOUT)
                    except Exception as exc:  # noqa: BLE001 - every failure is a result
                        failures.append(f"{sid}: {exc}")
                        return
                    with lock:
                        answered.append(time.perf_counter())

                threads = [threading.Thread(target=send, args=(sid,)) for sid in ids]
                for thread in threads:
                    thread.start()
                t0 = time.perf_counter()
                os.kill(row[1], signal.SIGKILL)
                start.set()
                for thread in threads:
                    thread.join(TIMEOUT + 5)
                if len(answered) == len(ids):
                    samples.append(max(answered) - t0)
                    first.append(min(answered) - t0)
                claw.agents()
        finally:
            conn.close()
        events = claw.event_counts()
    finally:
        left = claw.teardown()
        if left:
            failures.append(f"killed leftover pids {left}")
    return {"samples": samples, "first": first, "failures": failures, "events": dict(events)}


def _settle(claw: Clawctl, strategy: str, ids: list[str], conn: Any) -> str:
    """Wait until the pool is whole again (a standby ready for hot-standby) and past resetAfter;
    returns the agent owning the sessions."""
    want = 2 if strategy == "hot-standby" else 1
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = claw.db().execute("SELECT state FROM agents WHERE id LIKE 'fo/%'").fetchall()
        if sum(1 for (state,) in rows if state == "Running") == want:
            break
        time.sleep(0.05)
    time.sleep(SETTLE)
    owners = {conn.call("sessions.show", {"session": sid, "history": 0})["agent_id"] for sid in ids}
    if len(owners) != 1:
        raise SystemExit(f"sessions are spread over {owners}; expected one owner")
    return owners.pop()


def supervisord_restart(tmp: Path, kills: int, rng: random.Random, ledger: ProcessLedger) -> dict[str, Any]:
    """SIGKILL supervisord's one program ``kills`` times; seconds until the new process printed its start line."""
    sup = Supervisord(tmp / "supervisord", 1, ledger, argv=PLAIN_ARGV, startsecs=0)
    samples: list[float] = []
    failures: list[str] = []
    try:
        sup.start()
        sup.wait_rpc()
        logs = tmp / "supervisord" / "childlogs"
        for _ in range(kills):
            deadline = time.monotonic() + 30
            kids: set[int] = set()
            while time.monotonic() < deadline and not kids:
                kids = sup.running_children()
                time.sleep(0.02)
            time.sleep(SETTLE + rng.uniform(0.0, 0.5))
            if len(kids) != 1:
                failures.append(f"{len(kids)} running children")
                continue
            victim = kids.pop()
            before = _start_lines(logs)
            t0 = time.perf_counter()
            os.kill(victim, signal.SIGKILL)
            while time.perf_counter() - t0 < TIMEOUT:
                if _start_lines(logs) > before:
                    samples.append(time.perf_counter() - t0)
                    break
                time.sleep(0.001)
            else:
                failures.append("no start line within the timeout")
    finally:
        left = sup.teardown()
        if left:
            failures.append(f"killed leftover pids {left}")
    return {"samples": samples, "failures": failures}


def _start_lines(logs: Path) -> int:
    count = 0
    for path in logs.glob("x_*-stdout-*.log"):
        try:
            count += path.read_bytes().count(b" started")
        except OSError:
            continue
    return count


def _row(name: str, values: list[float]) -> str:
    if not values:
        return f"| {name} | - | - | - | - | 0 |"
    ms = [v * 1000 for v in values]
    return (f"| {name} | {percentile(ms, 50):.1f} | {percentile(ms, 95):.1f} | {percentile(ms, 99):.1f} "
            f"| {max(ms):.1f} | {len(ms)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="10 kills each")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    kills = 10 if args.quick else args.kills
    executable("supervisord")
    os.environ.pop("CLAWCTL_REGISTRY", None)
    rng = random.Random(args.seed)
    ledger = ProcessLedger()
    with tempfile.TemporaryDirectory(prefix="clawctl-failover-") as raw:
        tmp = Path(raw)
        log(f"clawctl hot-standby: {kills} kills, {args.sessions} sessions")
        hot = clawctl_failover(tmp, "hot-standby", kills, args.sessions, rng, ledger)
        log(f"clawctl restart: {kills} kills, {args.sessions} sessions")
        restart = clawctl_failover(tmp, "restart", kills, args.sessions, rng, ledger)
        log(f"supervisord: {kills} kills")
        sup = supervisord_restart(tmp, kills, rng, ledger)
        leftover = ledger.kill_survivors()
    print(f"\nSIGKILL of the agent → its sessions answering again (ms), {args.sessions} sessions, one run:\n")
    print("| | p50 | p95 | p99 | max | n |")
    print("|---|---|---|---|---|---|")
    print(_row("clawctl hot-standby: every session answered (by the promoted standby)", hot["samples"]))
    print(_row("clawctl hot-standby: first session answered", hot["first"]))
    print(_row("clawctl restart: every session answered (by the restarted agent)", restart["samples"]))
    print(_row("clawctl restart: first session answered", restart["first"]))
    print(_row("supervisord autorestart: replacement printed its start line", sup["samples"]))
    hot_p50 = percentile([v * 1000 for v in hot["samples"]], 50)
    restart_p50 = percentile([v * 1000 for v in restart["samples"]], 50)
    print(f"\nhot-standby p50 {hot_p50:.1f} ms: {'meets' if hot_p50 < BAR_HOT_STANDBY_MS else 'MISSES'} the "
          f"{BAR_HOT_STANDBY_MS:g} ms bar of issue 7. restart p50 {restart_p50:.1f} ms: the agent's own start-up, "
          "hello and the sessions' move included (DESIGN.md's restart bar, crash → replacement running, is "
          "measured by supervise_bench.py)")
    for name, result in (("hot-standby", hot), ("restart", restart), ("supervisord", sup)):
        if result["failures"]:
            print(f"{name}: {len(result['failures'])} failure(s): {result['failures'][:5]}")
        if "events" in result:
            print(f"{name} events: {result['events']}")
    if leftover:
        print(f"killed leftover processes by pid: {leftover}")


if __name__ == "__main__":
    main()
