"""The control-socket methods and events, in one explicit table.

Each method names who may call it, its params and a one-line doc. The daemon's
control server dispatches only names in ``METHODS``; ``check_call`` is the one
place that refuses unknown methods, callers the table does not admit, and params
that do not match. Ownership ("own sessions only") and the CommunicationPolicy are
checked by the handler, which knows the sessions; the table cannot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any

from clawctl.errors import PolicyDenied, ProtocolError, Unauthenticated
from clawctl.protocol.messages import Request


class Role(str, Enum):
    """Who a connection was authenticated as."""

    OPERATOR = "operator"  # the CLI, run by the daemon's user outside every agent
    AGENT = "agent"  # an agent process (or a descendant) with its token


class Callers(str, Enum):
    """Which roles may call a method."""

    OPERATOR = "operator"
    AGENT = "agent"
    BOTH = "both"

    def admits(self, role: Role) -> bool:
        return self is Callers.BOTH or self.value == role.value


class Kind(str, Enum):
    """The JSON type of a parameter."""

    STR = "string"
    INT = "integer"
    NUMBER = "number"
    BOOL = "boolean"
    OBJECT = "object"
    ANY = "any"  # any JSON value


@dataclass(frozen=True)
class Param:
    """One parameter: its JSON kind, whether it is required, and bounds.

    ``max_length`` bounds a string's characters; ``minimum``/``maximum`` bound a number.
    """

    kind: Kind
    required: bool = True
    doc: str = ""
    max_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class MethodSpec:
    """A method: ``name``, who may call it, its params and a one-line ``doc``.

    ``needs_identity`` is False only for ``hello``, the first request on every
    connection, which establishes the identity.
    """

    name: str
    callers: Callers
    params: Mapping[str, Param]
    doc: str
    needs_identity: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))


@dataclass(frozen=True)
class EventSpec:
    """An event the daemon pushes: its ``data`` fields and a one-line doc."""

    name: str
    data: Mapping[str, Param]
    doc: str
    to: Callers = Callers.AGENT

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", MappingProxyType(dict(self.data)))


ID_LENGTH = 128
"""Longest agent, pool, fleet, session or message id accepted in params."""

MAX_BATCH = 1000
"""Most messages in one ``messages.send_batch`` and ids in one ``messages.ack``."""

TARGET_LENGTH = 200
"""Longest ``to`` of a message ('agent/ID' or 'pool/NAME')."""

TOPIC_LENGTH = 255
"""Longest event topic, subscription pattern or shared-state key."""

KEY_LENGTH = 255
"""Longest session key (the registry's ``sessions.key`` column)."""

TOKEN_LENGTH = 256
"""Longest token accepted in ``hello`` (tokens are 43 characters; the bound keeps hashing cheap)."""

_ID = Param(Kind.STR, max_length=ID_LENGTH)
_SESSION = Param(Kind.STR, max_length=ID_LENGTH, doc="session id")
_COUNT = Param(Kind.INT, required=False, minimum=1, maximum=10_000)


def _method(name: str, callers: Callers, doc: str, needs_identity: bool = True, **params: Param) -> MethodSpec:
    return MethodSpec(name, callers, params, doc, needs_identity)


_TABLE: tuple[MethodSpec, ...] = (
    _method("hello", Callers.BOTH, "Open the connection: protocol version, and the agent's id and token if an agent.",
            needs_identity=False,
            version=Param(Kind.INT, minimum=1, maximum=2**31 - 1, doc="the client's protocol version"),
            agent_id=Param(Kind.STR, required=False, max_length=ID_LENGTH, doc="absent for the operator"),
            token=Param(Kind.STR, required=False, max_length=TOKEN_LENGTH, doc="CLAWCTL_TOKEN; with agent_id only"),
            client=Param(Kind.STR, required=False, max_length=ID_LENGTH, doc="e.g. 'clawctl-cli/0.1.0', for logs")),
    _method("heartbeat", Callers.AGENT, "Tell the daemon the agent is alive (misses beyond heartbeatTimeout = hung)."),
    _method("sessions.open", Callers.BOTH, "Open a session in a pool, placed by its balancing strategy; "
                                           "agents are checked against the CommunicationPolicy.",
            pool=_ID, fleet=Param(Kind.STR, required=False, max_length=ID_LENGTH, doc="default: the only fleet"),
            key=Param(Kind.STR, required=False, max_length=KEY_LENGTH, doc="consistent-hash key (sticky)"),
            parent=Param(Kind.STR, required=False, max_length=ID_LENGTH,
                         doc="agents: a session the caller owns; the new one is its child")),
    _method("sessions.send", Callers.BOTH, "Send a message to a session's owner and wait for its reply.",
            session=_SESSION, message=Param(Kind.ANY, doc="any JSON value"),
            timeout=Param(Kind.NUMBER, required=False, minimum=0, maximum=3600, doc="seconds to wait for the reply")),
    _method("sessions.reply", Callers.AGENT, "Answer a message of a session the agent owns.",
            session=_SESSION, message_id=Param(Kind.STR, max_length=ID_LENGTH, doc="the message answered"),
            message=Param(Kind.ANY, required=False, doc="any JSON value (the reply)"),
            error=Param(Kind.STR, required=False, max_length=1024,
                        doc="instead of message: the agent failed to handle it (one sentence)")),
    _method("sessions.show", Callers.BOTH, "A session's state and history (agents: own sessions only).",
            session=_SESSION, history=Param(Kind.INT, required=False, minimum=0, maximum=10_000,
                                            doc="latest entries of history to include")),
    _method("sessions.list", Callers.BOTH, "Sessions, newest first (agents: own sessions only).",
            pool=Param(Kind.STR, required=False, max_length=ID_LENGTH),
            fleet=Param(Kind.STR, required=False, max_length=ID_LENGTH),
            state=Param(Kind.STR, required=False, max_length=32, doc="e.g. 'active' or 'closed'"),
            limit=_COUNT),
    _method("sessions.close", Callers.BOTH, "Close a session (agents: own sessions only).",
            session=_SESSION, graceful=Param(Kind.BOOL, required=False,
                                             doc="send the closing event and wait (default: the pool's policy)")),
    _method("session.state.get", Callers.AGENT, "Read the state of a session the agent owns.", session=_SESSION),
    _method("session.state.set", Callers.AGENT, "Replace the state of a session the agent owns.",
            session=_SESSION, state=Param(Kind.OBJECT, doc="the whole new state")),
    # Cross-agent communication (issue 6): every call by an agent is checked against the
    # CommunicationPolicy of its fleet; denials are audited.
    _method("messages.send", Callers.BOTH, "Send a durable message to an agent or a pool; answered once stored.",
            to=Param(Kind.STR, max_length=TARGET_LENGTH, doc="'agent/ID' or 'pool/NAME'"),
            payload=Param(Kind.ANY, doc="any JSON value"),
            id=Param(Kind.STR, required=False, max_length=ID_LENGTH,
                     doc="the sender's id for this message: a retry with the same id is stored once"),
            fleet=Param(Kind.STR, required=False, max_length=ID_LENGTH, doc="operator: default the only fleet")),
    _method("messages.send_batch", Callers.BOTH, "Send up to 1000 durable messages at once; each is answered on "
                                                 "its own, all once stored.",
            messages=Param(Kind.ANY, doc="a list of {to, payload, id?} objects (1..1000)"),
            fleet=Param(Kind.STR, required=False, max_length=ID_LENGTH, doc="operator: default the only fleet")),
    _method("messages.ack", Callers.AGENT, "Acknowledge messages delivered to this agent (they are not redelivered).",
            message_id=Param(Kind.STR, required=False, max_length=ID_LENGTH),
            message_ids=Param(Kind.ANY, required=False, doc="instead of message_id: a list of up to 1000 ids")),
    _method("messages.list", Callers.OPERATOR, "Messages, newest first (e.g. the dead letters).",
            state=Param(Kind.STR, required=False, max_length=32, doc="queued, delivered, acked or dead"),
            agent=Param(Kind.STR, required=False, max_length=ID_LENGTH, doc="recipient agent id"),
            fleet=Param(Kind.STR, required=False, max_length=ID_LENGTH), limit=_COUNT),
    _method("events.publish", Callers.BOTH, "Publish an event on a topic to the agents subscribed to it.",
            topic=Param(Kind.STR, max_length=TOPIC_LENGTH), data=Param(Kind.ANY, required=False),
            fleet=Param(Kind.STR, required=False, max_length=ID_LENGTH, doc="operator: default the only fleet")),
    _method("events.subscribe", Callers.AGENT, "Receive the events whose topic matches a glob pattern.",
            pattern=Param(Kind.STR, max_length=TOPIC_LENGTH)),
    _method("events.unsubscribe", Callers.AGENT, "Stop receiving a pattern's events.",
            pattern=Param(Kind.STR, max_length=TOPIC_LENGTH)),
    _method("state.get", Callers.BOTH, "Read a shared-state key: its value and version (0: never written).",
            key=Param(Kind.STR, max_length=TOPIC_LENGTH),
            fleet=Param(Kind.STR, required=False, max_length=ID_LENGTH, doc="operator: default the only fleet")),
    _method("state.set", Callers.BOTH, "Compare-and-set a shared-state key: written only if its version is "
                                       "still expected_version (0: it must not exist yet).",
            key=Param(Kind.STR, max_length=TOPIC_LENGTH), value=Param(Kind.ANY),
            expected_version=Param(Kind.INT, minimum=0, maximum=2**53 - 1),
            fleet=Param(Kind.STR, required=False, max_length=ID_LENGTH, doc="operator: default the only fleet")),
    _method("state.watch", Callers.AGENT, "Receive state.changed events for the keys matching a glob pattern.",
            pattern=Param(Kind.STR, max_length=TOPIC_LENGTH)),
)

METHODS: Mapping[str, MethodSpec] = MappingProxyType({spec.name: spec for spec in _TABLE})
"""Every method the daemon serves, by name."""

RESERVED_NAMESPACES: tuple[str, ...] = ()
"""Prefixes kept for later versions; refused as "not available in this protocol version"."""

EVENTS: Mapping[str, EventSpec] = MappingProxyType({spec.name: spec for spec in (
    EventSpec("session.opened", {"session": _SESSION, "pool": _ID, "key": Param(Kind.STR, required=False),
                                 "state": Param(Kind.OBJECT, doc="state carried over from a previous owner")},
              "A session was placed on this agent (new, or moved with its state)."),
    EventSpec("session.message", {"session": _SESSION, "message_id": _ID, "message": Param(Kind.ANY)},
              "A message for a session this agent owns; answer with sessions.reply."),
    EventSpec("session.closing", {"session": _SESSION, "reason": Param(Kind.STR),
                                  "deadline": Param(Kind.NUMBER, doc="seconds left to save state")},
              "A session is closing (idle, max lifetime, drain, operator); save state now."),
    EventSpec("message.received", {"message_id": _ID, "from": _ID, "payload": Param(Kind.ANY),
                                   "attempt": Param(Kind.INT, doc="1 on the first delivery")},
              "A durable message for this agent; acknowledge it with messages.ack once handled."),
    EventSpec("event.published", {"topic": Param(Kind.STR), "data": Param(Kind.ANY), "from": _ID},
              "An event on a topic this agent subscribed to (at most once, to connected subscribers)."),
    EventSpec("state.changed", {"key": Param(Kind.STR), "value": Param(Kind.ANY), "version": Param(Kind.INT),
                                "by": _ID},
              "A shared-state key this agent watches was written."),
)})
"""Every event the daemon pushes, by name."""


# ------------------------------------------------------------------ checking
def method_spec(name: str) -> MethodSpec:
    """The spec of method ``name``; ``ProtocolError`` for unknown or reserved names."""
    spec = METHODS.get(name)
    if spec is not None:
        return spec
    if RESERVED_NAMESPACES and name.startswith(RESERVED_NAMESPACES):
        raise ProtocolError(f"method {name!r} is not available in this protocol version",
                            hint="it is reserved for a later version; see docs/protocol.md")
    raise ProtocolError(f"unknown method {name!r}", hint="see docs/protocol.md for the method table")


def _matches(kind: Kind, value: object) -> bool:
    if kind is Kind.ANY:
        return True
    if kind is Kind.BOOL:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is Kind.INT:
        return isinstance(value, int)
    if kind is Kind.NUMBER:
        return isinstance(value, (int, float))
    if kind is Kind.STR:
        return isinstance(value, str)
    return isinstance(value, dict)


def _check_param(method: str, name: str, param: Param, value: object) -> None:
    where = f"{method}: param {name!r}"
    if not _matches(param.kind, value):
        raise ProtocolError(f"{where} must be {param.kind.value}, got {type(value).__name__}")
    if param.max_length is not None and isinstance(value, str) and len(value) > param.max_length:
        raise ProtocolError(f"{where} is longer than {param.max_length} characters")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if param.minimum is not None and value < param.minimum:
            raise ProtocolError(f"{where} must be at least {param.minimum:g}, got {value}")
        if param.maximum is not None and value > param.maximum:
            raise ProtocolError(f"{where} must be at most {param.maximum:g}, got {value}")


def validate_params(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` as a plain dict if they match ``method``'s table entry, else ``ProtocolError``
    (unknown method, missing or unknown param, wrong type, out of bounds)."""
    spec = method_spec(method)
    unknown = sorted(params.keys() - spec.params.keys())
    if unknown:
        raise ProtocolError(f"{method}: unknown param {', '.join(repr(k) for k in unknown)}",
                            hint=f"it takes {', '.join(spec.params) or 'no params'}")
    for name, param in spec.params.items():
        if name in params:
            _check_param(method, name, param, params[name])
        elif param.required:
            raise ProtocolError(f"{method}: missing param {name!r}")
    return dict(params)


def check_call(request: Request, role: Role | None) -> MethodSpec:
    """The spec for ``request`` made by a connection authenticated as ``role`` (None before
    ``hello``). Raises ``Unauthenticated`` for a method before ``hello``, ``ProtocolError`` for
    a repeated ``hello``, bad names or params, ``PolicyDenied`` when the role may not call it."""
    spec = method_spec(request.method)
    if role is None and spec.needs_identity:
        raise Unauthenticated(f"{request.method}: the connection has not said hello",
                              hint="send hello (with agent_id and token for an agent) first")
    if role is not None and not spec.needs_identity:
        raise ProtocolError(f"{request.method}: the connection has already said hello")
    if role is not None and not spec.callers.admits(role):
        raise PolicyDenied(f"{request.method} may be called by {spec.callers.value} only, not by an {role.value}")
    validate_params(request.method, request.params)
    return spec
