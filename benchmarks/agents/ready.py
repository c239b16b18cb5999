"""The agent of benchmarks/supervise_bench.py's readiness tests (``--ready-agent plain``): the
same program under both tools. It prints a start line, says it is ready
(``clawctl.agent.notify_ready()``: touches ``$CLAWCTL_READY_FILE`` under clawctl, a no-op under
supervisord) and sleeps until SIGTERM. Unlike the echo example it never opens the SDK's
connection, which it does only under clawctl and which would make the two tools' agents do
different work.
"""

from __future__ import annotations

from clawctl.agent import notify_ready
from clawctl.agent.examples._common import say, stop_event


def main() -> int:
    stop = stop_event()
    say("ready", "started")
    notify_ready()
    stop.wait()
    say("ready", "stopping on signal")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
