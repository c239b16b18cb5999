"""Run a pure function over many inputs on every available core.

Workers are forked directly rather than through multiprocessing, whose pool
takes longer to import (~25 ms) than validating hundreds of files. Inputs are
handed out in small chunks through a pipe, so a core that is busy elsewhere
simply takes fewer of them, and the calling process works through chunks too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MIN_ITEMS_PER_WORKER = 100
"""Below this, starting a worker costs more than it saves."""
CHUNKS_PER_WORKER = 8
"""Chunks are small enough to balance uneven cores, large enough to keep the pipe traffic low."""


def usable_cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def parallel_map(func: Callable[[T], R], items: Sequence[T], *, max_workers: int | None = None) -> list[R]:
    """``[func(x) for x in items]``, in order, spread over forked workers when that pays off.

    An exception from ``func`` is raised here, the one the serial loop would have met
    first. Falls back to a plain loop for small inputs, on one core, where fork is not
    available, or when other threads are running (forking a threaded process is unsafe).
    """
    workers = min(max_workers or usable_cores(), len(items) // MIN_ITEMS_PER_WORKER, 8)
    if workers < 2 or not hasattr(os, "fork") or _threads_running():
        return [func(item) for item in items]
    return _forked_map(func, items, workers)


def _threads_running() -> bool:
    threading = sys.modules.get("threading")  # never imported: no thread was started through it
    return threading is not None and threading.active_count() > 1


def _forked_map(func: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    import pickle

    size = max(1, len(items) // (workers * CHUNKS_PER_WORKER))
    chunks = [items[start:start + size] for start in range(0, len(items), size)]
    # Every chunk number is in the pipe before anyone reads; 4-byte reads from a pipe
    # are atomic, so each chunk goes to exactly one process.
    tasks, feed = os.pipe()
    os.write(feed, b"".join(n.to_bytes(4, "little") for n in range(len(chunks))))
    os.close(feed)
    sys.stdout.flush()  # a child must not write out the parent's buffered output again
    sys.stderr.flush()
    children: list[tuple[int, int]] = []
    try:
        for _ in range(workers - 1):
            results, sink = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child; coverage does not follow forks
                os.close(results)
                _child(func, chunks, tasks, sink, pickle)
            os.close(sink)
            children.append((pid, results))
        done = _work(func, chunks, tasks)
        for pid, results in children:
            payload = _read_all(results)
            os.close(results)
            os.waitpid(pid, 0)
            if payload:
                done.update(pickle.loads(payload))
        children = []
    finally:
        os.close(tasks)
        for pid, results in children:  # only after an exception here: stop and reap the children
            os.close(results)
            _kill(pid)
    out: list[R] = []
    for number, chunk in enumerate(chunks):
        # A chunk is missing when its worker died or could not send it: do it here instead.
        outcome = done[number] if number in done else _run_chunk(func, chunk)
        if isinstance(outcome, BaseException):
            raise outcome
        out += outcome
    return out


def _run_chunk(func: Callable[[T], R], chunk: Sequence[T]) -> list[R] | BaseException:
    try:
        return [func(item) for item in chunk]
    except Exception as exc:  # noqa: BLE001 - raised by the caller, in the serial order
        return exc


def _work(func: Callable[[T], R], chunks: list[Sequence[T]], tasks: int) -> dict[int, list[R] | BaseException]:
    """Take chunks from the task pipe until it is empty; each chunk's results or its exception."""
    done: dict[int, list[R] | BaseException] = {}
    while True:
        raw = os.read(tasks, 4)
        if not raw:
            return done
        number = int.from_bytes(raw, "little")
        done[number] = _run_chunk(func, chunks[number])


def _kill(pid: int) -> None:
    import signal

    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass


def _child(func: Callable[[T], Any], chunks: list[Sequence[T]], tasks: int, sink: int, pickle: Any) -> None:
    """A forked worker: do chunks, send their outcomes, exit without running the parent's cleanup."""
    code = 0
    try:
        done = _work(func, chunks, tasks)
        try:
            payload = pickle.dumps(done, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - an unpicklable outcome: send none, the parent redoes the chunks
            payload = b""
        view = memoryview(payload)
        while view:
            view = view[os.write(sink, view):]
    except BaseException:  # noqa: BLE001 - Ctrl-C or a closed pipe: the parent redoes or stops
        code = 1
    finally:
        os._exit(code)


def _read_all(fd: int) -> bytes:
    parts: list[bytes] = []
    while True:
        part = os.read(fd, 1 << 20)
        if not part:
            return b"".join(parts)
        parts.append(part)
