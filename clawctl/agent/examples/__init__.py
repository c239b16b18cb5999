"""Example agent programs, runnable as ``python3 -m clawctl.agent.examples.NAME``.

- ``echo``: logs a start line, heartbeats to stdout, exits 0 on SIGTERM.
- ``crashy``: exits non-zero after a delay (restart and crash-loop tests).
- ``hog``: allocates memory until it is killed (memory quota / OOM tests).

Standard library only, so that they start in a few tens of milliseconds.
"""
