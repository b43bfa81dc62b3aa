"""Pieces of the per-frame path: the per-second time stamp, the raw reply encoder, the reader's
one-whole-frame fast path and the lazily built header."""

from __future__ import annotations

import time
from datetime import datetime

from app.gateway.state_writer import SecondStamp, iso
from app.gateway.ykc import (
    CRC_HIGH_FIRST,
    FrameReader,
    Heartbeat,
    RawFrame,
    decode_frame,
    encode_frame,
    encode_raw,
    utcnow,
)

PILE = "32010200000001"


def test_the_stamp_is_the_current_second_and_moves_on_with_it():
    stamp = SecondStamp()
    before = iso(utcnow())
    first = stamp()
    assert before <= first <= iso(utcnow())
    assert datetime.fromisoformat(first).microsecond == 0
    while stamp() == first:                      # the next second, read again once it began
        time.sleep(0.01)
    assert stamp() > first and stamp() <= iso(utcnow())


def test_encode_raw_is_encode_frame_of_a_raw_frame():
    for frame_type, seq, body in ((0x04, b"\x01\x02", PILE.encode()[:7] + b"\x01\x00"), (0x99, b"\xff\xff", b""),
                                  (0x13, b"\x00\x00", bytes(range(60)))):
        assert encode_raw(frame_type, seq, body) == encode_frame(RawFrame(frame_type, body), seq)


def test_a_whole_frame_per_read_gives_the_same_events_as_a_stream():
    frames = [encode_frame(Heartbeat(pile_code=PILE, gun="01"), n) for n in range(5)]
    frames.append(encode_frame(Heartbeat(pile_code=PILE, gun="02"), 9, crc_order=CRC_HIGH_FIRST))
    one_by_one = FrameReader(repeats=4)
    whole = [e for f in frames for e in one_by_one.feed(f)]
    streamed = FrameReader(repeats=4).feed(b"".join(frames))
    assert [(e.raw, e.message, e.header) for e in whole] == [(e.raw, e.message, e.header) for e in streamed]
    for event, frame in zip(whole, frames, strict=True):
        header, msg = decode_frame(frame)
        assert (event.header, event.message, event.frame_type) == (header, msg, frame[5])
    assert one_by_one.frames == 6 and one_by_one.bytes_received == sum(map(len, frames))
    split = FrameReader()                        # a frame cut in two still goes through the buffer
    assert split.feed(frames[0][:5]) == [] and [e.raw for e in split.feed(frames[0][5:])] == [frames[0]]
