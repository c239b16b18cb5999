"""The ``clawctl`` entry point: run the CLI behind the one error handler.

``--version`` and plain ``validate`` argument lists run on the fast start path
(cli/fast_path.py, no typer import); everything else runs the typer app.
Keep this module's imports minimal: they are paid by every command.
"""

from __future__ import annotations

import sys

from clawctl.cli.errors import run_guarded


def main(argv: list[str] | None = None) -> None:
    """Run clawctl with ``argv`` (default: sys.argv[1:]) and exit with its code."""
    sys.exit(run_guarded(argv))


if __name__ == "__main__":  # pragma: no cover
    main()
