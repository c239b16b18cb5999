"""Agents import the protocol cheaply: standard library and clawctl.errors only."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["sqlalchemy", "alembic", "typer", "rich", "psutil", "apscheduler", "ruamel", "jsonschema",
         "clawctl.registry", "clawctl.runtime", "clawctl.daemon", "clawctl.config", "clawctl.cli"]


def test_the_protocol_loads_no_heavy_module() -> None:
    code = ("import json, sys\n"
            "import clawctl.protocol.auth, clawctl.protocol.framing, clawctl.protocol.messages, "
            "clawctl.protocol.methods\n"
            f"print(json.dumps([m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or "
            f"any(m == h or m.startswith(h + '.') for h in {HEAVY!r})]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(done.stdout) == []
