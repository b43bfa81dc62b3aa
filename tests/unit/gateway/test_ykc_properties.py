"""Hypothesis properties: round trips for every frame type, and a reader that never raises."""

import contextlib
import dataclasses
from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.gateway.ykc import (
    CRC_HIGH_FIRST,
    CRC_LOW_FIRST,
    MESSAGE_TYPES,
    ErrorEvent,
    FrameEvent,
    FrameReader,
    decode_frame,
    encode_frame,
)
from app.gateway.ykc.fields import (
    BCD,
    Ascii,
    Bits,
    CountedList,
    CP56Time,
    FixedList,
    Offset,
    PrefixedAscii,
    Raw,
    RemainderList,
    Scaled,
    Struct,
    UInt,
)

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PER_TYPE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_TEXT = st.characters(min_codepoint=1, max_codepoint=255)
_TIMES = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2127, 12, 31, 15, 59, 59)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
)


def _decimal(raw: st.SearchStrategy, decimals: int, offset=0) -> st.SearchStrategy:
    return raw.map(lambda r: Decimal(r).scaleb(-decimals) + offset)


def codec_strategy(codec) -> st.SearchStrategy:
    """Valid values for a field codec."""
    if isinstance(codec, Scaled):
        return _decimal(st.integers(0, codec.max), codec.decimals, codec.offset)
    if isinstance(codec, Offset):
        return st.integers(codec.offset, codec.max + codec.offset)
    if isinstance(codec, UInt):
        return st.integers(0, codec.max)
    if isinstance(codec, Bits):
        raw = st.integers(0, codec.max)
        return raw if codec.decimals is None else _decimal(raw, codec.decimals)
    if isinstance(codec, BCD):
        return st.text("0123456789ABCDEF", min_size=2 * codec.size, max_size=2 * codec.size)
    if isinstance(codec, Ascii):
        return st.text(_TEXT, max_size=codec.size)
    if isinstance(codec, PrefixedAscii):
        return st.text(st.characters(max_codepoint=255), max_size=120)
    if isinstance(codec, Raw):
        return st.binary(min_size=codec.size, max_size=codec.size)
    if isinstance(codec, CP56Time):
        return st.none() | _TIMES
    if isinstance(codec, FixedList):
        return st.lists(codec_strategy(codec.item), min_size=codec.count, max_size=codec.count)
    if isinstance(codec, (CountedList, RemainderList)):
        return st.lists(codec_strategy(codec.item), max_size=codec.max_items)
    if isinstance(codec, Struct):
        return record_strategy(codec.cls)
    raise TypeError(f"no strategy for {codec!r}")


def record_strategy(cls) -> st.SearchStrategy:
    fields = {f.name: codec_strategy(f.metadata["codec"]) for f in dataclasses.fields(cls)}
    return st.builds(cls, **fields)


ANY_MESSAGE = st.sampled_from(sorted(MESSAGE_TYPES)).flatmap(lambda t: record_strategy(MESSAGE_TYPES[t]))
SEQ = st.integers(0, 0xFFFF) | st.binary(min_size=2, max_size=2)
CRC_ORDER = st.sampled_from([CRC_LOW_FIRST, CRC_HIGH_FIRST])


@st.composite
def frames(draw, max_frames=6):
    messages = draw(st.lists(ANY_MESSAGE, min_size=1, max_size=max_frames))
    return messages, [encode_frame(m, draw(SEQ), crc_order=draw(CRC_ORDER)) for m in messages]


@st.composite
def chunked(draw, data: bytes):
    """Split ``data`` at random points."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def run_reader(reader, chunks):
    events = []
    for chunk in chunks:
        events += reader.feed(chunk)
    # every byte is accounted for: frames, decode errors, garbage, or still buffered
    consumed = sum(len(e.raw) for e in events if isinstance(e, FrameEvent))
    consumed += sum(e.size for e in events if isinstance(e, ErrorEvent))
    assert consumed + reader.buffered == reader.bytes_received
    return events


def is_subsequence(needles, haystack):
    it = iter(haystack)
    return all(any(n == h for h in it) for n in needles)


@pytest.mark.parametrize("frame_type", sorted(MESSAGE_TYPES), ids=lambda t: f"0x{t:02X}")
@PER_TYPE
@given(data=st.data())
def test_body_round_trip_every_type(frame_type, data):
    cls = MESSAGE_TYPES[frame_type]
    msg = data.draw(record_strategy(cls))
    body = msg.encode()
    if cls.BODY_SIZE is not None:
        assert len(body) == cls.BODY_SIZE
    assert cls.decode(body) == msg
    assert cls.decode(body).encode() == body


@FAST
@given(msg=ANY_MESSAGE, seq=SEQ, order=CRC_ORDER)
def test_frame_round_trip(msg, seq, order):
    frame = encode_frame(msg, seq, crc_order=order)
    header, decoded = decode_frame(frame)
    assert decoded == msg and type(decoded) is type(msg)
    assert header.frame_type == msg.FRAME_TYPE and header.crc_order in (order, CRC_LOW_FIRST)
    assert header.seq_bytes == (seq if isinstance(seq, bytes) else seq.to_bytes(2, "little"))
    assert not header.length_mismatch and header.length == len(frame) - 4


@FAST
@given(data=st.data())
def test_reader_reassembles_chunked_stream(data):
    messages, encoded = data.draw(frames())
    stream = b"".join(encoded)
    reader = FrameReader()
    events = run_reader(reader, data.draw(chunked(stream)))
    assert [e.message for e in events] == messages
    assert reader.garbage_bytes == 0 and reader.buffered == 0 and reader.decode_errors == 0


@FAST
@given(data=st.data())
def test_frames_surrounded_by_garbage_are_found(data):
    messages, encoded = data.draw(frames(max_frames=4))
    # random bytes, or bytes rich in start markers and plausible length/type bytes
    markers = st.lists(st.sampled_from([0x68, 0x0D, 0x00, 0x01, 0xF0, 0x04]), max_size=40).map(bytes)
    junk = st.binary(max_size=80) | markers
    stream = b"".join(data.draw(junk) + frame for frame in encoded) + data.draw(junk)
    events = run_reader(FrameReader(), data.draw(chunked(stream)))
    found = [e.message for e in events if isinstance(e, FrameEvent)]
    assert is_subsequence(messages, found)


@FAST
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 3000), max_size=20))
def test_reader_never_raises_on_random_bytes(data, cuts):
    cuts = sorted(c for c in cuts if c <= len(data))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    reader = FrameReader()
    run_reader(reader, chunks)
    assert reader.buffered < 260


@st.composite
def mutated(draw):
    _, encoded = draw(frames(max_frames=4))
    stream = bytearray(b"".join(encoded))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "duplicate", "start"]))
        pos = draw(st.integers(0, max(len(stream) - 1, 0)))
        if kind == "flip" and stream:
            stream[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del stream[pos:]
        elif kind == "insert":
            stream[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del stream[pos:pos + draw(st.integers(1, 4))]
        elif kind == "duplicate":
            stream += stream[pos:]
        else:                                   # a fake start byte with a random length
            stream[pos:pos] = bytes([0x68, draw(st.integers(0, 255))])
    return bytes(stream)


@FAST
@given(data=st.data())
def test_reader_never_raises_on_mutated_frames(data):
    stream = data.draw(mutated())
    reader = FrameReader(strict=data.draw(st.booleans()))
    events = run_reader(reader, data.draw(chunked(stream)))
    for event in events:
        if isinstance(event, FrameEvent):
            assert event.raw[0] == 0x68 and event.header.frame_type == event.raw[5]


@FAST
@given(data=st.data())
def test_decode_frame_only_raises_value_errors_on_mutations(data):
    stream = data.draw(mutated())
    with contextlib.suppress(ValueError):
        decode_frame(stream)
