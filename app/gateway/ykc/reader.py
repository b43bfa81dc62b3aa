"""Stream reassembler: bytes from a TCP connection in, decoded frames and error events out."""

from __future__ import annotations

from dataclasses import dataclass

from .crc import CRC_LOW_FIRST
from .errors import DecodeError
from .frame import (
    HEADER_SIZE,
    MAX_FRAME_SIZE,
    MIN_FRAME_SIZE,
    START,
    Header,
    _decode_checked,
    check_crc,
    expected_frame_size,
    frame_header,
)
from .messages import MESSAGE_TYPES, Message, RawFrame

__all__ = ["DECODE_ERROR", "GARBAGE", "INTERNAL_ERROR", "ErrorEvent", "FrameEvent", "FrameReader"]

#: bytes dropped while searching for a frame
GARBAGE = "garbage"
#: a CRC-valid frame whose body does not fit its frame type
DECODE_ERROR = "decode_error"
#: the reader hit an unexpected condition and dropped its buffer
INTERNAL_ERROR = "internal_error"

_START = bytes((START,))


class FrameEvent:
    """A complete frame: ``message`` is a typed Message, or a RawFrame for unknown/encrypted types;
    ``raw`` the frame's bytes. Its :class:`Header` is built on first use (a per-frame path reads
    ``frame_type`` and ``raw`` only)."""

    __slots__ = ("message", "raw", "_header", "_order", "_mismatch")

    def __init__(self, header: Header | None, message: Message | RawFrame, raw: bytes,
                 order: str = CRC_LOW_FIRST, mismatch: bool = False) -> None:
        self._header = header
        self.message = message
        self.raw = raw
        self._order = order
        self._mismatch = mismatch

    @property
    def header(self) -> Header:
        header = self._header
        if header is None:
            header = self._header = frame_header(self.raw, self._order, self._mismatch)
        return header

    @property
    def frame_type(self) -> int:
        return self.raw[5]

    def __eq__(self, other) -> bool:
        if not isinstance(other, FrameEvent):
            return NotImplemented
        return (self.header, self.message, self.raw) == (other.header, other.message, other.raw)

    __hash__ = None

    def __repr__(self) -> str:
        return f"FrameEvent(header={self.header!r}, message={self.message!r}, raw={self.raw!r})"


@dataclass(frozen=True)
class ErrorEvent:
    """Something that was not a usable frame. ``size`` bytes were consumed; ``raw`` holds the frame
    (decode errors) or the first bytes of the dropped run (garbage)."""

    kind: str
    detail: str
    size: int
    raw: bytes
    header: Header | None = None


Event = FrameEvent | ErrorEvent


class FrameReader:
    """Reassemble YKC frames from arbitrary chunks of a byte stream.

    ``feed`` never raises. It scans for 0x68, waits for L+4 bytes, accepts the CRC in either byte
    order and otherwise drops one byte and resyncs. A wrong L byte is tolerated when the frame is CRC-
    valid at the fixed size of its known type. While waiting for an incomplete candidate, complete
    CRC-valid frames further on are looked for, so a stray 0x68 cannot hold back real frames.

    Counters (``frames``, ``unknown_frames``, ``decode_errors``, ``garbage_bytes``,
    ``length_mismatches``, ``bytes_received``) let a server drop connections that send junk.
    """

    def __init__(
        self,
        *,
        max_frame_size: int = MAX_FRAME_SIZE,
        strict: bool = True,
        lookahead: bool = True,
        garbage_sample: int = 64,
        repeats: int = 0,
    ) -> None:
        self.max_frame_size = max_frame_size
        # ``repeats`` > 0: remember that many decoded bodies; a frame whose type and body repeat one of
        # them (an idle gun's 0x13, a heartbeat) gets the same message object without decoding again.
        # Messages are never modified after decoding, so sharing one is safe.
        self.repeats = repeats
        self._decoded: dict[bytes, object] = {}
        self.strict = strict
        self.lookahead = lookahead
        self.garbage_sample = garbage_sample
        self._buf = bytearray()
        self._scanned_end = 0
        self._fixed_sizes = {t: size for t in MESSAGE_TYPES if (size := expected_frame_size(t)) is not None}
        self.bytes_received = 0
        self.frames = 0
        self.unknown_frames = 0
        self.decode_errors = 0
        self.garbage_bytes = 0
        self.length_mismatches = 0

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buf)

    def junk_only(self, min_bytes: int = 512) -> bool:
        """True once ``min_bytes`` arrived and not a single frame decoded."""
        return self.bytes_received >= min_bytes and self.frames == 0

    def reset(self) -> None:
        """Forget buffered bytes (counters are kept)."""
        self._buf.clear()
        self._scanned_end = 0

    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Add received bytes; return the frames and error events completed by them, in stream order."""
        events: list[Event] = []
        try:
            size = len(data)
            if not self._buf and MIN_FRAME_SIZE <= size <= self.max_frame_size and data[0] == START \
                    and data[1] + 4 == size and data[4] <= 1:
                # the common case: exactly one whole frame arrived (what the scan's own fast path takes)
                frame = bytes(data)
                order = check_crc(frame)
                if order is not None:
                    self.bytes_received += size
                    self._emit(events, frame, order, False)
                    return events
            self.bytes_received += size
            self._buf += data
            self._scan(events)
        except Exception as exc:  # never let a bad input kill the connection handler
            size = len(self._buf)
            self.garbage_bytes += size
            self.reset()
            events.append(ErrorEvent(INTERNAL_ERROR, repr(exc), size, b""))
        return events

    def __call__(self, data: bytes | bytearray | memoryview) -> list[Event]:
        return self.feed(data)

    # --- internals -------------------------------------------------------------------------------------

    def _candidates(self, buf: bytearray, pos: int) -> tuple[int, ...]:
        """Plausible frame sizes for a frame starting at ``pos`` (needs HEADER_SIZE bytes)."""
        length = buf[pos + 1]
        if length < 4 or buf[pos + 4] > 1:      # L counts seq+enc+type; enc is 0 or 1
            return ()
        primary = length + 4
        alt = self._fixed_sizes.get(buf[pos + 5])
        sizes = (primary,) if alt is None or alt == primary else (primary, alt)
        return tuple(s for s in sizes if s <= self.max_frame_size)

    def _lookahead(self, buf: bytearray, pos: int, end: int) -> int:
        """Start of the first complete CRC-valid frame after ``pos``, or -1."""
        q = buf.find(_START, pos + 1)
        while 0 <= q <= end - HEADER_SIZE:
            for size in self._candidates(buf, q):
                stop = q + size
                if self._scanned_end < stop <= end and check_crc(bytes(buf[q:stop])):
                    return q
            q = buf.find(_START, q + 1)
        self._scanned_end = end
        return -1

    def _garbage(self, events: list[Event], start: int, stop: int) -> None:
        size = stop - start
        self.garbage_bytes += size
        sample = bytes(self._buf[start:start + min(size, self.garbage_sample)])
        events.append(ErrorEvent(GARBAGE, f"dropped {size} byte(s)", size, sample))

    def _emit(self, events: list[Event], frame: bytes, order: str, mismatch: bool) -> None:
        if self.repeats and not mismatch:
            key = frame[4:-2]              # encryption flag, frame type and body (not the sequence number)
            msg = self._decoded.get(key)
            if msg is not None:
                self.frames += 1
                events.append(FrameEvent(None, msg, frame, order))
                return
        try:
            header, msg = _decode_checked(frame, order, length_mismatch=mismatch, strict=self.strict)
        except DecodeError as exc:
            self.decode_errors += 1
            events.append(ErrorEvent(DECODE_ERROR, str(exc), len(frame), frame, exc.header))
            return
        self.frames += 1
        self.length_mismatches += mismatch
        if isinstance(msg, RawFrame):
            self.unknown_frames += 1
        elif self.repeats and not mismatch:
            if len(self._decoded) >= self.repeats:
                self._decoded.clear()
            self._decoded[frame[4:-2]] = msg
        events.append(FrameEvent(header, msg, frame))

    def _scan(self, events: list[Event]) -> None:
        buf = self._buf
        end = len(buf)
        pos = 0
        junk = -1                               # start of the pending garbage run
        max_size = self.max_frame_size
        while pos < end:
            # fast path, the common case: a whole frame at pos whose L byte is right and CRC valid
            # (exactly the first candidate the general path below would try and accept)
            if buf[pos] == START and end - pos >= HEADER_SIZE and buf[pos + 4] <= 1:
                size = buf[pos + 1] + 4
                if MIN_FRAME_SIZE <= size <= max_size and pos + size <= end:
                    frame = bytes(buf[pos:pos + size])
                    order = check_crc(frame)
                    if order is not None:
                        if junk >= 0:
                            self._garbage(events, junk, pos)
                            junk = -1
                        self._emit(events, frame, order, False)
                        pos += size
                        continue
            if buf[pos] != START:
                if junk < 0:
                    junk = pos
                nxt = buf.find(_START, pos)
                pos = end if nxt < 0 else nxt
                continue
            if end - pos < HEADER_SIZE:
                break
            found = None
            waiting = False
            for size in self._candidates(buf, pos):
                if pos + size > end:
                    waiting = True
                    continue
                frame = bytes(buf[pos:pos + size])
                order = check_crc(frame)
                if order is not None:
                    found = frame, order, size != buf[pos + 1] + 4
                    break
            if found is not None:
                if junk >= 0:
                    self._garbage(events, junk, pos)
                    junk = -1
                self._emit(events, *found)
                pos += len(found[0])
                continue
            if waiting:
                nxt = self._lookahead(buf, pos, end) if self.lookahead else -1
                if nxt < 0:
                    break
            else:
                nxt = pos + 1
            if junk < 0:
                junk = pos
            pos = nxt
        if junk >= 0:
            self._garbage(events, junk, pos)
        del buf[:pos]
        self._scanned_end = max(0, self._scanned_end - pos)
