"""Errors every layer raises, and the exit codes the CLI maps them to.

    ClawctlError            base: a sentence for the user, a hint, an exit code
    ├── UsageError          bad arguments or an unreadable path (exit 2)
    ├── ConfigError         the config set is invalid (exit 1); carries diagnostics
    ├── RegistryError       the registry cannot be used as asked (exit 1)
    ├── DaemonUnavailable   no daemon answers for this CLAWCTL_HOME (exit 1)
    ├── PolicyDenied        an action the CommunicationPolicy does not allow (exit 1)
    ├── NotFound            a named fleet, pool, agent, revision or session is unknown (exit 1)
    ├── Conflict            the request conflicts with the current state (exit 1)
    ├── RuntimeFailure      an agent process could not be spawned, signalled or measured (exit 1)
    ├── Unauthenticated     the control socket did not accept this connection's identity (exit 1)
    ├── ProtocolError       a control-socket message is malformed or its params invalid (exit 1)
    │   └── FrameTooLarge   a control-socket frame exceeds the size limit (exit 1)
    ├── RateLimited         too many requests on the control socket; retry later (exit 1)
    └── InternalError       the daemon failed unexpectedly while serving a request (exit 3)

Library exceptions are translated into these once, at the boundary of the
layer that calls the library, always with ``raise ... from exc``.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of the CLI (DESIGN.md §4)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    INTERNAL = 3
    INTERRUPTED = 130


class ClawctlError(Exception):
    """A failure the user can act on: one sentence, an optional hint, an exit code."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __reduce__(self) -> tuple[object, ...]:
        # Keep the hint (and subclass fields) when raised in a worker process.
        return (_restore, (type(self), self.message, dict(self.__dict__)))


def _restore(cls: type[ClawctlError], message: str, state: dict[str, object]) -> ClawctlError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class UsageError(ClawctlError):
    """Bad command-line usage or an input path that cannot be read."""

    exit_code = ExitCode.USAGE


class ConfigError(ClawctlError):
    """The config set failed validation; ``diagnostics`` holds every finding."""

    def __init__(self, message: str, *, diagnostics: tuple[object, ...] = (), hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.diagnostics = diagnostics


class RegistryError(ClawctlError):
    """The registry is unreadable, locked, foreign or from a newer clawctl."""


class DaemonUnavailable(ClawctlError):
    """No daemon is running (or answering) for this CLAWCTL_HOME."""


class PolicyDenied(ClawctlError):
    """The CommunicationPolicy does not allow the requested action."""


class NotFound(ClawctlError):
    """A named object does not exist."""


class Conflict(ClawctlError):
    """The request conflicts with the current state (e.g. removing pools without --yes)."""


class RuntimeFailure(ClawctlError):
    """The runtime could not spawn, signal, measure or clean up an agent process."""


class Unauthenticated(ClawctlError):
    """The control socket refused the connection's claimed identity (token or peer credentials)."""


class ProtocolError(ClawctlError):
    """A control-socket message is malformed, names an unknown method, or has invalid params."""


class FrameTooLarge(ProtocolError):
    """A control-socket frame is larger than the protocol allows."""


class RateLimited(ClawctlError):
    """The daemon refuses more requests from this connection for now."""


class InternalError(ClawctlError):
    """The daemon failed unexpectedly while serving a request; details are in its log."""

    exit_code = ExitCode.INTERNAL
