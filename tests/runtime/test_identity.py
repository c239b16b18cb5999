"""Identity by pid + create_time; zombies are not running."""

from __future__ import annotations

import os
import subprocess
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


def test_values_are_psutils_without_loading_it() -> None:
    assert identity.boot_time() == psutil.boot_time()
    child = os.posix_spawn(sys.executable, [sys.executable, "-S", "-c", "import time; time.sleep(5)"], {})
    try:
        assert identity.create_time(child) == psutil.Process(child).create_time()
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)
    done = subprocess.run([sys.executable, "-c", "import sys, clawctl.runtime.launcher, clawctl.runtime.usage; "
                           "print('psutil' in sys.modules)"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"  # the daemon's runtime does not carry psutil (~1 MB)
