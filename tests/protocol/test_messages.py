"""Envelopes are parsed strictly; errors cross the wire and come back as the same class and exit code."""

from __future__ import annotations

from typing import Any

import pytest

from clawctl import errors
from clawctl.errors import ClawctlError, ExitCode, FrameTooLarge, InternalError, ProtocolError
from clawctl.protocol.framing import FrameDecoder, FrameError, FrameFault, encode_frame
from clawctl.protocol.messages import (
    ERROR_CLASSES,
    MAX_ID,
    ErrorCode,
    ErrorResponse,
    Event,
    Request,
    Response,
    WireError,
    code_of,
    error_for_frame,
    error_response,
    from_wire,
    parse_request,
    parse_server_message,
    parse_wire_error,
    request_id_of,
    to_wire,
)

ALL_ERROR_CLASSES = [cls for cls in vars(errors).values()
                     if isinstance(cls, type) and issubclass(cls, ClawctlError)]


def through_the_wire(message: dict[str, Any]) -> dict[str, Any]:
    [decoded] = FrameDecoder().feed(encode_frame(message))
    return decoded


# ------------------------------------------------------------------ requests
def test_a_request_round_trips() -> None:
    request = Request(7, "sessions.open", {"pool": "workers"})
    assert parse_request(through_the_wire(request.to_json())) == request


def test_params_may_be_omitted() -> None:
    assert parse_request({"id": 0, "method": "heartbeat"}) == Request(0, "heartbeat", {})


@pytest.mark.parametrize("obj", [
    {"method": "heartbeat"},
    {"id": 1},
    {"id": 1, "method": "heartbeat", "extra": 1},
    {"id": -1, "method": "heartbeat"},
    {"id": MAX_ID + 1, "method": "heartbeat"},
    {"id": True, "method": "heartbeat"},
    {"id": 1.0, "method": "heartbeat"},
    {"id": "1", "method": "heartbeat"},
    {"id": 1, "method": ""},
    {"id": 1, "method": "Sessions.Open"},
    {"id": 1, "method": "sessions..open"},
    {"id": 1, "method": "a" * 65},
    {"id": 1, "method": 5},
    {"id": 1, "method": "heartbeat", "params": []},
    {"id": 1, "method": "heartbeat", "params": None},
])
def test_malformed_requests_are_protocol_errors(obj: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        parse_request(obj)


def test_the_id_of_a_malformed_request_is_recovered_when_valid() -> None:
    assert request_id_of({"id": 5, "method": 3}) == 5
    assert request_id_of({"id": "5"}) is None
    assert request_id_of({"id": False}) is None
    assert request_id_of([1]) is None
    assert request_id_of({"id": MAX_ID}) == MAX_ID


# ----------------------------------------------------------- server messages
@pytest.mark.parametrize("message", [
    Response(1, {"session": "s-1"}),
    Response(2, None),
    Response(3, [1, "two"]),
    ErrorResponse(4, WireError(ErrorCode.NOT_FOUND, "no session s-9", "see `clawctl sessions list`")),
    ErrorResponse(None, WireError(ErrorCode.INVALID_REQUEST, "malformed frame", None)),
    Event("session.opened", {"session": "s-1", "pool": "p"}),
])
def test_server_messages_round_trip(message: Response | ErrorResponse | Event) -> None:
    assert parse_server_message(through_the_wire(message.to_json())) == message


@pytest.mark.parametrize("obj", [
    {"id": 1},
    {"id": 1, "result": 1, "error": {"code": "internal", "message": "x"}},
    {"id": 1, "result": 1, "extra": 2},
    {"id": "1", "result": 1},
    {"id": 1, "error": "boom"},
    {"id": 1, "error": {"code": "internal"}},
    {"id": 1, "error": {"code": "", "message": "x"}},
    {"id": 1, "error": {"code": "internal", "message": 5}},
    {"id": 1, "error": {"code": "internal", "message": "x", "hint": 5}},
    {"id": 1, "error": {"code": "internal", "message": "x", "trace": "..."}},
    {"event": "session.opened", "data": []},
    {"event": "Bad Name", "data": {}},
    {"event": "session.opened", "id": 1},
])
def test_malformed_server_messages_are_protocol_errors(obj: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        parse_server_message(obj)


def test_an_unknown_error_code_is_kept_and_decodes_to_a_plain_error() -> None:
    wire = parse_wire_error({"code": "from-the-future", "message": "new thing", "hint": "upgrade"})
    assert wire.code == "from-the-future"
    error = from_wire(wire)
    assert type(error) is ClawctlError and error.exit_code is ExitCode.FAILED
    assert (error.message, error.hint) == ("new thing", "upgrade")


# ----------------------------------------------------------------- errors
def test_every_error_class_has_exactly_one_code() -> None:
    assert set(ERROR_CLASSES.values()) == set(ALL_ERROR_CLASSES)
    assert len(set(ERROR_CLASSES.values())) == len(ERROR_CLASSES) == len(ErrorCode)


@pytest.mark.parametrize("cls", ALL_ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_errors_round_trip_with_class_message_hint_and_exit_code(cls: type[ClawctlError]) -> None:
    original = cls("something went wrong", hint="try this")
    wire = parse_server_message(through_the_wire(error_response(3, original).to_json()))
    assert isinstance(wire, ErrorResponse) and wire.id == 3
    back = from_wire(wire.error)
    assert type(back) is cls
    assert (back.message, back.hint, back.exit_code) == (original.message, original.hint, original.exit_code)


def test_the_codes_the_issue_names() -> None:
    assert code_of(errors.Unauthenticated) is ErrorCode.UNAUTHENTICATED
    assert code_of(errors.PolicyDenied).value == "forbidden"
    assert code_of(errors.NotFound).value == "not-found"
    assert code_of(errors.Conflict).value == "conflict"
    assert code_of(ProtocolError).value == "invalid-request"
    assert code_of(FrameTooLarge).value == "too-large"
    assert code_of(errors.RateLimited).value == "rate-limited"
    assert code_of(InternalError).value == "internal"


def test_a_subclass_without_a_code_uses_its_nearest_ancestors() -> None:
    class SessionGone(errors.NotFound):
        pass

    assert to_wire(SessionGone("gone")).code is ErrorCode.NOT_FOUND


def test_unexpected_exceptions_leak_nothing() -> None:
    wire = to_wire(KeyError("/secret/path token=abc"))
    assert wire.code is ErrorCode.INTERNAL
    assert "secret" not in wire.message and "abc" not in wire.message
    assert from_wire(wire).exit_code is ExitCode.INTERNAL


def test_frame_faults_map_to_too_large_or_invalid_request() -> None:
    too_large = error_for_frame(FrameError(FrameFault.TOO_LARGE, "2000000 bytes"))
    assert type(too_large) is FrameTooLarge and to_wire(too_large).code is ErrorCode.TOO_LARGE
    for fault in (FrameFault.NOT_JSON, FrameFault.NOT_OBJECT, FrameFault.INVALID_UTF8, FrameFault.TRUNCATED):
        error = error_for_frame(FrameError(fault, "detail"))
        assert type(error) is ProtocolError and to_wire(error).code is ErrorCode.INVALID_REQUEST
