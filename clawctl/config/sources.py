"""Turn PATH arguments into named byte sources: files, directories (recursive) and '-' for stdin."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from clawctl.errors import UsageError

YAML_SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 1024 * 1024
"""Config files larger than this are refused: a fleet description is a few KiB."""


@dataclass(frozen=True)
class Source:
    """Raw content of one input, named as the user should see it in messages."""

    name: str
    data: bytes
    oversized: bool = False


def expand_paths(paths: list[str]) -> list[str]:
    """Expand directories into their YAML files (recursive, sorted); keep files and '-' as given.

    Raises UsageError for a path that does not exist or a directory without YAML files.
    """
    out: list[str] = []
    for raw in paths:
        if raw == "-":
            out.append(raw)
            continue
        # os.path rather than pathlib (slow to import); Path('') meant '.', so '' still does.
        path = raw or "."
        if os.path.isdir(path):
            found = _yaml_files_under(raw)
            if not found:
                raise UsageError(
                    f"directory {raw} holds no .yaml or .yml files",
                    hint="point at a directory of clawctl config files, or at the files themselves",
                )
            out.extend(found)
        elif os.path.exists(path):
            out.append(raw)
        else:
            raise UsageError(f"{raw} does not exist", hint="check the path; use '-' to read from standard input")
    return out


def read_source(name: str) -> Source:
    """Read one expanded path (or '-' for stdin) without trusting its size.

    Raises UsageError when the file cannot be read at all.
    """
    try:
        if name == "-":
            data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
            return Source("<stdin>", data[:MAX_FILE_BYTES], oversized=len(data) > MAX_FILE_BYTES)
        with open(name, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_FILE_BYTES:
                return Source(name, b"", oversized=True)
            # Ask for the size fstat gave (+1 to see growth): a read of the full limit
            # allocates a 1 MiB buffer per file, which costs more than the parsing.
            data = fh.read(size + 1)
            if len(data) > size:  # grown since fstat, or a size-less file such as a pipe
                data += fh.read(MAX_FILE_BYTES + 1 - len(data))
            return Source(name, data)
    except OSError as exc:
        raise UsageError(
            f"cannot read {name}: {exc.strerror or exc}",
            hint="check the file's permissions",
        ) from exc


def _yaml_files_under(directory: str) -> list[str]:
    """YAML files below ``directory``, sorted, skipping hidden files and directories (.git …)."""
    found: list[str] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(os.path.join(root, f) for f in files if f.endswith(YAML_SUFFIXES) and not f.startswith("."))
    return sorted(found)
