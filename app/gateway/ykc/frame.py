"""Frame envelope: ``68 L seq(2) enc type body CRC(2)``; encode_frame / decode_frame."""

from __future__ import annotations

from dataclasses import dataclass

from .crc import CRC_HIGH_FIRST, CRC_LOW_FIRST, crc16_modbus
from .errors import DecodeError, EncodeError, FrameError
from .messages import MESSAGE_TYPES, Message, RawFrame

__all__ = [
    "HEADER_SIZE",
    "MAX_BODY_SIZE",
    "MAX_FRAME_SIZE",
    "MIN_FRAME_SIZE",
    "START",
    "Header",
    "check_crc",
    "decode_frame",
    "encode_frame",
    "encode_raw",
    "encode_reply",
    "expected_frame_size",
]

START = 0x68
HEADER_SIZE = 6                 # start, L, seq(2), enc, type
MIN_FRAME_SIZE = 8              # header + CRC, empty body
MAX_BODY_SIZE = 255 - 4         # L is one byte and counts seq + enc + type
MAX_FRAME_SIZE = 255 + 4


@dataclass(frozen=True)
class Header:
    """Envelope of a decoded frame."""

    frame_type: int
    seq: int                    # the two sequence bytes read little-endian
    seq_bytes: bytes            # as received: echo these in the reply
    encryption: int             # 0 plain, 1 3DES (body not decrypted)
    length: int                 # L byte as received
    body_size: int
    crc_order: str              # CRC_LOW_FIRST (spec) or CRC_HIGH_FIRST
    length_mismatch: bool = False   # L byte wrong; frame recovered from the type's fixed body size

    @property
    def seq_big_endian(self) -> int:
        """The sequence bytes read big-endian (how some implementations count)."""
        return int.from_bytes(self.seq_bytes, "big")


def expected_frame_size(frame_type: int) -> int | None:
    """Total frame size for a fixed-size known frame type, else None."""
    cls = MESSAGE_TYPES.get(frame_type)
    if cls is None or cls.BODY_SIZE is None:
        return None
    return cls.BODY_SIZE + MIN_FRAME_SIZE


def check_crc(frame: bytes) -> str | None:
    """Which CRC byte order the frame's last two bytes match (checked over ``frame[2:-2]``), or None."""
    value = crc16_modbus(frame, 2, len(frame) - 2)
    low, high = frame[-2], frame[-1]
    if low == value & 0xFF and high == value >> 8:
        return CRC_LOW_FIRST
    if high == value & 0xFF and low == value >> 8:
        return CRC_HIGH_FIRST
    return None


def _seq_bytes(seq: int | bytes | bytearray) -> bytes:
    if isinstance(seq, (bytes, bytearray)):
        if len(seq) != 2:
            raise EncodeError("seq bytes must be exactly 2 bytes")
        return bytes(seq)
    if isinstance(seq, int) and 0 <= seq <= 0xFFFF:
        return seq.to_bytes(2, "little")
    raise EncodeError(f"seq must be 0..65535 or 2 bytes, got {seq!r}")


def encode_frame(msg: Message | RawFrame, seq: int | bytes, *, crc_order: str = CRC_LOW_FIRST) -> bytes:
    """Build a complete frame.

    ``seq`` is an int (written little-endian, for platform-initiated frames) or the two raw sequence
    bytes of the request being answered (copied verbatim). The CRC is written low byte first as the
    spec says; ``crc_order=CRC_HIGH_FIRST`` exists for simulating piles that do it the other way.
    """
    if crc_order not in (CRC_LOW_FIRST, CRC_HIGH_FIRST):
        raise EncodeError(f"unknown CRC order {crc_order!r}")
    body = msg.encode()
    if len(body) > MAX_BODY_SIZE:
        raise EncodeError(f"body of {len(body)} bytes does not fit the one-byte length field")
    frame_type = msg.frame_type
    if not 0 <= frame_type <= 0xFF:
        raise EncodeError(f"bad frame type {frame_type!r}")
    head = bytes((START, len(body) + 4)) + _seq_bytes(seq) + bytes((0, frame_type))
    frame = head + body
    value = crc16_modbus(frame, 2)
    if crc_order == CRC_HIGH_FIRST:
        return frame + value.to_bytes(2, "big")
    return frame + value.to_bytes(2, "little")


def encode_raw(frame_type: int, seq_bytes: bytes, body: bytes) -> bytes:
    """:func:`encode_frame` of ``RawFrame(frame_type, body)`` with the request's two sequence bytes and
    the CRC low byte first, without the checks (for a reply built on a per-frame path from bytes
    already validated: a type byte, at most MAX_BODY_SIZE bytes of body)."""
    frame = b"%c%c%b\x00%c%b" % (START, len(body) + 4, seq_bytes, frame_type, body)
    return frame + crc16_modbus(frame, 2).to_bytes(2, "little")


def encode_reply(msg: Message, request: Header, *, crc_order: str = CRC_LOW_FIRST) -> bytes:
    """Encode ``msg`` as the reply to ``request`` (same sequence bytes)."""
    return encode_frame(msg, request.seq_bytes, crc_order=crc_order)


def frame_header(frame: bytes, order: str, length_mismatch: bool = False) -> Header:
    """The header of a frame whose extent and CRC were already verified."""
    return Header(
        frame_type=frame[5],
        seq=frame[2] | (frame[3] << 8),
        seq_bytes=frame[2:4],
        encryption=frame[4],
        length=frame[1],
        body_size=len(frame) - HEADER_SIZE - 2,
        crc_order=order,
        length_mismatch=length_mismatch,
    )


def _decode_checked(
    frame: bytes, order: str, *, length_mismatch: bool, strict: bool
) -> tuple[Header, Message | RawFrame]:
    """Decode a frame whose extent and CRC were already verified."""
    frame_type = frame[5]
    body = frame[HEADER_SIZE:-2]
    header = frame_header(frame, order, length_mismatch)
    cls = MESSAGE_TYPES.get(frame_type)
    if cls is None or header.encryption:
        return header, RawFrame(frame_type, body)
    try:
        return header, cls.decode(body, strict=strict)
    except DecodeError as exc:
        exc.header = header
        raise
    except (ValueError, TypeError, IndexError, ArithmeticError) as exc:  # defensive: codec bug
        err = DecodeError(f"{cls.__name__}: {exc}")
        err.header = header
        raise err from exc


def decode_frame(data: bytes | bytearray, *, strict: bool = True) -> tuple[Header, Message | RawFrame]:
    """Decode exactly one complete frame.

    Accepts the CRC in either byte order. A wrong L byte is tolerated only when the frame size equals
    the fixed size of its (known) type and the CRC is valid over the whole frame (§1.11 vectors 9, 13).
    Unknown or encrypted frame types decode to :class:`RawFrame`.
    ``strict=False`` ignores trailing body bytes after a known layout instead of failing.

    Raises FrameError for a malformed envelope and DecodeError for a body that does not fit its type.
    """
    frame = bytes(data)
    if len(frame) < MIN_FRAME_SIZE:
        raise FrameError(f"frame of {len(frame)} bytes is too short")
    if frame[0] != START:
        raise FrameError(f"start byte 0x{frame[0]:02X} is not 0x68")
    order = check_crc(frame)
    if order is None:
        raise FrameError("CRC mismatch")
    mismatch = frame[1] + 4 != len(frame)
    if mismatch and expected_frame_size(frame[5]) != len(frame):
        raise FrameError(f"length byte 0x{frame[1]:02X} does not match a {len(frame)}-byte frame")
    return _decode_checked(frame, order, length_mismatch=mismatch, strict=strict)
