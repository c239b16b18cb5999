"""The method table is complete and is the one gate for names, callers and params."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from clawctl.errors import PolicyDenied, ProtocolError, Unauthenticated
from clawctl.protocol.messages import NAME_PATTERN, Request
from clawctl.protocol.methods import (
    EVENTS,
    METHODS,
    RESERVED_NAMESPACES,
    Callers,
    Role,
    check_call,
    method_spec,
    validate_params,
)

ISSUE_5_METHODS = {
    "hello": Callers.BOTH,
    "heartbeat": Callers.AGENT,
    "sessions.open": Callers.BOTH,
    "sessions.send": Callers.BOTH,
    "sessions.reply": Callers.AGENT,
    "sessions.show": Callers.BOTH,
    "sessions.list": Callers.BOTH,
    "sessions.close": Callers.BOTH,
    "session.state.get": Callers.AGENT,
    "session.state.set": Callers.AGENT,
}

ISSUE_6_METHODS = {
    "messages.send": Callers.BOTH,
    "messages.send_batch": Callers.BOTH,
    "messages.ack": Callers.AGENT,
    "messages.list": Callers.OPERATOR,
    "events.publish": Callers.BOTH,
    "events.subscribe": Callers.AGENT,
    "events.unsubscribe": Callers.AGENT,
    "state.get": Callers.BOTH,
    "state.set": Callers.BOTH,
    "state.watch": Callers.AGENT,
}

PROTOCOL_DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def test_the_table_holds_exactly_the_methods_of_issues_5_and_6() -> None:
    assert {name: spec.callers for name, spec in METHODS.items()} == ISSUE_5_METHODS | ISSUE_6_METHODS


def test_every_entry_is_well_formed() -> None:
    entries: list[tuple[str, str, str]] = [(n, s.name, s.doc) for n, s in METHODS.items()]
    entries += [(n, s.name, s.doc) for n, s in EVENTS.items()]
    for key, name, doc in entries:
        assert key == name and NAME_PATTERN.fullmatch(name)
        assert doc and doc[0].isupper()
        assert not (RESERVED_NAMESPACES and name.startswith(RESERVED_NAMESPACES))


def test_only_hello_works_without_identity() -> None:
    assert [name for name, spec in METHODS.items() if not spec.needs_identity] == ["hello"]


def test_the_doc_lists_every_method_and_event() -> None:
    text = PROTOCOL_DOC.read_text()
    for name in [*METHODS, *EVENTS]:
        assert re.search(rf"`{re.escape(name)}`", text), name


def test_the_table_cannot_be_changed_at_runtime() -> None:
    with pytest.raises(TypeError):
        METHODS["evil"] = METHODS["hello"]  # type: ignore[index]
    with pytest.raises(TypeError):
        METHODS["hello"].params["x"] = METHODS["hello"].params["version"]  # type: ignore[index]


@pytest.mark.parametrize(("method", "params"), [
    ("hello", {"version": 1}),
    ("hello", {"version": 1, "agent_id": "web-0", "token": "t" * 43, "client": "clawctl-sdk/0.1"}),
    ("heartbeat", {}),
    ("sessions.open", {"pool": "workers"}),
    ("sessions.open", {"pool": "workers", "fleet": "prod", "key": "user-42"}),
    ("sessions.send", {"session": "s-1", "message": {"text": "hi"}}),
    ("sessions.send", {"session": "s-1", "message": "hi", "timeout": 2.5}),
    ("sessions.send", {"session": "s-1", "message": None, "timeout": 0}),
    ("sessions.reply", {"session": "s-1", "message_id": "m-1", "message": [1, 2]}),
    ("sessions.show", {"session": "s-1", "history": 0}),
    ("sessions.list", {}),
    ("sessions.list", {"pool": "p", "state": "active", "limit": 10}),
    ("sessions.close", {"session": "s-1", "graceful": False}),
    ("session.state.get", {"session": "s-1"}),
    ("session.state.set", {"session": "s-1", "state": {}}),
])
def test_valid_params_pass(method: str, params: dict[str, Any]) -> None:
    assert validate_params(method, params) == params


@pytest.mark.parametrize(("method", "params", "words"), [
    ("hello", {}, "missing param 'version'"),
    ("hello", {"version": "1"}, "must be integer"),
    ("hello", {"version": True}, "must be integer"),
    ("hello", {"version": 0}, "at least"),
    ("hello", {"version": 1, "token": "t" * 257}, "longer than"),
    ("heartbeat", {"load": 1}, "unknown param 'load'"),
    ("sessions.open", {"pool": 3}, "must be string"),
    ("sessions.open", {"pool": "p" * 129}, "longer than"),
    ("sessions.send", {"session": "s-1"}, "missing param 'message'"),
    ("sessions.send", {"session": "s-1", "message": "x", "timeout": -1}, "at least"),
    ("sessions.send", {"session": "s-1", "message": "x", "timeout": "soon"}, "must be number"),
    ("sessions.list", {"limit": 1.5}, "must be integer"),
    ("sessions.list", {"limit": 10_001}, "at most"),
    ("sessions.close", {"session": "s-1", "graceful": 1}, "must be boolean"),
    ("session.state.set", {"session": "s-1", "state": [1]}, "must be object"),
])
def test_invalid_params_are_refused_with_a_reason(method: str, params: dict[str, Any], words: str) -> None:
    with pytest.raises(ProtocolError, match=re.escape(words)):
        validate_params(method, params)


def test_unknown_methods_are_refused() -> None:
    for name in ("sessions.destroy_everything", "state.cas", "messages.purge", "audit.delete"):
        with pytest.raises(ProtocolError, match="unknown method"):
            method_spec(name)


def test_hello_comes_first_and_only_once() -> None:
    with pytest.raises(Unauthenticated):
        check_call(Request(1, "sessions.list", {}), None)
    assert check_call(Request(1, "hello", {"version": 1}), None).name == "hello"
    with pytest.raises(ProtocolError, match="already said hello"):
        check_call(Request(2, "hello", {"version": 1}), Role.OPERATOR)


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("role", list(Role))
def test_callers_are_enforced(method: str, role: Role) -> None:
    spec = METHODS[method]
    if not spec.needs_identity:
        return
    params = {name: _sample(param.kind.value) for name, param in spec.params.items() if param.required}
    request = Request(1, method, params)
    if spec.callers.admits(role):
        assert check_call(request, role) is spec
    else:
        with pytest.raises(PolicyDenied):
            check_call(request, role)


def test_the_operator_cannot_reply_or_touch_session_state() -> None:
    for method in ("sessions.reply", "session.state.get", "session.state.set", "heartbeat"):
        assert not METHODS[method].callers.admits(Role.OPERATOR)


def _sample(kind: str) -> object:
    return {"string": "s-1", "integer": 1, "number": 1.0, "boolean": True, "object": {}, "any": None}[kind]
