"""Identity by pid + create_time; zombies are not running."""

from __future__ import annotations

import os
import sys
import time

import psutil

from clawctl.runtime import identity


def test_own_process() -> None:
    started = identity.create_time(os.getpid())
    assert started == psutil.Process().create_time()
    assert identity.is_running(os.getpid(), started)
    assert not identity.is_running(os.getpid(), started - 1.0)
    assert identity.create_time(2**22 + 12345) is None
    assert identity.cgroup_entries(2**22 + 12345) == ()


def test_a_zombie_exists_but_does_not_run() -> None:
    pid = os.posix_spawn(sys.executable, [sys.executable, "-S", "-c", "pass"], {})
    try:
        started = identity.create_time(pid)
        assert started is not None
        deadline = time.monotonic() + 5
        while identity.is_running(pid, started) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not identity.is_running(pid, started)
        assert identity.exists(pid, started)
    finally:
        os.waitpid(pid, 0)
    assert not identity.exists(pid, started)
