"""Length-prefixed JSON frames: a 4-byte big-endian payload length, then a UTF-8 JSON object.

Sans-IO: ``encode_frame`` returns bytes and ``FrameDecoder.feed`` takes whatever
bytes a socket read returned, so the same code serves asyncio and blocking sockets.
Guarantees: a frame never exceeds ``MAX_FRAME`` payload bytes; the decoder never
holds more than one header plus one frame's payload, whatever the peer sends; every
fault raises ``FrameError`` (never hangs, never returns a non-object).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from enum import Enum
from typing import Any

MAX_FRAME = 1024 * 1024
"""Largest payload (bytes after the header) either side sends or accepts: 1 MiB."""

HEADER = struct.Struct(">I")
"""The frame header: payload length as an unsigned 32-bit big-endian integer."""

JsonObject = dict[str, Any]


class FrameFault(str, Enum):
    """Why a byte stream is not a valid frame sequence; the value is what logs show."""

    TOO_LARGE = "too-large"  # the header announces more than the limit
    INVALID_UTF8 = "invalid-utf8"  # the payload is not UTF-8
    NOT_JSON = "not-json"  # the payload is not (strict) JSON
    NOT_OBJECT = "not-object"  # the payload is JSON but not an object
    TRUNCATED = "truncated"  # the stream ended inside a frame


class FrameError(ValueError):
    """A fault in the byte stream. After it the stream cannot be trusted: close the connection.

    ``frames`` holds the complete frames that preceded the fault in the same
    ``feed`` call, in order, so a caller can still serve them.
    """

    def __init__(self, fault: FrameFault, detail: str, *, frames: tuple[JsonObject, ...] = ()) -> None:
        super().__init__(f"{fault.value}: {detail}")
        self.fault = fault
        self.detail = detail
        self.frames = frames


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_payload(payload: bytes | bytearray | memoryview) -> JsonObject:
    """Parse one frame's payload as a strict JSON object (no NaN/Infinity) or raise ``FrameError``."""
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FrameError(FrameFault.INVALID_UTF8, f"byte {exc.start} is not valid UTF-8") from exc
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise FrameError(FrameFault.NOT_JSON, "nested too deeply") from exc
    except ValueError as exc:
        raise FrameError(FrameFault.NOT_JSON, str(exc)) from exc
    if not isinstance(value, dict):
        raise FrameError(FrameFault.NOT_OBJECT, f"a JSON {type(value).__name__}, not an object")
    return value


def encode_frame(message: Mapping[str, Any], *, max_frame: int = MAX_FRAME) -> bytes:
    """One frame holding ``message`` as compact ASCII JSON (always valid UTF-8, even for
    lone surrogates). Raises ``FrameError`` when it is not JSON-serializable or too large."""
    if not isinstance(message, Mapping):
        raise FrameError(FrameFault.NOT_OBJECT, f"a {type(message).__name__}, not a mapping")
    try:
        payload = json.dumps(dict(message), separators=(",", ":"), allow_nan=False).encode("ascii")
    except RecursionError as exc:
        raise FrameError(FrameFault.NOT_JSON, "nested too deeply") from exc
    except (TypeError, ValueError) as exc:
        raise FrameError(FrameFault.NOT_JSON, str(exc)) from exc
    if len(payload) > max_frame:
        raise FrameError(FrameFault.TOO_LARGE, f"{len(payload)} bytes, the limit is {max_frame}")
    return HEADER.pack(len(payload)) + payload


class FrameDecoder:
    """Turns a byte stream, in chunks of any size, into JSON objects.

    Holds at most ``HEADER.size + max_frame`` bytes between calls. After a
    ``FrameError`` the decoder is broken: every later call raises the same error.
    """

    def __init__(self, *, max_frame: int = MAX_FRAME) -> None:
        if not 0 < max_frame <= 0xFFFFFFFF:
            raise ValueError(f"max_frame must be in 1..2**32-1, got {max_frame}")
        self.max_frame = max_frame
        self._buffer = bytearray()
        self._need: int | None = None  # payload length once the header is complete
        self._error: FrameError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held from an incomplete header or frame."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[JsonObject]:
        """Every frame completed by ``data``, in order; keeps the rest for the next call."""
        if self._error is not None:
            raise self._error
        frames: list[JsonObject] = []
        view = memoryview(data).cast("B")
        pos, end = 0, len(view)
        try:
            while pos < end:
                if self._need is None:
                    pos = self._read_header(view, pos)
                    if self._need is None:
                        break
                need = self._need
                if not self._buffer and end - pos >= need:  # whole payload in this chunk: no copy
                    frames.append(decode_payload(view[pos : pos + need]))
                    pos += need
                else:
                    take = min(need - len(self._buffer), end - pos)
                    self._buffer += view[pos : pos + take]
                    pos += take
                    if len(self._buffer) < need:
                        break
                    payload = bytes(self._buffer)
                    self._buffer.clear()
                    frames.append(decode_payload(payload))
                self._need = None
        except FrameError as exc:
            self._fail(exc, frames)
        return frames

    def close(self) -> None:
        """Declare the end of the stream: raises ``FrameError`` (truncated) if a frame is unfinished."""
        if self._error is not None:
            raise self._error
        if self._need is not None or self._buffer:
            self._fail(FrameError(FrameFault.TRUNCATED, f"stream ended with {len(self._buffer)} bytes of an "
                                                        "unfinished frame"), [])

    def _read_header(self, view: memoryview, pos: int) -> int:
        take = min(HEADER.size - len(self._buffer), len(view) - pos)
        self._buffer += view[pos : pos + take]
        if len(self._buffer) < HEADER.size:
            return pos + take
        (length,) = HEADER.unpack(self._buffer)
        self._buffer.clear()
        if length > self.max_frame:
            raise FrameError(FrameFault.TOO_LARGE, f"{length} bytes announced, the limit is {self.max_frame}")
        if length == 0:
            raise FrameError(FrameFault.NOT_JSON, "empty payload")
        self._need = length
        return pos + take

    def _fail(self, exc: FrameError, frames: list[JsonObject]) -> None:
        self._buffer = bytearray()
        self._need = None
        error = FrameError(exc.fault, exc.detail, frames=tuple(frames))
        self._error = FrameError(exc.fault, exc.detail)
        raise error from exc.__cause__
