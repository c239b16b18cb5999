"""The envelopes carried in frames, and errors on the wire.

    request   {"id": int, "method": str, "params": {...}}         client -> daemon
    response  {"id": int, "result": <json>}                       daemon -> client
              {"id": int | null, "error": {"code", "message", "hint"}}
    event     {"event": str, "data": {...}}                       daemon -> client, unsolicited

Parsing is strict (unknown keys, wrong types and out-of-range ids are refused with
``ProtocolError``). Error codes map one-to-one onto the ``clawctl.errors`` classes,
so an error raised in the daemon is re-raised in the CLI with the same class and
exit code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

from clawctl.errors import (
    ClawctlError,
    Conflict,
    ConfigError,
    DaemonUnavailable,
    FrameTooLarge,
    InternalError,
    NotFound,
    PolicyDenied,
    ProtocolError,
    RateLimited,
    RegistryError,
    RuntimeFailure,
    Unauthenticated,
    UsageError,
)
from clawctl.protocol.framing import FrameError, FrameFault, JsonObject

PROTOCOL_VERSION = 1
"""The version a client names in ``hello``; the daemon refuses versions it does not speak."""

MAX_ID = 2**53 - 1
"""Request ids are integers in 0..MAX_ID (exact in every JSON implementation)."""

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*")
"""Method and event names: dotted lowercase words, e.g. ``sessions.open``."""

MAX_NAME = 64


class ErrorCode(str, Enum):
    """The ``code`` of a wire error; each names one ``clawctl.errors`` class."""

    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not-found"
    CONFLICT = "conflict"
    INVALID_REQUEST = "invalid-request"
    TOO_LARGE = "too-large"
    RATE_LIMITED = "rate-limited"
    INTERNAL = "internal"
    USAGE = "usage"
    CONFIG = "config"
    REGISTRY = "registry"
    UNAVAILABLE = "unavailable"
    RUNTIME = "runtime"
    FAILED = "failed"  # a plain ClawctlError; also what an unknown code decodes to


ERROR_CLASSES: Mapping[ErrorCode, type[ClawctlError]] = MappingProxyType({
    ErrorCode.UNAUTHENTICATED: Unauthenticated,
    ErrorCode.FORBIDDEN: PolicyDenied,
    ErrorCode.NOT_FOUND: NotFound,
    ErrorCode.CONFLICT: Conflict,
    ErrorCode.INVALID_REQUEST: ProtocolError,
    ErrorCode.TOO_LARGE: FrameTooLarge,
    ErrorCode.RATE_LIMITED: RateLimited,
    ErrorCode.INTERNAL: InternalError,
    ErrorCode.USAGE: UsageError,
    ErrorCode.CONFIG: ConfigError,
    ErrorCode.REGISTRY: RegistryError,
    ErrorCode.UNAVAILABLE: DaemonUnavailable,
    ErrorCode.RUNTIME: RuntimeFailure,
    ErrorCode.FAILED: ClawctlError,
})
"""Wire code -> error class; the inverse is found along the raised class's MRO."""

_CODES: Mapping[type[ClawctlError], ErrorCode] = MappingProxyType({cls: code for code, cls in ERROR_CLASSES.items()})

INTERNAL_MESSAGE = "the daemon failed while serving the request"
INTERNAL_HINT = "see the daemon log for the traceback"


@dataclass(frozen=True)
class WireError:
    """``{code, message, hint}``. ``code`` is a plain str only when a newer peer sent one we do not know."""

    code: ErrorCode | str
    message: str
    hint: str | None = None

    def to_json(self) -> JsonObject:
        code = self.code.value if isinstance(self.code, ErrorCode) else self.code
        return {"code": code, "message": self.message, "hint": self.hint}


@dataclass(frozen=True)
class Request:
    """A call of ``method`` with ``params``; the response carries the same ``id``."""

    id: int
    method: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> JsonObject:
        return {"id": self.id, "method": self.method, "params": dict(self.params)}


@dataclass(frozen=True)
class Response:
    """The successful answer to request ``id``."""

    id: int
    result: Any = None

    def to_json(self) -> JsonObject:
        return {"id": self.id, "result": self.result}


@dataclass(frozen=True)
class ErrorResponse:
    """The failed answer to request ``id`` (None when the request's id could not be read)."""

    id: int | None
    error: WireError

    def to_json(self) -> JsonObject:
        return {"id": self.id, "error": self.error.to_json()}


@dataclass(frozen=True)
class Event:
    """A message the daemon pushes without a request (session opened, message, closing...)."""

    event: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> JsonObject:
        return {"event": self.event, "data": dict(self.data)}


ServerMessage = Response | ErrorResponse | Event


# ------------------------------------------------------------------ validation
def _invalid(text: str) -> ProtocolError:
    return ProtocolError(text, hint="see docs/protocol.md for the message format")


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID


def _check_keys(obj: Mapping[str, Any], kind: str, required: set[str], optional: frozenset[str] | set[str] = frozenset()) -> None:
    missing = sorted(required - obj.keys())
    if missing:
        raise _invalid(f"{kind} lacks {', '.join(repr(k) for k in missing)}")
    unknown = sorted(obj.keys() - required - optional)
    if unknown:
        raise _invalid(f"{kind} has unknown field {', '.join(repr(k) for k in unknown)}")


def _check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_NAME or not NAME_PATTERN.fullmatch(value):
        raise _invalid(f"{what} must be a dotted lowercase name of at most {MAX_NAME} characters, got {value!r:.80}")
    return value


def _check_object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(f"{what} must be an object, got {type(value).__name__}")
    return value


def _check_id(value: object) -> int:
    if not _is_id(value):
        raise _invalid(f"id must be an integer in 0..{MAX_ID}, got {value!r:.40}")
    assert isinstance(value, int)
    return value


def request_id_of(obj: object) -> int | None:
    """The request id in ``obj`` if it has a valid one (to address an error response), else None."""
    if isinstance(obj, dict):
        value = obj.get("id")
        if _is_id(value):
            assert isinstance(value, int)
            return value
    return None


def parse_request(obj: JsonObject) -> Request:
    """A ``Request`` from a decoded frame; ``params`` may be omitted (means ``{}``). Raises ``ProtocolError``."""
    _check_object(obj, "a request")
    _check_keys(obj, "a request", {"id", "method"}, {"params"})
    return Request(_check_id(obj["id"]), _check_name(obj["method"], "method"),
                   _check_object(obj.get("params", {}), "params"))


def parse_wire_error(obj: object) -> WireError:
    """A ``WireError`` from its JSON form; an unknown code is kept as a str. Raises ``ProtocolError``."""
    error = _check_object(obj, "error")
    _check_keys(error, "an error", {"code", "message"}, {"hint"})
    code, message, hint = error["code"], error["message"], error.get("hint")
    if not isinstance(code, str) or not code:
        raise _invalid(f"error code must be a non-empty string, got {code!r:.40}")
    if not isinstance(message, str):
        raise _invalid("error message must be a string")
    if hint is not None and not isinstance(hint, str):
        raise _invalid("error hint must be a string or null")
    known = code in ErrorCode._value2member_map_
    return WireError(ErrorCode(code) if known else code, message, hint)


def parse_server_message(obj: JsonObject) -> ServerMessage:
    """A response or event from a decoded frame (client side). Raises ``ProtocolError``."""
    _check_object(obj, "a message")
    if "event" in obj:
        _check_keys(obj, "an event", {"event"}, {"data"})
        return Event(_check_name(obj["event"], "event"), _check_object(obj.get("data", {}), "event data"))
    if "error" in obj:
        _check_keys(obj, "an error response", {"id", "error"})
        ident = obj["id"]
        return ErrorResponse(None if ident is None else _check_id(ident), parse_wire_error(obj["error"]))
    _check_keys(obj, "a response", {"id", "result"})
    return Response(_check_id(obj["id"]), obj["result"])


# ---------------------------------------------------------------- error codes
def code_of(error_class: type[ClawctlError]) -> ErrorCode:
    """The wire code of ``error_class``: its own, or its nearest ancestor's."""
    for cls in error_class.__mro__:
        code = _CODES.get(cls)
        if code is not None:
            return code
    return ErrorCode.FAILED


def to_wire(exc: BaseException) -> WireError:
    """The wire form of ``exc``. Only ``ClawctlError``s keep their message; anything else
    becomes ``internal`` with a fixed sentence, so no traceback detail leaks to a client."""
    if isinstance(exc, ClawctlError):
        return WireError(code_of(type(exc)), exc.message, exc.hint)
    return WireError(ErrorCode.INTERNAL, INTERNAL_MESSAGE, INTERNAL_HINT)


def from_wire(error: WireError) -> ClawctlError:
    """The ``ClawctlError`` to raise for ``error`` (same class, message and hint as in the
    daemon). An unknown code gives a plain ``ClawctlError`` (exit 1). ``ConfigError``'s
    diagnostics do not cross the wire; its message does."""
    cls = ERROR_CLASSES.get(error.code) if isinstance(error.code, ErrorCode) else None
    return (cls or ClawctlError)(error.message, hint=error.hint)


def error_for_frame(exc: FrameError) -> ProtocolError:
    """The ``ProtocolError`` to answer a framing fault with (``FrameTooLarge`` for an oversized frame)."""
    if exc.fault is FrameFault.TOO_LARGE:
        return FrameTooLarge(f"frame too large ({exc.detail})", hint="split the payload; see docs/protocol.md")
    return _invalid(f"malformed frame ({exc})")


def error_response(request_id: int | None, exc: BaseException) -> ErrorResponse:
    """The response that reports ``exc`` for request ``request_id``."""
    return ErrorResponse(request_id, to_wire(exc))
