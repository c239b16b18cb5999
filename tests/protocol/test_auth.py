"""Authentication: tokens at rest, the authorize() truth table with its attacks, and the Linux readers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path, PurePosixPath

import psutil
import pytest

from clawctl.errors import Unauthenticated
from clawctl.protocol.auth import (
    Claim,
    Denial,
    DenialReason,
    Identity,
    KnownAgent,
    PeerCredentials,
    ProcessStamp,
    authorize,
    new_token,
    parse_stat,
    peer_credentials,
    process_ancestry,
    token_digest,
    verify_token,
)
from clawctl.protocol.methods import Role

DAEMON_UID = 1000
INIT = ProcessStamp(1, 1000.0)
DAEMON = ProcessStamp(500, 1100.0)
SHELL = ProcessStamp(600, 1200.0)  # the operator's shell, outside every agent
WEB = ProcessStamp(700, 1300.0)  # agent web-0's leader, started by the daemon
WEB_CHILD = ProcessStamp(710, 1310.0)
WEB_GRANDCHILD = ProcessStamp(711, 1311.0)
API = ProcessStamp(800, 1400.0)  # agent api-0
CGROUP_ROOT = PurePosixPath("/sys/fs/cgroup/user.slice/clawctl-daemon/clawctl/prod")

WEB_TOKEN, API_TOKEN = new_token(), new_token()
AGENTS = {
    "web-0": KnownAgent("web-0", WEB, token_digest("web-0", WEB_TOKEN), (CGROUP_ROOT / "web-0",)),
    "api-0": KnownAgent("api-0", API, token_digest("api-0", API_TOKEN), (CGROUP_ROOT / "api-0",)),
}


def peer(pid: int, uid: int = DAEMON_UID) -> PeerCredentials:
    return PeerCredentials(pid, uid, uid)


def decide(claim: Claim, chain: list[ProcessStamp], *, uid: int = DAEMON_UID,
           cgroups: tuple[PurePosixPath, ...] = ()) -> Identity | Denial:
    return authorize(claim, peer(chain[0].pid if chain else 4242, uid), AGENTS, chain, daemon_uid=DAEMON_UID,
                     peer_cgroups=cgroups)


def denied(result: Identity | Denial, reason: DenialReason) -> bool:
    return isinstance(result, Denial) and result.reason is reason


# -------------------------------------------------------------------- tokens
def test_tokens_are_random_urlsafe_and_stored_only_as_digests() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    token = tokens.pop()
    assert len(token) >= 43 and set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    digest = token_digest("web-0", token)
    assert token not in digest and len(digest) == 64
    assert verify_token("web-0", token, digest)
    assert not verify_token("web-0", token + "x", digest)
    assert not verify_token("api-0", token, digest)  # the digest is bound to the agent
    assert not verify_token("web-0", token, "")


# ------------------------------------------------------------- truth table
def test_the_agent_itself_is_accepted() -> None:
    result = decide(Claim("web-0", WEB_TOKEN), [WEB, DAEMON, INIT])
    assert result == Identity(Role.AGENT, "web-0", peer(WEB.pid))


def test_a_descendant_of_the_agent_is_accepted() -> None:
    result = decide(Claim("web-0", WEB_TOKEN), [WEB_GRANDCHILD, WEB_CHILD, WEB, DAEMON, INIT])
    assert isinstance(result, Identity) and result.agent_id == "web-0"


def test_a_forged_agent_id_is_denied() -> None:
    assert denied(decide(Claim("admin", WEB_TOKEN), [WEB, DAEMON, INIT]), DenialReason.UNKNOWN_AGENT)


def test_claiming_another_agent_with_ones_own_token_is_denied() -> None:
    assert denied(decide(Claim("api-0", WEB_TOKEN), [WEB, DAEMON, INIT]), DenialReason.BAD_TOKEN)


def test_another_agents_stolen_token_used_from_inside_an_agent_is_denied() -> None:
    assert denied(decide(Claim("api-0", API_TOKEN), [WEB_CHILD, WEB, DAEMON, INIT]), DenialReason.NOT_IN_AGENT_TREE)


def test_a_stolen_token_from_an_unrelated_process_is_denied() -> None:
    assert denied(decide(Claim("web-0", WEB_TOKEN), [ProcessStamp(999, 1500.0), SHELL, INIT]),
                  DenialReason.NOT_IN_AGENT_TREE)


def test_pid_reuse_does_not_make_a_process_the_agent() -> None:
    impostor = ProcessStamp(WEB.pid, WEB.create_time + 3600)  # the agent died, its pid was reused
    assert denied(decide(Claim("web-0", WEB_TOKEN), [impostor, SHELL, INIT]), DenialReason.NOT_IN_AGENT_TREE)
    reused_parent = ProcessStamp(WEB.pid, WEB.create_time + 0.02)
    assert denied(decide(Claim("web-0", WEB_TOKEN), [ProcessStamp(990, 1500.0), reused_parent, INIT]),
                  DenialReason.NOT_IN_AGENT_TREE)


def test_create_time_is_matched_within_a_clock_tick() -> None:
    stored_then_read = ProcessStamp(WEB.pid, WEB.create_time + 0.004)
    assert isinstance(decide(Claim("web-0", WEB_TOKEN), [stored_then_read, DAEMON, INIT]), Identity)


def test_a_token_without_an_agent_id_or_the_reverse_is_denied() -> None:
    assert denied(decide(Claim(None, WEB_TOKEN), [SHELL, INIT]), DenialReason.MALFORMED_CLAIM)
    assert denied(decide(Claim("web-0", None), [WEB, DAEMON, INIT]), DenialReason.MALFORMED_CLAIM)


def test_the_operator_from_a_shell_is_accepted() -> None:
    assert decide(Claim(), [SHELL, INIT]) == Identity(Role.OPERATOR, None, peer(SHELL.pid))


def test_root_may_act_as_the_operator() -> None:
    result = decide(Claim(), [SHELL, INIT], uid=0)
    assert isinstance(result, Identity) and result.role is Role.OPERATOR


def test_another_user_cannot_act_as_the_operator() -> None:
    assert denied(decide(Claim(), [SHELL, INIT], uid=1001), DenialReason.WRONG_USER)


@pytest.mark.parametrize("chain", [
    [WEB, DAEMON, INIT],
    [WEB_CHILD, WEB, DAEMON, INIT],
    [WEB_GRANDCHILD, WEB_CHILD, WEB, DAEMON, INIT],
    [ProcessStamp(801, 1401.0), API, DAEMON, INIT],
])
def test_a_process_inside_an_agent_cannot_act_as_the_operator(chain: list[ProcessStamp]) -> None:
    assert denied(decide(Claim(), chain), DenialReason.INSIDE_AGENT)
    assert denied(decide(Claim(), chain, uid=0), DenialReason.INSIDE_AGENT)


def test_an_agent_with_its_own_token_still_cannot_act_as_the_operator() -> None:
    result = decide(Claim("web-0", WEB_TOKEN), [WEB_CHILD, WEB, DAEMON, INIT])
    assert isinstance(result, Identity) and result.role is Role.AGENT


def test_a_process_that_escaped_the_tree_but_not_the_cgroup_cannot_act_as_the_operator() -> None:
    orphan = [ProcessStamp(720, 1320.0), INIT]  # double-forked: re-parented to init
    assert denied(decide(Claim(), orphan, cgroups=(CGROUP_ROOT / "web-0",)), DenialReason.INSIDE_AGENT)
    assert denied(decide(Claim(), orphan, cgroups=(CGROUP_ROOT / "web-0" / "nested",)), DenialReason.INSIDE_AGENT)
    assert isinstance(decide(Claim(), orphan, cgroups=(CGROUP_ROOT / "web-00",)), Identity)


def test_a_peer_without_ancestry_is_denied() -> None:
    assert denied(decide(Claim(), []), DenialReason.PEER_UNKNOWN)  # it exited before we looked
    assert denied(authorize(Claim(), peer(0), AGENTS, [INIT], daemon_uid=DAEMON_UID),
                  DenialReason.PEER_UNKNOWN)  # another pid namespace
    assert denied(authorize(Claim(), peer(SHELL.pid), AGENTS, [WEB, DAEMON, INIT], daemon_uid=DAEMON_UID),
                  DenialReason.PEER_UNKNOWN)  # an ancestry that is not the peer's


def test_denials_tell_the_peer_little_and_the_audit_log_much() -> None:
    forged = decide(Claim("admin", WEB_TOKEN), [WEB, DAEMON, INIT])
    stolen = decide(Claim("web-0", WEB_TOKEN), [SHELL, INIT])
    wrong = decide(Claim("web-0", API_TOKEN), [WEB, DAEMON, INIT])
    assert isinstance(forged, Denial) and isinstance(stolen, Denial) and isinstance(wrong, Denial)
    messages = {d.to_error().message for d in (forged, stolen, wrong)}
    assert messages == {"agent authentication failed"}
    assert "admin" in forged.detail and str(SHELL.pid) in stolen.detail
    assert WEB_TOKEN not in stolen.detail + wrong.detail
    inside = decide(Claim(), [WEB, DAEMON, INIT])
    assert isinstance(inside, Denial) and isinstance(inside.to_error(), Unauthenticated)
    assert "inside an agent" in inside.to_error().message


# ----------------------------------------------------------- Linux readers
def test_parse_stat_counts_fields_after_the_last_parenthesis() -> None:
    text = f"42 (a) b) c) S 7 {' '.join(str(n) for n in range(5, 53))}"
    assert parse_stat(text) == (7, 22)
    with pytest.raises(ValueError):
        parse_stat("42 (truncated) S 1 2")
    with pytest.raises(ValueError):
        parse_stat("garbage")


def test_ancestry_matches_psutil_and_reaches_init() -> None:
    chain = process_ancestry(os.getpid())
    assert chain[0].pid == os.getpid()
    assert chain[1].pid == os.getppid()
    for stamp in chain:
        try:
            assert abs(psutil.Process(stamp.pid).create_time() - stamp.create_time) <= 0.01
        except psutil.NoSuchProcess:
            pass
    assert len({s.pid for s in chain}) == len(chain)


def test_ancestry_of_a_missing_process_is_empty(tmp_path: Path) -> None:
    assert process_ancestry(2**22 + 12345) == []
    assert process_ancestry(os.getpid(), proc=tmp_path) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_PEERCRED and /proc are Linux")
def test_peer_credentials_and_ancestry_of_a_real_child_process() -> None:
    """A child started by the test connects over a socketpair; the kernel names it, and its
    ancestry leads through this test process - the authorize() inputs, for real."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    child_code = ("import os, socket, sys\n"
                  "s = socket.socket(fileno=int(sys.argv[1]))\n"
                  "s.sendall(b'ready'); s.recv(1)\n")
    with ours, theirs:
        child = subprocess.Popen([sys.executable, "-c", child_code, str(theirs.fileno())],
                                 pass_fds=(theirs.fileno(),))
        try:
            theirs.close()
            assert ours.recv(5) == b"ready"
            # A socketpair's credentials are those of its creator; the child's own connect() is the
            # case that matters, so check both: this end names us, and a fresh connection names the child.
            creds = peer_credentials(ours)
            assert (creds.pid, creds.uid, creds.gid) == (os.getpid(), os.getuid(), os.getgid())
            chain = process_ancestry(child.pid)
            assert [s.pid for s in chain[:2]] == [child.pid, os.getpid()]
            me = process_ancestry(os.getpid())[0]
            agent = KnownAgent("me", me, token_digest("me", "tok"))
            result = authorize(Claim("me", "tok"), PeerCredentials(child.pid, os.getuid(), os.getgid()),
                               {"me": agent}, chain, daemon_uid=os.getuid())
            assert isinstance(result, Identity) and result.agent_id == "me"
            as_operator = authorize(Claim(), PeerCredentials(child.pid, os.getuid(), os.getgid()),
                                    {"me": agent}, chain, daemon_uid=os.getuid())
            assert denied(as_operator, DenialReason.INSIDE_AGENT)
            ours.sendall(b"x")
        finally:
            assert child.wait(timeout=30) == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_PEERCRED is Linux")
def test_peer_credentials_name_the_connecting_child(tmp_path: Path) -> None:
    path = str(tmp_path / "control.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with server:
        server.bind(path)
        server.listen(1)
        child = subprocess.Popen([sys.executable, "-c", (
            "import socket, sys\n"
            "c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); c.connect(sys.argv[1])\n"
            "c.recv(1)\n"), path])
        try:
            server.settimeout(30)
            conn, _ = server.accept()
            with conn:
                creds = peer_credentials(conn)
                assert creds == PeerCredentials(child.pid, os.getuid(), os.getgid())
                chain = process_ancestry(creds.pid)
                assert [s.pid for s in chain[:2]] == [child.pid, os.getpid()]
                conn.sendall(b"x")
        finally:
            assert child.wait(timeout=30) == 0


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_UNIX])
def test_a_socket_without_a_peer_has_no_credentials(family: socket.AddressFamily) -> None:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        with pytest.raises(Unauthenticated, match="no peer credentials"):
            peer_credentials(sock)
    with pytest.raises(Unauthenticated, match="cannot read"):
        peer_credentials(sock)  # closed
