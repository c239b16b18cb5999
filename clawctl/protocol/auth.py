"""Who is on the other end of a control-socket connection.

An agent proves itself twice: by its token (``CLAWCTL_TOKEN``, checked against a
stored digest) and by where it runs (``SO_PEERCRED`` gives the peer's pid, whose
ancestry must contain the agent's process, matched by pid *and* start time so a
reused pid does not count). The operator has no token: it is accepted when it runs
as the daemon's user (or root) and is inside no agent's process tree or cgroup, so
a process inside an agent can never act as the operator, token or not.

``authorize`` is pure; ``peer_credentials`` and ``process_ancestry`` are the thin
Linux readers that feed it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
import socket
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePosixPath

from clawctl.errors import Unauthenticated
from clawctl.protocol.methods import Role

TOKEN_BYTES = 32
"""Random bytes in a token (``token_urlsafe`` makes 43 characters of them)."""

CREATE_TIME_TOLERANCE = 0.01
"""Start times are clock ticks (10 ms); equal within this are the same process.
Same value as ``clawctl.runtime.identity`` (not imported: that module loads psutil)."""

_DIGEST_CONTEXT = b"clawctl agent token v1\0"
_PEERCRED = struct.Struct("3i")


# -------------------------------------------------------------------- tokens
def new_token() -> str:
    """A fresh secret for one agent process (URL-safe text, 256 bits)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(agent_id: str, token: str) -> str:
    """What the daemon stores instead of the token: HMAC-SHA256 keyed by the token over the
    agent id, hex. Not reversible; bound to the agent (a digest copied to another agent's
    row does not verify). No salt is needed: tokens are random, not chosen by people."""
    return hmac.new(token.encode("utf-8", "surrogatepass"), _DIGEST_CONTEXT + agent_id.encode("utf-8", "surrogatepass"),
                    hashlib.sha256).hexdigest()


def verify_token(agent_id: str, token: str, digest: str) -> bool:
    """Whether ``token`` is the one ``digest`` was made from for ``agent_id`` (constant-time compare)."""
    return hmac.compare_digest(token_digest(agent_id, token).encode(), digest.encode("utf-8", "surrogatepass"))


# ---------------------------------------------------------------- the model
@dataclass(frozen=True)
class PeerCredentials:
    """The kernel's word on the connecting process (SO_PEERCRED at connect time)."""

    pid: int
    uid: int
    gid: int


@dataclass(frozen=True)
class ProcessStamp:
    """A process identified by pid and start time (psutil's create_time, seconds since the epoch)."""

    pid: int
    create_time: float

    def same_as(self, other: ProcessStamp) -> bool:
        return self.pid == other.pid and abs(self.create_time - other.create_time) <= CREATE_TIME_TOLERANCE


@dataclass(frozen=True)
class KnownAgent:
    """A running agent as the daemon knows it: its leader process, token digest and cgroups
    (filesystem directories, empty where none could be made)."""

    agent_id: str
    process: ProcessStamp
    token_digest: str
    cgroups: tuple[PurePosixPath, ...] = ()


@dataclass(frozen=True)
class Claim:
    """What ``hello`` claims: an agent id and token, or neither (the operator)."""

    agent_id: str | None = None
    token: str | None = None


@dataclass(frozen=True)
class Identity:
    """An accepted connection: operator, or the named agent."""

    role: Role
    agent_id: str | None
    peer: PeerCredentials


class DenialReason(str, Enum):
    """Why a connection was refused; the value goes to the audit log."""

    PEER_UNKNOWN = "peer-unknown"  # no usable pid (another pid namespace) or the process is gone
    MALFORMED_CLAIM = "malformed-claim"  # a token without an agent id, or the reverse
    UNKNOWN_AGENT = "unknown-agent"  # no running agent by that id (forged or stale id)
    BAD_TOKEN = "bad-token"  # the token does not match the agent's
    NOT_IN_AGENT_TREE = "not-in-agent-tree"  # right token, but the peer is not the agent or its descendant
    WRONG_USER = "wrong-user"  # an operator connection from another uid
    INSIDE_AGENT = "inside-agent"  # an operator connection from inside an agent


_AGENT_FAILURES = frozenset({DenialReason.UNKNOWN_AGENT, DenialReason.BAD_TOKEN, DenialReason.NOT_IN_AGENT_TREE})


@dataclass(frozen=True)
class Denial:
    """A refused connection: ``reason`` and ``detail`` are for the audit log, not the peer."""

    reason: DenialReason
    detail: str

    def to_error(self) -> Unauthenticated:
        """The error the peer is told. Agent failures all read the same, so a caller cannot
        learn which agent ids exist or whether its token was right."""
        if self.reason in _AGENT_FAILURES:
            return Unauthenticated("agent authentication failed",
                                   hint="connect from the agent's own process tree with its CLAWCTL_TOKEN")
        if self.reason is DenialReason.INSIDE_AGENT:
            return Unauthenticated("a process inside an agent cannot act as the operator")
        if self.reason is DenialReason.WRONG_USER:
            return Unauthenticated("only the daemon's user (or root) may act as the operator")
        return Unauthenticated(f"connection refused ({self.reason.value})")


# ---------------------------------------------------------------- deciding
def _inside(path: PurePosixPath, root: PurePosixPath) -> bool:
    return path == root or path.is_relative_to(root)


def authorize(claim: Claim, peer: PeerCredentials, known_agents: Mapping[str, KnownAgent],
              ancestry: Sequence[ProcessStamp], *, daemon_uid: int,
              peer_cgroups: Sequence[PurePosixPath] = ()) -> Identity | Denial:
    """Accept or refuse one connection.

    ``known_agents`` must hold every running agent of the daemon (by agent id);
    ``ancestry`` is the peer's chain from itself up (``process_ancestry(peer.pid)``);
    ``peer_cgroups`` its cgroup directories. An agent claim needs the right token and
    the agent's process in the ancestry. No claim means the operator: the daemon's uid
    or root, and in no agent's ancestry or cgroup.
    """
    if peer.pid <= 0 or not ancestry or ancestry[0].pid != peer.pid:
        return Denial(DenialReason.PEER_UNKNOWN, f"peer pid {peer.pid} has no readable ancestry")
    if claim.agent_id is None and claim.token is None:
        return _authorize_operator(peer, known_agents, ancestry, daemon_uid=daemon_uid, peer_cgroups=peer_cgroups)
    if claim.agent_id is None or claim.token is None:
        return Denial(DenialReason.MALFORMED_CLAIM, f"pid {peer.pid} sent an agent id or a token, not both")
    agent = known_agents.get(claim.agent_id)
    if agent is None:
        verify_token(claim.agent_id, claim.token, "0" * 64)  # same work whether the agent exists or not
        return Denial(DenialReason.UNKNOWN_AGENT, f"pid {peer.pid} claimed unknown agent {claim.agent_id!r}")
    if not verify_token(claim.agent_id, claim.token, agent.token_digest):
        return Denial(DenialReason.BAD_TOKEN, f"pid {peer.pid} claimed agent {claim.agent_id!r} with a wrong token")
    if not any(stamp.same_as(agent.process) for stamp in ancestry):
        return Denial(DenialReason.NOT_IN_AGENT_TREE,
                      f"pid {peer.pid} has agent {claim.agent_id!r}'s token but is not its process "
                      f"(pid {agent.process.pid}) or a descendant")
    return Identity(Role.AGENT, claim.agent_id, peer)


def _authorize_operator(peer: PeerCredentials, known_agents: Mapping[str, KnownAgent],
                        ancestry: Sequence[ProcessStamp], *, daemon_uid: int,
                        peer_cgroups: Sequence[PurePosixPath]) -> Identity | Denial:
    if peer.uid not in (daemon_uid, 0):
        return Denial(DenialReason.WRONG_USER, f"pid {peer.pid} runs as uid {peer.uid}, the daemon as {daemon_uid}")
    for agent in known_agents.values():
        if any(stamp.same_as(agent.process) for stamp in ancestry):
            return Denial(DenialReason.INSIDE_AGENT,
                          f"pid {peer.pid} is in agent {agent.agent_id!r}'s process tree")
        if any(_inside(path, root) for path in peer_cgroups for root in agent.cgroups):
            return Denial(DenialReason.INSIDE_AGENT, f"pid {peer.pid} is in agent {agent.agent_id!r}'s cgroup")
    return Identity(Role.OPERATOR, None, peer)


# ------------------------------------------------------------ reading Linux
def peer_credentials(sock: socket.socket) -> PeerCredentials:
    """The pid, uid and gid of the process that connected ``sock`` (a Unix socket), via
    SO_PEERCRED. Raises ``Unauthenticated`` where the kernel cannot say. ``pid`` is 0 when
    the peer is in another pid namespace (``authorize`` refuses it)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        raise Unauthenticated("peer credentials are not available on this platform (SO_PEERCRED)")
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, option, _PEERCRED.size)
    except OSError as exc:
        raise Unauthenticated(f"cannot read the peer's credentials: {exc.strerror or exc}") from exc
    pid, uid, gid = _PEERCRED.unpack(raw)
    if uid < 0 or gid < 0:  # the kernel's "no credentials": not a connected Unix socket
        raise Unauthenticated("the socket carries no peer credentials (not a connected Unix socket)")
    return PeerCredentials(pid, uid, gid)


def parse_stat(text: str) -> tuple[int, int]:
    """``(ppid, starttime in clock ticks since boot)`` from a /proc/PID/stat text.

    The command name (field 2) may hold spaces and parentheses, so fields are
    counted after its last ``)``. Raises ValueError on a malformed text.
    """
    _, sep, rest = text.rpartition(")")
    fields = rest.split()
    if not sep or len(fields) < 20:
        raise ValueError("malformed /proc/PID/stat")
    return int(fields[1]), int(fields[19])


@functools.lru_cache(maxsize=4)
def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def _boot_time(proc: Path) -> float:
    for line in (proc / "stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise ValueError(f"no btime in {proc / 'stat'}")


def process_ancestry(pid: int, *, proc: Path = Path("/proc"), max_depth: int = 1024) -> list[ProcessStamp]:
    """``pid`` and its ancestors up to (not past) pid 1, each with psutil's create_time.

    Empty when ``pid`` is gone or /proc is unreadable; stops early where an ancestor
    vanished. A re-parented process (its parent exited) shows its new parent, so
    ancestry is evidence of membership only while the tree is intact.
    """
    try:
        boot = _boot_time(proc)
    except (OSError, ValueError):
        return []
    ticks = _clock_ticks()
    chain: list[ProcessStamp] = []
    seen: set[int] = set()
    current = pid
    while current > 0 and current not in seen and len(chain) < max_depth:
        seen.add(current)
        try:
            ppid, start = parse_stat((proc / str(current) / "stat").read_text())
        except (OSError, ValueError):
            break
        chain.append(ProcessStamp(current, start / ticks + boot))
        current = ppid
    return chain
