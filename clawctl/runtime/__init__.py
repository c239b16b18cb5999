"""Runtime: the only layer that spawns, signals and measures agent processes.

The daemon uses a ``Launcher`` (``ProcessLauncher`` for real processes,
``FakeLauncher`` in tests), ``rotate_logs`` for log retention and the pure
helpers ``over_disk_quota`` / ``monitored_violations`` to act on quotas that the
host can only monitor. See docs/isolation.md for what is enforced where.
"""

from __future__ import annotations

from clawctl.runtime.enforcement import monitored_violations, over_disk_quota, plan_quotas
from clawctl.runtime.fake import FakeLauncher
from clawctl.runtime.host import HostFacts, probe_host
from clawctl.runtime.launcher import Launcher, ProcessLauncher
from clawctl.runtime.logs import log_path, rotate_logs
from clawctl.runtime.records import QUOTA_NAMES, SETUP_FAILED, AgentProcess, Enforcement, Exit, LaunchSpec, Usage

__all__ = [
    "QUOTA_NAMES",
    "SETUP_FAILED",
    "AgentProcess",
    "Enforcement",
    "Exit",
    "FakeLauncher",
    "HostFacts",
    "LaunchSpec",
    "Launcher",
    "ProcessLauncher",
    "Usage",
    "log_path",
    "monitored_violations",
    "over_disk_quota",
    "plan_quotas",
    "probe_host",
    "rotate_logs",
]
