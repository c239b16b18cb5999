"""Run a pure, picklable function over many inputs on every available core."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

MIN_ITEMS_PER_WORKER = 100
"""Below this, starting a worker costs more than it saves."""


def usable_cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def parallel_map(func: Callable[[T], R], items: Sequence[T], *, max_workers: int | None = None) -> list[R]:
    """``[func(x) for x in items]``, in order, spread over forked workers when that pays off.

    Falls back to a plain loop for small inputs, on one core, where fork is not
    available, or when other threads are running (forking a threaded process is unsafe).
    """
    workers = min(max_workers or usable_cores(), len(items) // MIN_ITEMS_PER_WORKER, 8)
    if workers < 2 or not hasattr(os, "fork") or threading.active_count() > 1:
        return [func(item) for item in items]
    import multiprocessing

    context = multiprocessing.get_context("fork")
    chunk = max(1, len(items) // (workers * 4))
    with context.Pool(processes=workers) as pool:
        results = pool.map(func, items, chunksize=chunk)
        pool.close()
        pool.join()
    return results
