"""``clawctl drain`` / ``uncordon`` without a daemon: usage errors, and nothing queued when no
daemon can carry the command out (through a real daemon: tests/daemon/test_failover.py)."""

from __future__ import annotations

from collections.abc import Callable

from clawctl.registry.engine import Registry
from tests.cli.conftest import Run

CLI = Callable[..., Run]


def test_a_target_must_name_its_kind(cli: CLI) -> None:
    run = cli("drain", "web-1")
    assert run.code == 2 and "'web-1' is not a target" in run.err and "agent/NAME" in run.err


def test_grace_period_and_timeout_must_be_durations(cli: CLI) -> None:
    run = cli("drain", "pool/web", "--grace-period", "soon")
    assert run.code == 2 and "--grace-period 'soon' is not a duration" in run.err
    run = cli("drain", "pool/web", "--timeout", "-1")
    assert run.code == 2 and "--timeout '-1' is not a duration" in run.err


def test_without_a_daemon_nothing_is_queued(cli: CLI) -> None:
    # The suite runs with CLAWCTL_AUTOSTART=0: no daemon is started.
    for verb in ("drain", "uncordon"):
        run = cli(verb, "pool/web")
        assert run.code == 1 and f"no daemon is running to {verb} pool/web" in run.err
    from clawctl.registry import supervision as store

    with Registry() as registry, registry.reading() as conn:
        assert conn is None or store.pending_commands(conn) == []
    assert cli("audit", "-o", "json").out.count('"drain"') == 0
