"""Agent log files: where they are, and size-based rotation with bounded retention.

An agent's stdout and stderr are one file, ``<log_dir>/<agent-id>.log``, opened
by the child itself with O_APPEND (the daemon holds no descriptor). Rotation
therefore cannot rename the file away from the writer: it copies the file to
``.log.1`` (shifting older copies up to ``.log.<keep>``) and truncates the
original in place; the agent's next O_APPEND write lands at the new end.

Loss window: bytes the agent writes between the final size check after the copy
and the truncate are lost (microseconds; the copy catches up with writes that
arrive while it runs).
"""

from __future__ import annotations

import os
from pathlib import Path

from clawctl.errors import RuntimeFailure
from clawctl.runtime.naming import safe_name

SUFFIX = ".log"
_CHUNK = 1 << 20


def log_path(log_dir: Path, agent_id: str) -> Path:
    """The log file of ``agent_id`` in ``log_dir``."""
    return log_dir / f"{safe_name(agent_id)}{SUFFIX}"


def _copy_catching_up(source: Path, target: Path) -> None:
    with open(source, "rb") as reader, open(target, "wb") as writer:
        for _round in range(4):
            while chunk := reader.read(_CHUNK):
                writer.write(chunk)
            if os.fstat(reader.fileno()).st_size <= reader.tell():
                break
        os.truncate(source, 0)


def rotate_file(path: Path, keep: int) -> None:
    """Rotate one log now: ``path`` -> ``path.1`` -> ... -> ``path.<keep>`` (older
    ones deleted), then truncate ``path``. With ``keep`` 0 the content is dropped."""
    for index in range(keep, 0, -1):
        older = path.with_name(f"{path.name}.{index}")
        if index == keep:
            older.unlink(missing_ok=True)
        elif older.exists():
            older.rename(path.with_name(f"{path.name}.{index + 1}"))
    if keep > 0:
        _copy_catching_up(path, path.with_name(f"{path.name}.1"))
    else:
        os.truncate(path, 0)


def rotate_logs(log_dir: Path, max_bytes: int, keep: int) -> list[Path]:
    """Rotate every ``*.log`` in ``log_dir`` larger than ``max_bytes``; also delete
    rotated copies beyond ``keep``. Returns the logs rotated. Files that fail do not
    stop the others; the first failure is raised as RuntimeFailure afterwards."""
    if max_bytes <= 0 or keep < 0:
        raise ValueError("max_bytes must be positive and keep not negative")
    rotated: list[Path] = []
    failure: OSError | None = None
    try:
        entries = list(os.scandir(log_dir))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise RuntimeFailure(f"cannot read log directory {log_dir}: {exc.strerror or exc}") from exc
    for entry in entries:
        name = entry.name
        try:
            if name.endswith(SUFFIX) and entry.is_file() and entry.stat().st_size > max_bytes:
                rotate_file(Path(entry.path), keep)
                rotated.append(Path(entry.path))
            elif SUFFIX + "." in name:
                stem, _, index = name.rpartition(".")
                if stem.endswith(SUFFIX) and index.isdigit() and int(index) > keep:
                    os.unlink(entry.path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            failure = failure or exc
    if failure is not None:
        raise RuntimeFailure(
            f"cannot rotate logs in {log_dir}: {failure.strerror or failure}",
            hint="check the permissions and free space of the log directory",
        ) from failure
    return rotated
