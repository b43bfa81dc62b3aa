"""FrameReader: split/merged frames, garbage, resync, wrong length bytes, counters."""

from datetime import datetime
from decimal import Decimal

from app.gateway.ykc import (
    CRC_HIGH_FIRST,
    DECODE_ERROR,
    GARBAGE,
    INTERNAL_ERROR,
    ErrorEvent,
    FrameEvent,
    FrameReader,
    Heartbeat,
    HeartbeatAck,
    RawFrame,
    RealtimeData,
    TimeSync,
    TransactionRecord,
    encode_frame,
)

PILE = "32010600019236"
HEARTBEAT = encode_frame(Heartbeat(pile_code=PILE, gun="01"), 1)
REALTIME = encode_frame(
    RealtimeData(transaction_serial="3" * 32, pile_code=PILE, gun="02", status=3, energy=Decimal("1.5")), 2,
    crc_order=CRC_HIGH_FIRST,
)
RECORD = encode_frame(
    TransactionRecord(pile_code=PILE, gun="01", start_time=datetime(2024, 5, 1, 1, 2, 3)), 3
)
FRAMES = [HEARTBEAT, REALTIME, RECORD]


def frames_of(events):
    return [e for e in events if isinstance(e, FrameEvent)]


def errors_of(events, kind=None):
    return [e for e in events if isinstance(e, ErrorEvent) and (kind is None or e.kind == kind)]


def feed_all(reader, chunks):
    events = []
    for chunk in chunks:
        events += reader.feed(chunk)
    return events


def test_byte_by_byte():
    reader = FrameReader()
    stream = b"".join(FRAMES)
    events = feed_all(reader, [stream[i:i + 1] for i in range(len(stream))])
    assert [e.raw for e in events] == FRAMES
    assert reader.frames == 3 and reader.garbage_bytes == 0 and reader.buffered == 0


def test_merged_frames_in_one_chunk():
    events = FrameReader().feed(b"".join(FRAMES * 3))
    assert [e.raw for e in events] == FRAMES * 3
    assert isinstance(events[1].message, RealtimeData) and events[1].header.crc_order == CRC_HIGH_FIRST


def test_garbage_between_frames_is_reported_and_counted():
    junk = b"\x00\xff\x68\x05garbage\x68"
    reader = FrameReader()
    events = reader.feed(junk + HEARTBEAT + junk + REALTIME + junk)
    assert [e.raw for e in frames_of(events)] == [HEARTBEAT, REALTIME]
    garbage = errors_of(events, GARBAGE)
    assert [g.size for g in garbage] == [len(junk), len(junk), len(junk) - 1]
    assert garbage[0].raw == junk
    # the trailing junk ends with 0x68 waiting for a header
    assert reader.garbage_bytes == 2 * len(junk) + len(junk) - 1 and reader.buffered == 1
    assert reader.bytes_received == reader.garbage_bytes + len(HEARTBEAT) + len(REALTIME) + reader.buffered


def test_corrupted_frame_is_skipped_and_next_frame_found():
    broken = bytearray(REALTIME)
    broken[20] ^= 0x40
    events = FrameReader().feed(bytes(broken) + HEARTBEAT)
    assert [e.raw for e in frames_of(events)] == [HEARTBEAT]
    assert sum(e.size for e in errors_of(events, GARBAGE)) == len(broken)


def test_stray_start_byte_does_not_hold_back_complete_frames():
    # 0x68 0xF0 announces a 244-byte frame; the heartbeat after it must still come out at once
    reader = FrameReader()
    events = reader.feed(b"\x68\xf0\x00\x00\x00\x03" + HEARTBEAT)
    assert [e.raw for e in frames_of(events)] == [HEARTBEAT]
    assert reader.buffered == 0
    without = FrameReader(lookahead=False)
    assert frames_of(without.feed(b"\x68\xf0\x00\x00\x00\x03" + HEARTBEAT)) == []
    assert without.buffered == 6 + len(HEARTBEAT)


def test_incomplete_frame_waits():
    reader = FrameReader()
    assert reader.feed(RECORD[:100]) == []
    assert reader.buffered == 100
    assert [e.raw for e in reader.feed(RECORD[100:])] == [RECORD]


def test_wrong_length_byte_with_known_fixed_size_is_tolerated():
    ack = encode_frame(HeartbeatAck(pile_code=PILE, gun="01"), b"\x25\xd3")
    wrong = ack[:1] + b"\x09" + ack[2:]                # JCPP sample style: L=0x09 instead of 0x0D
    reader = FrameReader()
    events = feed_all(reader, [wrong[:13], wrong[13:] + HEARTBEAT])
    assert [e.raw for e in events] == [wrong, HEARTBEAT]
    assert events[0].header.length_mismatch and events[0].header.length == 9
    assert reader.length_mismatches == 1


def test_decode_error_does_not_harm_following_frames():
    bad = encode_frame(RawFrame(0x03, b"\x01\x02"), 9)   # heartbeat type with a 2-byte body
    reader = FrameReader()
    events = reader.feed(bad + HEARTBEAT)
    assert [(type(e), e.raw) for e in events] == [(ErrorEvent, bad), (FrameEvent, HEARTBEAT)]
    assert events[0].kind == DECODE_ERROR and events[0].header.frame_type == 0x03
    assert reader.decode_errors == 1 and reader.frames == 1


def test_unknown_type_yields_raw_frame():
    unknown = encode_frame(RawFrame(0x7E, b"hello"), 1)
    reader = FrameReader()
    (event,) = reader.feed(unknown)
    assert event.message == RawFrame(0x7E, b"hello")
    assert reader.unknown_frames == 1


def test_lenient_reader_ignores_trailing_body_bytes():
    longer = encode_frame(RawFrame(0x03, Heartbeat(pile_code=PILE, gun="01").encode() + b"\x00\x00"), 4)
    assert errors_of(FrameReader().feed(longer), DECODE_ERROR)
    (event,) = FrameReader(strict=False).feed(longer)
    assert event.message == Heartbeat(pile_code=PILE, gun="01")


def test_max_frame_size():
    reader = FrameReader(max_frame_size=100)
    events = reader.feed(RECORD + HEARTBEAT)               # RECORD is 166 bytes
    assert [e.raw for e in frames_of(events)] == [HEARTBEAT]
    assert reader.garbage_bytes == len(RECORD)


def test_bad_encryption_byte_is_garbage():
    frame = bytearray(HEARTBEAT)
    frame[4] = 0x07
    reader = FrameReader()
    assert frames_of(reader.feed(bytes(frame))) == []
    assert reader.garbage_bytes == len(frame)


def test_junk_only_and_never_raises():
    reader = FrameReader()
    reader.feed(bytes(range(256)) * 4)
    assert reader.junk_only() and reader.frames == 0
    events = reader.feed(None)                              # not even bytes: reported, not raised
    assert errors_of(events, INTERNAL_ERROR)
    assert [e.raw for e in frames_of(reader.feed(HEARTBEAT))] == [HEARTBEAT]
    assert not reader.junk_only()


def test_garbage_sample_is_capped():
    events = FrameReader(garbage_sample=8).feed(b"\x00" * 1000)
    (event,) = events
    assert event.size == 1000 and event.raw == bytes(8)


def test_reader_is_callable_and_resettable():
    reader = FrameReader()
    assert reader(HEARTBEAT[:5]) == []
    reader.reset()
    assert reader.buffered == 0
    sync = encode_frame(TimeSync(pile_code=PILE, current_time=datetime(2024, 12, 18, 9, 15, 30)), 1)
    assert [e.raw for e in reader(sync)] == [sync]


def test_repeated_bodies_are_decoded_once_and_keep_their_own_header():
    """A connection's reader remembers decoded bodies: an idle gun's 0x13 or a heartbeat repeated with a
    new sequence number gets the same message object, with the header (sequence) of its own frame."""
    reader = FrameReader(repeats=4)
    first = frames_of(reader.feed(encode_frame(Heartbeat(pile_code=PILE, gun="01"), 7)))[0]
    again = frames_of(reader.feed(encode_frame(Heartbeat(pile_code=PILE, gun="01"), 8)))[0]
    other = frames_of(reader.feed(encode_frame(Heartbeat(pile_code=PILE, gun="02"), 9)))[0]
    assert again.message is first.message
    assert (first.header.seq, again.header.seq) == (7, 8)
    assert again.header == first.header.__class__(**{**first.header.__dict__, "seq": 8,
                                                   "seq_bytes": (8).to_bytes(2, "little")})
    assert other.message is not first.message and other.message.gun == "02"
    assert reader.frames == 3
    plain = FrameReader()                                  # without ``repeats`` every frame is decoded
    a, b = (frames_of(plain.feed(HEARTBEAT))[0], frames_of(plain.feed(HEARTBEAT))[0])
    assert a.message == b.message and a.message is not b.message


def test_repeat_memory_is_bounded_and_changed_bodies_are_decoded():
    reader = FrameReader(repeats=2)
    msgs = [frames_of(reader.feed(encode_frame(RealtimeData(pile_code=PILE, gun="01", status=2, soc=n), n)))[0].message
            for n in range(5)]
    assert [m.soc for m in msgs] == [0, 1, 2, 3, 4]
    assert len(reader._decoded) <= 2
    frame = bytearray(encode_frame(RealtimeData(pile_code=PILE, gun="01", status=2, soc=4), 9))
    assert frames_of(reader.feed(bytes(frame)))[0].message is msgs[-1]
