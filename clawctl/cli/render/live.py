"""Render the live side of ``status``: readiness per pool and one row per agent."""

from __future__ import annotations

import io

from clawctl.cli.render.style import Palette
from clawctl.cli.render.table import format_table
from clawctl.daemon.live import AgentLive, FleetLive

_QUOTA_SHORT = {"memory": "mem", "cpu": "cpu", "network": "net", "openFiles": "fds", "processes": "procs",
                "disk": "disk"}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d"


def _bytes(count: int | None) -> str:
    if count is None:
        return "-"
    for unit, size in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


def _quotas(agent: AgentLive) -> str:
    """``mem cpu net`` enforced; a trailing ``~`` marks quotas that are only monitored."""
    parts = []
    for name, how in agent.enforcement.items():
        if how == "unlimited":
            continue
        parts.append(_QUOTA_SHORT.get(name, name) + ("" if how == "enforced" else "~"))
    return " ".join(parts) or "-"


def render_live(live: FleetLive, *, colors: Palette, agents: bool = True) -> str:
    """Pool readiness, then agents; quotas marked ``~`` are monitored, not enforced."""
    out = io.StringIO()
    rows = []
    for p in live.pools:
        tint = colors.green if p.state == "Ready" else (colors.red if p.state in ("CrashLoop", "Degraded")
                                                         else colors.yellow)
        standby = f"+{p.standbys_ready}/{p.standbys_desired}" if p.standbys_desired else ""
        rows.append([p.pool, f"{p.ready}/{p.desired}{standby}", str(p.restarting), f"{tint}{p.state}{colors.reset}"])
    if rows:
        out.write(format_table(["POOL", "READY", "RESTARTING", "STATE"], rows, indent="  "))
    if agents and live.agents:
        out.write("\n")
        rows = [
            [a.agent_id + ("*" if a.outdated else ""), a.role, str(a.pid or "-"), a.state, _duration(a.uptime),
             str(a.restarts), a.last_exit or "-", _bytes(a.rss_bytes),
             "-" if a.cpu_percent is None else f"{a.cpu_percent:.1f}%", _quotas(a)]
            for a in live.agents
        ]
        out.write(format_table(["AGENT", "ROLE", "PID", "STATE", "UPTIME", "RESTARTS", "LAST EXIT", "RSS", "CPU",
                                "QUOTAS"], rows, indent="  "))
        if any(a.outdated for a in live.agents):
            out.write("  agents marked * run an older spec of their pool; the rolling update replaces them\n")
        problems = [a for a in live.agents if a.state == "CrashLoop" and a.message]
        for a in problems:
            out.write(f"  {colors.red}{a.agent_id}: {a.message}{colors.reset}\n")
    if any("monitored" in a.enforcement.values() for a in live.agents):
        out.write("  quotas marked ~ are monitored, not enforced, on this host (see docs/isolation.md)\n")
    return out.getvalue()
