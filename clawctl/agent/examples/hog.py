"""Example agent that eats memory: allocates and touches ``--step`` MiB every
``--interval`` seconds until killed (or until ``--max`` MiB, then it holds).
Run it under a memory quota to see the kernel OOM-kill it.

    python3 -m clawctl.agent.examples.hog [--step MIB] [--interval SECONDS] [--max MIB]
"""

from __future__ import annotations

import argparse

from clawctl.agent.examples._common import say, stop_event

MIB = 1 << 20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hog", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--step", type=int, default=16, help="MiB allocated per step")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between steps")
    parser.add_argument("--max", type=int, default=None, help="stop growing at this many MiB")
    args = parser.parse_args(argv)
    stop = stop_event()
    say("hog", f"started, +{args.step} MiB every {args.interval:g}s")
    held: list[bytes] = []
    while not stop.wait(args.interval):
        if args.max is not None and len(held) * args.step >= args.max:
            continue
        held.append(b"\x01" * (args.step * MIB))  # filled, so every page is really resident
        say("hog", f"holding {len(held) * args.step} MiB")
    say("hog", "stopping on signal")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
