"""``clawctl schema [KIND]``: print the JSON Schema of every kind, or of one."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from clawctl.errors import ExitCode, UsageError


def schema_command(
    kind: Annotated[Optional[str], typer.Argument(help="Fleet, AgentPool or CommunicationPolicy (any case).")] = None,
) -> int:
    """Print the draft-07 JSON Schema for config documents (all kinds, or KIND)."""
    from clawctl.config.schema import KINDS, kind_schema, union_schema
    from clawctl.config.suggest import did_you_mean

    if kind is None:
        document = union_schema()
    else:
        match = next((k for k in KINDS if k.lower() == kind.lower()), None)
        if match is None:
            raise UsageError(f"unknown kind '{kind}'",
                             hint=did_you_mean(kind, KINDS) or f"kinds: {', '.join(KINDS)}")
        document = kind_schema(match)
    sys.stdout.write(json.dumps(document, indent=2) + "\n")
    return ExitCode.OK
