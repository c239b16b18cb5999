"""The JSON Schemas in ``schemas/``: loading them and checking documents against them.

Valid documents take a fast path (a validator compiled from the schema by
fastjsonschema, cached as a module so later runs only import bytecode).
A document that fails it is checked again by jsonschema, which reports every
error with its path; ``schema_errors`` turns those into diagnostics.
"""

from __future__ import annotations

import json
import marshal
import os
import sys
import zlib
from functools import cache
from pathlib import Path
from typing import Any, Callable

import clawctl
from clawctl.home import cache_dir

UNION_SCHEMA = "clawctl.v1.json"
KINDS = ("Fleet", "AgentPool", "CommunicationPolicy")
API_VERSION = "clawctl/v1"


@cache
def schema_dir() -> Path:
    """The directory holding the schema files, in a wheel or in a source checkout."""
    package_dir = Path(clawctl.__file__).parent
    for candidate in (package_dir / "schemas", package_dir.parent / "schemas"):
        if (candidate / UNION_SCHEMA).is_file():
            return candidate
    raise FileNotFoundError(f"clawctl's schemas are missing (looked beside {package_dir})")


@cache
def schema_text() -> str:
    return (schema_dir() / UNION_SCHEMA).read_text(encoding="utf-8")


@cache
def union_schema() -> dict[str, Any]:
    """The schema every clawctl/v1 document must satisfy."""
    result: dict[str, Any] = json.loads(schema_text())
    return result


def kind_schema(kind: str) -> dict[str, Any]:
    """A self-contained draft-07 schema for one kind (for ``clawctl schema KIND``)."""
    union = union_schema()
    return {
        "$schema": union["$schema"],
        "title": f"clawctl/v1 {kind}",
        "$ref": f"#/definitions/{kind}",
        "definitions": union["definitions"],
    }


def fast_validator() -> Callable[[Any], Any]:
    """A compiled validator of the union schema: returns on success, raises on the first error."""
    return _fast_validator(schema_text())


@cache
def _fast_validator(text: str) -> Callable[[Any], Any]:
    import fastjsonschema

    # A cache key, not a security boundary: crc32 + length needs no hashlib (4 ms to import).
    key = f"{text}{fastjsonschema.VERSION}{sys.implementation.cache_tag}".encode()
    digest = f"{zlib.crc32(key):08x}{len(key):x}"
    cached = cache_dir() / f"schema_{digest}.bin"
    try:
        code = marshal.loads(cached.read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        # Generating and compiling the validator costs ~100 ms; store its bytecode so
        # later runs only unmarshal it (independent of PYTHONDONTWRITEBYTECODE).
        source = fastjsonschema.compile_to_code(json.loads(text))
        code = compile(source, f"<clawctl schema {digest}>", "exec")
        _store(cached, marshal.dumps(code))
    namespace: dict[str, Any] = {"__name__": f"clawctl_schema_{digest}"}
    exec(code, namespace)  # noqa: S102 - bytecode we generated from our own schema
    validate: Callable[[Any], Any] = namespace["validate"]
    return validate


def _store(path: Path, data: bytes) -> None:
    """Write atomically; a read-only or missing cache directory only costs speed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError:
        pass


@cache
def detailed_validator() -> Any:
    """A jsonschema Draft7Validator of the union schema, for complete error reports."""
    from jsonschema import Draft7Validator

    return Draft7Validator(union_schema())
