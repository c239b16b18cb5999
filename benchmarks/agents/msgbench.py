"""The agent of benchmarks/messaging_bench.py: sends durable messages on command, receives them
and keeps latency figures.

Session messages are commands:
- ``{"do": "blast", "to": T, "count": N, "threads": K}``: send N messages to T from K threads;
  returns {"sent", "seconds", "store_ms": [p50, p99]} (time until each send was stored).
- ``{"do": "stats"}``: {"received", "latency_ms": [p50, p99, max]} of send → handler, since the last reset.
- ``{"do": "reset"}``.
"""

from __future__ import annotations

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
    agent = Agent.from_env(workers=8)

    @agent.on_direct_message
    def got(message: Message) -> None:
        sent = message.payload.get("t") if isinstance(message.payload, dict) else None
        if isinstance(sent, float):
            with _lock:
                _latencies.append(time.time() - sent)

    def blast(to: str, count: int, threads: int) -> dict[str, Any]:
        store: list[float] = []
        per = [count // threads + (i < count % threads) for i in range(threads)]

        def run(n: int) -> None:
            mine = []
            for _ in range(n):
                start = time.perf_counter()
                agent.send_message(to, {"t": time.time()})
                mine.append(time.perf_counter() - start)
            with _lock:
                store.extend(mine)

        started = time.perf_counter()
        pool = [threading.Thread(target=run, args=(n,)) for n in per]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        return {"sent": count, "seconds": time.perf_counter() - started,
                "store_ms": [_pct(store, 50), _pct(store, 99)]}

    @agent.on_message
    def command(_session: Session, message: dict[str, Any]) -> Any:
        if message["do"] == "blast":
            return blast(message["to"], int(message["count"]), int(message.get("threads", 4)))
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
