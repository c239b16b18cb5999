"""Frames survive any chunking; every malformed stream raises FrameError, never hangs or over-buffers."""

from __future__ import annotations

import json
import random
import struct
from typing import Any

import pytest

from clawctl.protocol.framing import HEADER, MAX_FRAME, FrameDecoder, FrameError, FrameFault, encode_frame

SEEDS = range(20)


def random_message(rng: random.Random, index: int) -> dict[str, Any]:
    size = rng.choice([0, 1, 10, 200, 5000])
    text = "".join(rng.choice("abcé€🦀 \"\\\n\x00") for _ in range(size))
    return {"id": index, "method": "sessions.send", "params": {"message": text, "n": rng.random(), "ok": None}}


def chunks(data: bytes, rng: random.Random) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        step = rng.choice([1, 2, 3, 4, 5, 7, 64, 4096, 70000])
        out.append(data[pos : pos + step])
        pos += step
    return out


def raw_frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


@pytest.mark.parametrize("seed", SEEDS)
def test_any_chunking_yields_every_frame_in_order(seed: int) -> None:
    rng = random.Random(seed)
    messages = [random_message(rng, i) for i in range(rng.randint(1, 60))]
    stream = b"".join(encode_frame(m) for m in messages)
    decoder = FrameDecoder()
    received: list[dict[str, Any]] = []
    for chunk in chunks(stream, rng):
        received.extend(decoder.feed(chunk))
        assert decoder.buffered <= HEADER.size + MAX_FRAME
    decoder.close()
    assert received == messages


def test_several_frames_in_one_chunk_and_a_split_header() -> None:
    a, b, c = encode_frame({"a": 1}), encode_frame({"b": 2}), encode_frame({"c": 3})
    decoder = FrameDecoder()
    assert decoder.feed(a + b + c[:2]) == [{"a": 1}, {"b": 2}]
    assert decoder.buffered == 2
    assert decoder.feed(c[2:]) == [{"c": 3}]
    assert decoder.buffered == 0


def test_encoding_is_compact_ascii_and_round_trips_lone_surrogates() -> None:
    frame = encode_frame({"text": "é\ud800"})
    payload = frame[HEADER.size :]
    assert payload.isascii() and b" " not in payload
    assert FrameDecoder().feed(frame) == [{"text": "é\ud800"}]


def test_oversized_header_fails_at_once_without_buffering() -> None:
    decoder = FrameDecoder(max_frame=100)
    with pytest.raises(FrameError) as caught:
        decoder.feed(HEADER.pack(101))
    assert caught.value.fault is FrameFault.TOO_LARGE
    assert decoder.buffered == 0
    with pytest.raises(FrameError):  # the decoder stays broken
        decoder.feed(encode_frame({"a": 1}))


def test_a_frame_of_exactly_the_limit_is_accepted() -> None:
    message = {"x": "y" * 100}
    size = len(encode_frame(message)) - HEADER.size
    assert FrameDecoder(max_frame=size).feed(encode_frame(message, max_frame=size)) == [message]
    with pytest.raises(FrameError) as caught:
        encode_frame(message, max_frame=size - 1)
    assert caught.value.fault is FrameFault.TOO_LARGE


def test_the_default_limit_is_one_mebibyte() -> None:
    assert MAX_FRAME == 1 << 20
    with pytest.raises(FrameError):
        FrameDecoder().feed(struct.pack(">I", MAX_FRAME + 1))
    with pytest.raises(FrameError):
        FrameDecoder().feed(b"\xff\xff\xff\xff")


@pytest.mark.parametrize(("payload", "fault"), [
    (b"\xff\xfe", FrameFault.INVALID_UTF8),
    (b'{"a": "\xc3"}', FrameFault.INVALID_UTF8),
    (b"{not json", FrameFault.NOT_JSON),
    (b'{"a": NaN}', FrameFault.NOT_JSON),
    (b'{"a": Infinity}', FrameFault.NOT_JSON),
    (b"\xef\xbb\xbf{}", FrameFault.NOT_JSON),  # a BOM
    (b"[" * 200_000, FrameFault.NOT_JSON),  # deeper than the parser recurses
    (b'{"a": 1} {"b": 2}', FrameFault.NOT_JSON),
    (b"[1, 2]", FrameFault.NOT_OBJECT),
    (b'"text"', FrameFault.NOT_OBJECT),
    (b"null", FrameFault.NOT_OBJECT),
    (b"", FrameFault.NOT_JSON),
])
def test_bad_payloads_raise_their_fault(payload: bytes, fault: FrameFault) -> None:
    with pytest.raises(FrameError) as caught:
        FrameDecoder().feed(raw_frame(payload))
    assert caught.value.fault is fault


def test_frames_before_a_fault_are_handed_over() -> None:
    decoder = FrameDecoder()
    with pytest.raises(FrameError) as caught:
        decoder.feed(encode_frame({"a": 1}) + encode_frame({"b": 2}) + raw_frame(b"[]") + encode_frame({"c": 3}))
    assert caught.value.frames == ({"a": 1}, {"b": 2})
    with pytest.raises(FrameError) as again:
        decoder.feed(b"")
    assert again.value.frames == ()


@pytest.mark.parametrize("cut", [1, 3, 4, 5, 9])
def test_a_truncated_stream_is_reported_on_close(cut: int) -> None:
    frame = encode_frame({"hello": "world"})
    decoder = FrameDecoder()
    assert decoder.feed(frame[:cut]) == []
    with pytest.raises(FrameError) as caught:
        decoder.close()
    assert caught.value.fault is FrameFault.TRUNCATED


def test_close_after_whole_frames_is_clean() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame({"a": 1}))
    decoder.close()


@pytest.mark.parametrize("seed", SEEDS)
def test_garbage_never_hangs_or_overbuffers(seed: int) -> None:
    rng = random.Random(seed)
    limit = rng.choice([16, 1000, MAX_FRAME])
    decoder = FrameDecoder(max_frame=limit)
    garbage = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 5000)))
    try:
        for chunk in chunks(garbage, rng):
            for frame in decoder.feed(chunk):
                assert isinstance(frame, dict)
            assert decoder.buffered <= HEADER.size + limit
        decoder.close()
    except FrameError as exc:
        assert isinstance(exc.fault, FrameFault)


@pytest.mark.parametrize("seed", SEEDS)
def test_mutated_valid_streams_fail_cleanly_or_decode_objects(seed: int) -> None:
    rng = random.Random(seed)
    stream = bytearray(b"".join(encode_frame(random_message(rng, i)) for i in range(10)))
    for _ in range(rng.randint(1, 5)):
        stream[rng.randrange(len(stream))] = rng.getrandbits(8)
    decoder = FrameDecoder(max_frame=64 * 1024)
    try:
        for chunk in chunks(bytes(stream), rng):
            assert all(isinstance(frame, dict) for frame in decoder.feed(chunk))
            assert decoder.buffered <= HEADER.size + 64 * 1024
    except FrameError:
        pass


@pytest.mark.parametrize("value", [{"x": float("nan")}, {"x": object()}, {"x": {1, 2}}])
def test_unencodable_messages_raise_frame_error(value: dict[str, Any]) -> None:
    with pytest.raises(FrameError) as caught:
        encode_frame(value)
    assert caught.value.fault is FrameFault.NOT_JSON


def test_encoding_a_non_mapping_is_refused() -> None:
    with pytest.raises(FrameError) as caught:
        encode_frame([1, 2])  # type: ignore[arg-type]
    assert caught.value.fault is FrameFault.NOT_OBJECT


def test_decoder_accepts_bytearray_and_memoryview() -> None:
    frame = encode_frame({"a": [1, 2]})
    assert FrameDecoder().feed(bytearray(frame)) == [{"a": [1, 2]}]
    assert FrameDecoder().feed(memoryview(frame)) == [json.loads(frame[HEADER.size :])]


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        FrameDecoder(max_frame=0)
