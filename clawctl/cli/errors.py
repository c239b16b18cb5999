"""The one place where failures become messages and exit codes.

``ClawctlError`` → ``error: <sentence>`` / ``hint: …`` and its exit code;
typer usage errors → exit 2; Ctrl-C → 130; anything unexpected → exit 3 with
one line naming the log file that holds the traceback.
"""

from __future__ import annotations

import sys

from clawctl.errors import ClawctlError, ExitCode

TYPE_CHECKING = False  # typing is not imported on the fast start path
if TYPE_CHECKING:
    from pathlib import Path


def print_error(message: str, hint: str | None = None) -> None:
    """Write ``error: …`` (and ``hint: …``) to stderr, colored on a terminal."""
    from clawctl.cli.render.style import palette, use_color

    stream = sys.stderr
    c = palette(use_color(stream))
    stream.write(f"{c.bold}{c.red}error:{c.reset} {message}\n")
    if hint:
        stream.write(f"{c.dim}hint:{c.reset} {hint}\n")
    stream.flush()


def run_guarded(argv: list[str] | None) -> int:
    """Run the CLI and return the process exit code; never lets a traceback reach the user."""
    try:
        from clawctl.cli.fast_path import run_fast

        code = run_fast(sys.argv[1:] if argv is None else list(argv))
        # typer gets argv as given: with None, click reads sys.argv itself, as it always did.
        return _run_app(argv) if code is None else int(code)
    except ClawctlError as exc:
        print_error(exc.message, exc.hint)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return _interrupted()
    except BrokenPipeError:
        return int(ExitCode.OK)
    except Exception:  # noqa: BLE001 - the last line of defence
        log = _write_crash_log()
        print_error(f"internal error; the traceback is in {log}",
                    "please report it with that file attached")
        return int(ExitCode.INTERNAL)


def _run_app(args: list[str] | None) -> int:
    """The typer app for everything the fast path leaves to it; typer's own exits become codes."""
    from typer import Abort, Exit
    from typer.exceptions import TyperException

    from clawctl.cli.app import build_app

    try:
        result = build_app()(args=args, prog_name="clawctl", standalone_mode=False)
        return int(result) if isinstance(result, int) else ExitCode.OK
    except Exit as exc:
        return int(exc.exit_code)
    except Abort:
        return _interrupted()
    except TyperException as exc:
        exc.show()  # type: ignore[attr-defined]  # click's ClickException API, vendored by typer
        return int(getattr(exc, "exit_code", ExitCode.USAGE))


def _interrupted() -> int:
    sys.stderr.write("\ninterrupted\n")
    return int(ExitCode.INTERRUPTED)


def _write_crash_log() -> Path | str:
    import time
    import traceback

    text = f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} clawctl {' '.join(sys.argv[1:])}\n{traceback.format_exc()}\n"
    try:
        from clawctl.home import clawctl_home

        log = clawctl_home() / "logs" / "cli-errors.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as fh:
            fh.write(text)
        return log
    except Exception:  # noqa: BLE001 - fall back to a temp file rather than lose the traceback
        import tempfile

        with tempfile.NamedTemporaryFile("w", prefix="clawctl-crash-", suffix=".log", delete=False) as tmp:
            tmp.write(text)
        return tmp.name
