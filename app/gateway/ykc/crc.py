"""CRC-16/MODBUS as used by the YKC frame check field."""

from __future__ import annotations

__all__ = ["CRC_HIGH_FIRST", "CRC_LOW_FIRST", "crc16_modbus"]

#: Spec order: low byte of the CRC value first (Modbus RTU).
CRC_LOW_FIRST = "low_first"
#: Seen on some piles (e.g. JCPP samples): high byte first.
CRC_HIGH_FIRST = "high_first"


def _build_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _build_table()


def crc16_modbus(data: bytes | bytearray | memoryview, start: int = 0, end: int | None = None) -> int:
    """Return the CRC-16/MODBUS value (poly 0xA001 reflected, init 0xFFFF) of ``data[start:end]``."""
    crc = 0xFFFF
    table = _TABLE
    for byte in memoryview(data)[start:end]:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc
