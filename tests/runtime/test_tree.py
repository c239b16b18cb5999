"""Finding and signalling an agent's tree."""

from __future__ import annotations

import os
import signal
import textwrap

import psutil

from clawctl.runtime import AgentProcess, HostFacts, ProcessLauncher
from clawctl.runtime import tree

from .conftest import Harness, Strays, wait_for


def test_descendants_walk_agrees_with_a_full_scan(harness: Harness) -> None:
    proc = harness.python(
        "walk",
        "import subprocess, sys, time\n"
        "s = [sys.executable, '-c', 'import subprocess, sys, time; subprocess.Popen([sys.executable, \"-c\", \"import time; time.sleep(60)\"]); time.sleep(60)']\n"
        "subprocess.Popen(s); subprocess.Popen(s, start_new_session=True); print('ready', flush=True); time.sleep(60)",
    )
    harness.wait_log(proc, "ready")
    wait_for(lambda: len(tree.descendants(proc.pid)) == 4, what="four descendants")
    assert tree.descendants(proc.pid) == tree._descendants_by_scan(proc.pid)


def test_group_ownership_follows_the_leaders_identity() -> None:
    me = psutil.Process()
    assert tree.group_is_ours(AgentProcess("a", me.pid, me.create_time(), me.pid))
    assert not tree.group_is_ours(AgentProcess("a", me.pid, me.create_time() - 50, me.pid))
    assert tree.group_is_ours(AgentProcess("a", 2**22 + 12345, 1.0, 2**22 + 12345))  # gone: members keep the id


def test_a_graceful_python_agent_gets_exactly_one_sigterm(harness: Harness) -> None:
    """Regression: SIGTERM sent through the process group, the cgroup and the pid list
    arrived up to three times; one landing after the handler had run, while Python
    was exiting with default dispositions restored, killed the agent by SIGTERM."""
    proc = harness.python(
        "graceful",
        textwrap.dedent(
            """
            import signal, subprocess, sys, threading
            terms = []
            done = threading.Event()
            signal.signal(signal.SIGTERM, lambda *a: (terms.append(1), done.set()))
            tool = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            print("ready", flush=True)
            done.wait(60)
            tool.terminate(); tool.wait()
            print("terms", len(terms), flush=True)
            """
        ),
        memory_bytes=256 << 20,
    )
    harness.wait_log(proc, "ready")
    harness.launcher.stop(proc, 10.0)
    assert harness.wait_exit(proc).returncode == 0
    assert "terms 1" in harness.log(proc)


def test_signal_reaches_a_setsid_grandchild_without_cgroups(
    harness: Harness, strays: Strays, no_cgroup_host: HostFacts
) -> None:
    harness.launcher = ProcessLauncher(host=no_cgroup_host)
    proc = harness.python(
        "nocg",
        "import subprocess, sys, time\n"
        "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True)\n"
        "print('grandchild', g.pid, flush=True); time.sleep(60)",
    )
    grandchild = strays.add(int(harness.wait_log(proc, r"grandchild (\d+)").group(1)))
    assert os.getpgid(grandchild) != proc.pgid
    harness.launcher.signal(proc, signal.SIGKILL)
    wait_for(lambda: not strays.running(grandchild), what="the grandchild to die")
    assert harness.wait_exit(proc).signal == signal.SIGKILL
