"""The fast start path: ``clawctl --version`` and ``clawctl validate …`` without typer.

Importing typer (with its click and the command modules) takes longer than
validating a config file, so the entry point runs these two commands itself
when it fully understands the arguments. Everything else — ``--help``, global
options, unknown options, bad or missing values, other commands — goes to the
typer app, whose parsing, messages and exit codes stay the reference
(tests/cli/test_fast_path.py checks that both read every accepted form alike).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing itself is not imported: this path is about start-up time
if TYPE_CHECKING:
    from collections.abc import Iterator

FORMATS = frozenset({"text", "json", "github", "junit"})
"""Values of ``validate --format`` (the ReportFormat enum of cli/validate.py)."""


class ValidateArgs:
    """The options of ``clawctl validate`` as typer passes them to the command."""

    __slots__ = ("paths", "files", "output_format", "strict", "each")

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.files: list[str] = []
        self.output_format = "text"
        self.strict = False
        self.each = False


def run_fast(argv: list[str]) -> int | None:
    """Run ``argv`` here and return its exit code, or None when the typer app must run it."""
    if argv == ["--version"]:
        import clawctl

        sys.stdout.write(f"clawctl {clawctl.__version__}\n")
        return 0
    if argv[:1] == ["validate"]:
        args = parse_validate(argv[1:])
        if args is not None:
            from clawctl.cli.validate_run import run_validate

            return run_validate(args.paths, args.files, output_format=args.output_format, strict=args.strict,
                                each=args.each)
    return None


def parse_validate(tokens: list[str]) -> ValidateArgs | None:
    """The options after ``validate``, read as click reads them; None for anything beyond
    the plain forms (help, unknown options, values that look like options or are not valid)."""
    args = ValidateArgs()
    rest = iter(tokens)
    for token in rest:
        if token == "-" or not token.startswith("-"):
            args.paths.append(token)
        elif token == "--":
            args.paths.extend(rest)
        elif token in ("--strict", "--each"):
            setattr(args, token[2:], True)
        else:
            option, value = _option_value(token, rest)
            if value is None or (value.startswith("-") and value != "-"):
                return None  # missing, or an option where a value should be: typer explains
            if option == "format":
                if value not in FORMATS:
                    return None
                args.output_format = value
            elif option == "filename":
                args.files.append(value)
            else:
                return None
    return args


_SHORT = {"-o": "format", "-f": "filename"}
_LONG = {"--format": "format", "--filename": "filename"}


def _option_value(token: str, rest: Iterator[str]) -> tuple[str | None, str | None]:
    """(option name, value) of an option taking a value: ``--format json``, ``--format=json``,
    ``-o json`` or ``-ojson``; (None, None) for any other token."""
    name, equals, attached = token.partition("=")
    if name in _LONG:
        return _LONG[name], attached if equals else next(rest, None)
    short = token[:2]
    if short in _SHORT:
        return _SHORT[short], token[2:] if len(token) > 2 else next(rest, None)
    return None, None

