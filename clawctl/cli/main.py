"""The ``clawctl`` entry point: run the typer app behind the one error handler."""

from __future__ import annotations

import sys

from clawctl.cli.errors import run_guarded


def main(argv: list[str] | None = None) -> None:
    """Run clawctl with ``argv`` (default: sys.argv[1:]) and exit with its code."""
    sys.exit(run_guarded(argv))


if __name__ == "__main__":  # pragma: no cover
    main()
