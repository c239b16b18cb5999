"""``python -m clawctl.daemon``: its option parsing, and what it keeps out of the daemon's memory
(OpenSSL with a SQLite registry; docstrings through -OO) without changing what it computes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clawctl.daemon import __main__ as daemon_main

PROBE = """
import json, sys
from clawctl.daemon.__main__ import keep_openssl_out
kept_out = keep_openssl_out({registry!r})
import asyncio.base_events, hashlib
from clawctl.protocol.auth import token_digest
print(json.dumps({{"kept_out": kept_out, "asyncio_ssl": asyncio.base_events.ssl is not None,
                  "openssl_hashes": sys.modules.get("_hashlib") is not None,
                  "digest": token_digest("fleet/agent-0", "secret-token"),
                  "blake2b": hashlib.blake2b(b"x", digest_size=8).hexdigest()}}))
"""


def probe(registry: dict[str, str]) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", PROBE.format(registry=registry)], capture_output=True, text=True,
                          timeout=60, check=True)
    return json.loads(done.stdout)


def test_openssl_is_kept_out_with_sqlite_and_the_digests_do_not_change() -> None:
    from clawctl.protocol.auth import token_digest

    plain = probe({})
    assert plain["kept_out"] is True
    assert plain["asyncio_ssl"] is False and plain["openssl_hashes"] is False
    assert plain["digest"] == token_digest("fleet/agent-0", "secret-token")  # this process has OpenSSL's
    assert probe({"CLAWCTL_REGISTRY": "sqlite:////tmp/r.db"})["kept_out"] is True


def test_a_registry_elsewhere_may_need_tls_so_openssl_stays() -> None:
    remote = probe({"CLAWCTL_REGISTRY": "postgresql://db.example/clawctl"})
    assert remote["kept_out"] is False
    assert remote["asyncio_ssl"] is True


def test_optimized_argv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.util

    cached = tmp_path / "__init__.cpython-311.opt-2.pyc"
    monkeypatch.setattr(importlib.util, "cache_from_source", lambda _path, optimization=None: str(cached))
    monkeypatch.setattr(sys, "orig_argv", [sys.executable, "-m", "clawctl.daemon", "--detach"])
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    assert daemon_main.optimized_argv({}) is None  # not cached and not to be written: compiling costs ~1 s
    cached.write_bytes(b"")
    assert daemon_main.optimized_argv({}) == [sys.executable, "-OO", "-m", "clawctl.daemon", "--detach"]
    assert daemon_main.optimized_argv({"CLAWCTL_DAEMON_OPTIMIZE": "0"}) is None
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    cached.unlink()
    assert daemon_main.optimized_argv({}) is not None  # tmp_path is writable: cached at the first start


def test_options() -> None:
    assert daemon_main.main(["--bogus"]) == 2
    assert daemon_main.main(["--help"]) == 0


def test_the_daemon_runs_without_libssl_or_libcrypto_and_creates_the_registry(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "CLAWCTL_REGISTRY"}
    env["CLAWCTL_HOME"] = str(home)
    with open(tmp_path / "daemon.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "clawctl.daemon"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (home / "daemon.json").exists():
            assert proc.poll() is None, (tmp_path / "daemon.log").read_text()
            assert time.monotonic() < deadline, "the daemon did not start"
            time.sleep(0.05)
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "libssl" not in maps and "libcrypto" not in maps
        assert (home / "registry.db").exists()  # created by its short-lived child
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_a_current_sqlite_registry_needs_no_preparing_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clawctl.daemon.service import _sqlite_registry_is_current
    from clawctl.registry.engine import Registry

    monkeypatch.delenv("CLAWCTL_REGISTRY", raising=False)
    assert not _sqlite_registry_is_current(tmp_path)  # nothing there yet: the child creates it
    with Registry(home=tmp_path).writing():
        pass
    assert _sqlite_registry_is_current(tmp_path)
    monkeypatch.setenv("CLAWCTL_REGISTRY", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    assert not _sqlite_registry_is_current(tmp_path)  # another registry: the child checks that one
