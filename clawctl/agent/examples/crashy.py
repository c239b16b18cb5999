"""Example agent that crashes: exits with ``--code`` (default 1) after ``--delay``
seconds (default 1); exits 0 if stopped before that.

    python3 -m clawctl.agent.examples.crashy [--delay SECONDS] [--code N]
"""

from __future__ import annotations

import argparse

from clawctl.agent.examples._common import say, stop_event


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crashy", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--delay", type=float, default=1.0, help="seconds before crashing")
    parser.add_argument("--code", type=int, default=1, help="exit code of the crash")
    args = parser.parse_args(argv)
    stop = stop_event()
    say("crashy", f"started, crashing with exit {args.code} in {args.delay:g}s")
    if stop.wait(args.delay):
        say("crashy", "stopping on signal")
        return 0
    say("crashy", f"crashing with exit {args.code}")
    return int(args.code)


if __name__ == "__main__":
    raise SystemExit(main())
