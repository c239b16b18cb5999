"""Example agent programs, runnable as ``python3 -m clawctl.agent.examples.NAME``.

- ``echo``: logs a start line, heartbeats to stdout, exits 0 on SIGTERM; under a
  daemon (``CLAWCTL_SOCKET`` set) it also replies to each message with itself.
- ``worker``: SDK agent that answers after ``--service-time`` and counts messages
  in its session state.
- ``coordinator``: SDK agent that forwards each message to a session it opens in
  ``--target-pool`` and replies with the result.
- ``crashy``: exits non-zero after a delay (restart and crash-loop tests).
- ``hog``: allocates memory until it is killed (memory quota / OOM tests).

Standard library only, so that they start in a few tens of milliseconds.
"""
