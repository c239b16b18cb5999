"""A test agent that talks to other agents on command and records what reaches it.

Session messages are commands (the reply is the result, or {"error", "class"}):

- ``{"do": "send", "to": T, "payload": P}`` → the message id (``send_message``)
- ``{"do": "publish", "topic": T, "data": D}`` → delivered count
- ``{"do": "subscribe", "pattern": P}`` / ``{"do": "watch", "pattern": P}`` → "ok"
- ``{"do": "state_get", "key": K}`` → [value, version]
- ``{"do": "state_set", "key": K, "value": V, "expected_version": N}`` → new version
- ``{"do": "send_batch", "items": [...]}`` → the raw ``messages.send_batch`` result
- ``{"do": "send_many", "to": T, "count": N}`` → ids of N messages with payloads {"n": 0..N-1}
- ``{"do": "open_child", "pool": P, "parent": S}`` → the child session's id
- ``{"do": "flood", "count": N}`` → how many of N pipelined requests were refused as rate-limited
- ``{"do": "seen"}`` → {"messages": [...], "events": [...], "changes": [...]} received so far

A direct message whose payload has ``"poison": true`` makes the handler raise (never acked).
Direct messages, events and state changes are appended to ``received.jsonl`` in the
working directory (flushed and fsynced), after ``--handle-seconds`` of work each.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from clawctl.agent.sdk import Agent, Message, PublishedEvent, Session, StateChange
from clawctl.errors import ClawctlError
from clawctl.protocol.framing import FrameDecoder, encode_frame

LOG = Path("received.jsonl")
_lock = threading.Lock()


def _record(kind: str, **fields: Any) -> None:
    with _lock, LOG.open("a") as fh:
        fh.write(json.dumps({"kind": kind, **fields}) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _seen() -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {"messages": [], "events": [], "changes": []}
    if LOG.exists():
        for line in LOG.read_text().splitlines():
            entry = json.loads(line)
            out[{"message": "messages", "event": "events", "change": "changes"}[entry.pop("kind")]].append(entry)
    return out


def _flood(count: int) -> int:
    """Pipeline ``count`` state reads on a fresh connection of this agent; count the refusals."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(os.environ["CLAWCTL_SOCKET"])
    sock.sendall(encode_frame({"id": 0, "method": "hello", "params": {
        "version": 1, "agent_id": os.environ["CLAWCTL_AGENT_ID"], "token": os.environ["CLAWCTL_TOKEN"]}}))
    sock.sendall(b"".join(encode_frame({"id": i, "method": "sessions.list", "params": {"limit": 1}})
                          for i in range(1, count + 1)))
    decoder, answers, refused = FrameDecoder(), 0, 0
    while answers < count + 1:
        for frame in decoder.feed(sock.recv(65536)):
            if "event" in frame:
                continue
            answers += 1
            if frame.get("error", {}).get("code") == "rate-limited":
                refused += 1
    sock.close()
    return refused


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--handle-seconds", type=float, default=0.0)
    args = parser.parse_args()
    agent = Agent.from_env()

    @agent.on_direct_message
    def got(message: Message) -> None:
        if isinstance(message.payload, dict) and message.payload.get("poison"):
            raise ValueError("poisoned message")
        time.sleep(args.handle_seconds)
        _record("message", id=message.id, sender=message.sender, payload=message.payload)

    def on_event(event: PublishedEvent) -> None:
        _record("event", topic=event.topic, data=event.data, sender=event.sender)

    def on_change(change: StateChange) -> None:
        _record("change", key=change.key, value=change.value, version=change.version, by=change.by)

    @agent.on_message
    def command(_session: Session, message: Any) -> Any:
        do = message.get("do") if isinstance(message, dict) else None
        try:
            if do == "send":
                return agent.send_message(message["to"], message.get("payload"))
            if do == "send_batch":
                return agent.call("messages.send_batch", {"messages": message["items"]})
            if do == "send_many":
                return [agent.send_message(message["to"], {"n": n}) for n in range(int(message["count"]))]
            if do == "open_child":
                return agent.open_session(message["pool"], parent=message["parent"]).id
            if do == "publish":
                return agent.publish(message["topic"], message.get("data"))
            if do == "subscribe":
                agent.subscribe(message["pattern"], on_event)
                return "ok"
            if do == "watch":
                agent.watch(message["pattern"], on_change)
                return "ok"
            if do == "state_get":
                return list(agent.state_get(message["key"]))
            if do == "state_set":
                return agent.state_set(message["key"], message.get("value"), message["expected_version"])
            if do == "flood":
                return _flood(int(message["count"]))
            if do == "seen":
                return _seen()
        except ClawctlError as exc:
            return {"error": exc.message, "class": type(exc).__name__}
        return {"error": f"unknown command {do!r}", "class": "UsageError"}

    agent.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
