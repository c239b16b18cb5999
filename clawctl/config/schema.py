"""The JSON Schemas in ``schemas/``: loading them and checking documents against them.

Valid documents take a fast path (a validator compiled from the schema by
fastjsonschema, cached as bytecode so later runs neither generate it nor
import fastjsonschema).
A document that fails it is checked again by jsonschema, which reports every
error with its path; ``schema_errors`` turns those into diagnostics.
"""

from __future__ import annotations

import marshal
import os
import re
import sys
import zlib
from functools import cache
from typing import TYPE_CHECKING, Any, Callable

import clawctl

if TYPE_CHECKING:
    from pathlib import Path

UNION_SCHEMA = "clawctl.v1.json"
KINDS = ("Fleet", "AgentPool", "CommunicationPolicy")
API_VERSION = "clawctl/v1"


@cache
def schema_dir() -> Path:
    """The directory holding the schema files, in a wheel or in a source checkout."""
    from pathlib import Path

    return Path(_schema_dir_name())


@cache
def _schema_dir_name() -> str:
    # os.path, not pathlib: validate reads the schema on every run, and pathlib is slow to import.
    package_dir = os.path.dirname(clawctl.__file__)
    for candidate in (os.path.join(package_dir, "schemas"), os.path.join(os.path.dirname(package_dir), "schemas")):
        if os.path.isfile(os.path.join(candidate, UNION_SCHEMA)):
            return candidate
    raise FileNotFoundError(f"clawctl's schemas are missing (looked beside {package_dir})")


@cache
def schema_text() -> str:
    with open(os.path.join(_schema_dir_name(), UNION_SCHEMA), encoding="utf-8") as fh:
        return fh.read()


@cache
def union_schema() -> dict[str, Any]:
    """The schema every clawctl/v1 document must satisfy."""
    import json

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


class CompiledSchemaFailure(ValueError):
    """Raised by the compiled validator for the first error it meets (jsonschema then explains)."""

    def __init__(self, message: str, *args: object, **details: object) -> None:
        super().__init__(message)


_GENERATOR_IMPORT = re.compile(r"^from fastjsonschema import (\w+(?:, \w+)*)$", re.MULTILINE)


def _own_exceptions(source: str) -> str:
    """The generated validator, raising CompiledSchemaFailure instead of fastjsonschema's exceptions:
    importing fastjsonschema (its code generator, urllib, json …) takes longer than the check."""
    def replace(match: re.Match[str]) -> str:
        names = match.group(1).split(", ")
        return "from clawctl.config.schema import " + ", ".join(f"CompiledSchemaFailure as {n}" for n in names)

    return _GENERATOR_IMPORT.sub(replace, source)


@cache
def _fast_validator(text: str) -> Callable[[Any], Any]:
    # A cache key, not a security boundary: crc32 + length needs no hashlib (4 ms to import).
    key = f"{text}{_generator_stamp()}{sys.implementation.cache_tag}".encode()
    digest = f"{zlib.crc32(key):08x}{len(key):x}"
    cached = os.path.join(_cache_dir_name(), f"schema_{digest}.bin")
    try:
        with open(cached, "rb") as fh:
            code = marshal.loads(fh.read())
    except (OSError, ValueError, EOFError, TypeError):
        import json

        import fastjsonschema

        # Generating and compiling the validator costs ~100 ms; store its bytecode so
        # later runs only unmarshal it (independent of PYTHONDONTWRITEBYTECODE).
        source = _own_exceptions(fastjsonschema.compile_to_code(json.loads(text)))
        code = compile(source, f"<clawctl schema {digest}>", "exec")
        _store(cached, marshal.dumps(code))
    namespace: dict[str, Any] = {"__name__": f"clawctl_schema_{digest}"}
    exec(code, namespace)  # noqa: S102 - bytecode we generated from our own schema
    validate: Callable[[Any], Any] = namespace["validate"]
    return validate


def _generator_stamp() -> str:
    """Which fastjsonschema generated a cached validator: its location and modification time,
    found without importing it (a new version is a new install, so a new time)."""
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        spec = find_spec("fastjsonschema", None) if find_spec else None
        if spec is not None and spec.origin:
            try:
                return f"{spec.origin}:{os.stat(spec.origin).st_mtime_ns}"
            except OSError:
                break
    import fastjsonschema  # unusual installs (zip, frozen): ask the package itself

    return str(fastjsonschema.VERSION)


def _cache_dir_name() -> str:
    """clawctl.home.cache_dir(), as a string; without pathlib when CLAWCTL_HOME is set."""
    home = os.environ.get("CLAWCTL_HOME")
    if home:
        return os.path.join(os.path.expanduser(home), "cache")
    from clawctl.home import cache_dir

    return str(cache_dir())


def _store(path: str, data: bytes) -> None:
    """Write atomically; a read-only or missing cache directory only costs speed."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError:
        pass


@cache
def detailed_validator() -> Any:
    """A jsonschema Draft7Validator of the union schema, for complete error reports."""
    from jsonschema import Draft7Validator

    return Draft7Validator(union_schema())
