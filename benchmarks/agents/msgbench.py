"""The agent of benchmarks/messaging_bench.py: sends durable messages on command, receives them
and keeps latency figures.

Session messages are commands:
- ``{"do": "blast", "to": T, "count": N, "threads": K, "batch": B, "rate": R, "start": S, "phase": P}``: send N
  messages to T from K threads, B per ``send_messages`` call (default 100; 1: one ``send_message`` each). Paced
  (R > 0): thread i first sends at wall-clock time S (default now) plus (P + i) / K of its interval, so
  threads (and senders given phases j / senders) take turns instead of sending in step; returns
  {"sent", "seconds", "store_ms": [p50, p99]}: each message's store latency is the duration of the
  call that sent it (a batch call counts once per message in it, with its whole duration).
- ``{"do": "stats"}``: {"received", "latency_ms": [p50, p99, max]} of send → handler, since the last reset.
- ``{"do": "reset"}``.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from clawctl.agent.sdk import Agent, Message, Session

_lock = threading.Lock()
_latencies: list[float] = []


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))] * 1000 if ordered else 0.0


def main() -> int:
    sys.setswitchinterval(0.0005)  # its threads hand the GIL around per message: shorter waits for it
    agent = Agent.from_env(workers=8)

    @agent.on_direct_message
    def got(message: Message) -> None:
        sent = message.payload.get("t") if isinstance(message.payload, dict) else None
        if isinstance(sent, float):
            with _lock:
                _latencies.append(time.time() - sent)

    def blast(to: str, count: int, threads: int, batch: int, rate: float = 0.0, start: float | None = None,
              phase: float = 0.0) -> dict[str, Any]:
        store: list[float] = []
        failures: list[str] = []
        per = [count // threads + (i < count % threads) for i in range(threads)]

        interval = batch * threads / rate if rate > 0 else 0.0  # seconds between a thread's calls

        begin = time.perf_counter() + max(0.0, (start if start is not None else time.time()) - time.time())

        def run(n: int, offset: float) -> None:
            mine: list[float] = []
            next_at = begin + offset
            while n > 0:
                size = min(batch, n)
                if interval:  # paced: hold the rate, never catch up in a burst
                    time.sleep(max(0.0, next_at - time.perf_counter()))
                    next_at = max(next_at + interval, time.perf_counter())
                start = time.perf_counter()
                if batch == 1:
                    agent.send_message(to, {"t": time.time()})
                else:
                    now = time.time()  # the send time of every message of this call
                    for outcome in agent.send_messages([(to, {"t": now}) for _ in range(size)]):
                        if not isinstance(outcome, str):
                            failures.append(str(outcome))
                mine += [time.perf_counter() - start] * size  # the whole call, for each message in it
                n -= size
            with _lock:
                store.extend(mine)

        started = time.perf_counter()
        pool = [threading.Thread(target=run, args=(n, interval * (phase + i) / threads)) for i, n in enumerate(per)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        if failures:
            raise RuntimeError(f"{len(failures)} messages were refused, e.g. {failures[0]}")
        return {"sent": count, "seconds": time.perf_counter() - started,
                "store_ms": [_pct(store, 50), _pct(store, 99)]}

    @agent.on_message
    def command(_session: Session, message: dict[str, Any]) -> Any:
        if message["do"] == "blast":
            return blast(message["to"], int(message["count"]), int(message.get("threads", 4)),
                         max(1, int(message.get("batch", 100))), float(message.get("rate", 0.0)),
                         message.get("start"), float(message.get("phase", 0.0)))
        with _lock:
            if message["do"] == "reset":
                _latencies.clear()
                return "ok"
            return {"received": len(_latencies),
                    "latency_ms": [_pct(_latencies, 50), _pct(_latencies, 99), _pct(_latencies, 100)]}

    agent.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
