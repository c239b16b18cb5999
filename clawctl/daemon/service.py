"""The daemon process: one per CLAWCTL_HOME, reconciling on a schedule and on wake-ups.

An APScheduler interval job runs reconcile passes; SIGUSR1 (apply, retry)
and SIGCHLD (an agent exited) bring the next pass forward. SIGTERM or SIGINT
stop the daemon; agents keep running and the next daemon re-adopts them.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from clawctl.daemon.instance import InstanceLock
from clawctl.daemon.reconciler import Reconciler

log = logging.getLogger("clawctl.daemon")

TICK_SECONDS = 2.0
"""Period of the level-triggered pass when nothing wakes the daemon sooner."""
REGISTRY_CHECK_EVERY = 5
SLOW_PASS_SECONDS = 5.0
GIL_SWITCH_SECONDS = 0.0005
_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGCHLD}
"""Every this many periodic passes also look for new revisions (in case a wake-up was missed)."""


class Loop:
    """Runs reconcile passes one at a time; a wake-up during a pass causes one more pass."""

    def __init__(self, reconciler: Reconciler, *, tick: float = TICK_SECONDS) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self.reconciler = reconciler
        self.tick = tick
        self.scheduler = BackgroundScheduler(timezone=timezone.utc)
        self._state = threading.Lock()
        self._running = False
        self._again = False
        self._passes = 0
        self.job = self.scheduler.add_job(
            self._job, "interval", seconds=tick, id="reconcile", max_instances=1, coalesce=True,
            next_run_time=datetime.now(timezone.utc), misfire_grace_time=None,
        )

    def start(self) -> None:
        self.scheduler.start()

    def shutdown(self) -> None:
        self.scheduler.shutdown(wait=True)

    def wake(self, *, registry: bool = False) -> None:
        """Bring the next pass forward (``registry``: and look for new revisions and commands)."""
        if registry:
            self.reconciler.check_registry = True
        with self._state:
            if self._running:
                self._again = True
                return
        self._schedule(time.time())

    def _schedule(self, at: float) -> None:
        try:
            self.job.modify(next_run_time=datetime.fromtimestamp(at, timezone.utc))
        except Exception:  # noqa: BLE001 - the job is gone only while shutting down
            log.debug("could not reschedule the reconcile job", exc_info=True)

    def _job(self) -> None:
        with self._state:
            self._running = True
        try:
            while True:
                with self._state:
                    self._again = False
                self._passes += 1
                if self._passes % REGISTRY_CHECK_EVERY == 0:
                    self.reconciler.check_registry = True
                started = time.monotonic()
                try:
                    result = self.reconciler.run_pass()
                except Exception:  # noqa: BLE001 - one bad pass must not stop supervision
                    log.exception("reconcile pass failed; retrying at the next tick")
                    result = None
                took = time.monotonic() - started
                if took > SLOW_PASS_SECONDS:
                    log.warning("a reconcile pass took %.1fs (wake-ups wait for it)", took)
                with self._state:
                    if not self._again:
                        self._running = False
                        break
            if result is not None and result.next_wake is not None and result.next_wake < time.time() + self.tick:
                self._schedule(max(result.next_wake, time.time()))
        finally:
            with self._state:
                self._running = False


LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 3


def _configure_logging(home: Path, *, detach: bool) -> None:
    """Foreground: log to stderr (journald, docker logs). Detached: a size-rotated
    ``logs/daemon.log`` (stderr still lands there for anything that bypasses logging)."""
    handler: logging.Handler
    if detach:
        from logging.handlers import RotatingFileHandler

        log_dir = home / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(log_dir / "daemon.log", maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _prepare_registry(home: Path) -> None:
    """Create or upgrade the registry in a short-lived child process, so that the migrations'
    imports (alembic, mako, pygments: ~15 MB) never stay in the daemon's memory. A failure is
    left for the daemon's own first use of the registry to report. Call before any thread starts:
    the child is a fork."""
    from clawctl.registry.engine import Registry

    if _sqlite_registry_is_current(home):
        return  # the usual case (and a cold start's, where `apply` created it): no child needed
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            registry = Registry(home=home)
            with registry.writing():
                pass  # writing() creates or upgrades the schema first; nothing else to write
            registry.close()
            code = 0
        except BaseException:  # noqa: BLE001 - reported by the daemon's own use of the registry
            pass
        finally:
            os._exit(code)
    os.waitpid(pid, 0)


def _sqlite_registry_is_current(home: Path) -> bool:
    """Whether the default SQLite registry of ``home`` exists at this clawctl's schema revision,
    read with the sqlite3 module alone (no engine, and nothing to upgrade). False for any other
    registry and on any error: the child process then checks properly. Call before this process
    opens the registry: closing a connection drops every POSIX lock the process holds on it."""
    import sqlite3

    from clawctl.registry.engine import REGISTRY_FILE
    from clawctl.registry.migrate import HEAD, VERSION_TABLE

    path = home / REGISTRY_FILE
    if os.environ.get("CLAWCTL_REGISTRY") or not path.is_file():
        return False
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        try:
            versions = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return versions == [(HEAD,)]


def stop_budget() -> float:
    """Seconds requests under way get when the daemon stops (``CLAWCTL_STOP_BUDGET``, default 10)."""
    from clawctl.daemon.control.server import DEFAULT_STOP_BUDGET, STOP_BUDGET_ENV

    try:
        return max(0.0, float(os.environ.get(STOP_BUDGET_ENV, DEFAULT_STOP_BUDGET)))
    except ValueError:
        log.warning("%s is not a number of seconds; using %g", STOP_BUDGET_ENV, DEFAULT_STOP_BUDGET)
        return DEFAULT_STOP_BUDGET


def run_daemon(home: Path, *, lock: InstanceLock, detach: bool = False) -> int:
    """Run the daemon for ``home`` (whose instance ``lock`` the caller holds) until SIGTERM or
    SIGINT; ``detach`` only chooses where logs go. Returns the exit code."""
    # Signals are taken synchronously by the main thread (sigwaitinfo). They must be blocked
    # before any thread starts, so every thread inherits the mask and none swallows them.
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    # The event loop and the database thread hand the GIL to each other thousands of times a
    # second; at the default 5 ms switch interval a thread that releases it (SQLite, sockets)
    # may wait 5 ms to get it back, which is what requests then wait too.
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    _configure_logging(home, detach=detach)
    # A wake-up that lands while a pass is starting is "skipped" by APScheduler; the pass that
    # is starting observes the same state, so that is expected, not worth a warning.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    from clawctl.daemon.control.directory import Directory
    from clawctl.daemon.control.server import ControlServer
    from clawctl.registry.engine import Registry
    from clawctl.runtime.launcher import ProcessLauncher

    _prepare_registry(home)
    # Everything imported so far lives as long as the daemon: keep the cyclic GC from walking
    # those ~50,000 objects (~15 ms) at every full collection, and from touching their pages.
    gc.freeze()
    registry = Registry(home=home)
    server: ControlServer | None = None
    launcher: ProcessLauncher | None = None
    try:
        launcher = ProcessLauncher()
        launcher.prepare()  # the fork server boots while the registry and control socket start
        directory = Directory()
        reconciler = Reconciler(registry, launcher, home=home, directory=directory)
        reconciler.restore()
        server = ControlServer(home, registry, directory, cgroup_mounts=lambda: launcher.host.mounts)
        server.start()
        loop = Loop(reconciler)
        directory.on_handover = loop.wake  # a drained agent's sessions are all moved: stop it now
        info = lock.publish()  # only now: `daemon start` and `apply` wait for this
        log.info("daemon %s started (pid %d) for %s", info.version, info.pid, home)
        loop.start()
        while True:
            received = signal.sigwaitinfo(_SIGNALS).si_signo
            if received == signal.SIGCHLD:
                loop.wake()
            elif received == signal.SIGUSR1:
                loop.wake(registry=True)
            else:
                log.info("received %s; stopping (agents keep running)", signal.Signals(received).name)
                break
        loop.shutdown()
        server.stop(budget=stop_budget())
        server = None
        log.info("daemon stopped")
        return 0
    finally:
        if server is not None:
            server.stop()
        if launcher is not None:
            launcher.close()  # the fork server; agents keep running
        registry.close()
        lock.release()

