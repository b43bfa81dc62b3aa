"""Declarative field codecs and the ``Record`` base that packs dataclass fields in declaration order.

A frame body is described once, as dataclass fields whose metadata carries a codec::

    @record
    class Example(Record):
        pile_code: str = field(BCD(7))
        amount: Decimal = field(Scaled(4, 4))

``Example.decode(body)`` / ``Example(...).encode()`` are then derived from the field list.
"""

from __future__ import annotations

import dataclasses
import operator
import struct
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

from .errors import DecodeError, EncodeError
from .timeutil import BEIJING_OFFSET, to_naive_utc

__all__ = [
    "BCD",
    "Ascii",
    "Bits",
    "CP56Time",
    "Codec",
    "CountedList",
    "FixedList",
    "Offset",
    "PrefixedAscii",
    "Raw",
    "Record",
    "RemainderList",
    "Scaled",
    "Struct",
    "UInt",
    "field",
    "record",
]

R = TypeVar("R", bound="Record")
_HEX_DIGITS = "0123456789abcdefABCDEF"


def _check_int(value: Any, high: int, low: int = 0) -> int:
    try:
        number = operator.index(value)
    except TypeError:
        raise EncodeError(f"expected an int, got {type(value).__name__}") from None
    if not low <= number <= high:
        raise EncodeError(f"{number} out of range {low}..{high}")
    return number


def _scaled_to_raw(value: Any, decimals: int, offset: Decimal, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise EncodeError(f"expected Decimal or int, got {type(value).__name__}")
    raw = (Decimal(value) - offset).scaleb(decimals)
    if not raw.is_finite() or raw != raw.to_integral_value():
        raise EncodeError(f"{value} is not a multiple of 1e-{decimals}")
    return _check_int(int(raw), high)


def _text_bytes(value: Any) -> bytes:
    if not isinstance(value, str):
        raise EncodeError(f"expected str, got {type(value).__name__}")
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        raise EncodeError(f"{value!r} is not single-byte text") from None


class Codec:
    """Reads one value at an offset / encodes one value. ``size`` is None for variable-size codecs."""

    size: int | None = None
    min_size: int = 0

    def read(self, buf: bytes, off: int) -> tuple[Any, int]:
        raise NotImplementedError

    def encode(self, value: Any) -> bytes:
        raise NotImplementedError

    @property
    def default(self) -> Any:
        """The value that all-zero bytes decode to."""
        return self.read(bytes(self.min_size), 0)[0]

    def _need(self, buf: bytes, end: int) -> None:
        if end > len(buf):
            raise DecodeError(f"{type(self).__name__}: body truncated ({len(buf)} < {end} bytes)")


class UInt(Codec):
    """Unsigned binary integer ("BIN"), little-endian unless told otherwise."""

    def __init__(self, size: int, byteorder: str = "little") -> None:
        self.size = self.min_size = size
        self.byteorder = byteorder
        self.max = (1 << (8 * size)) - 1

    def read(self, buf: bytes, off: int) -> tuple[Any, int]:
        end = off + self.size
        return int.from_bytes(buf[off:end], self.byteorder), end

    def encode(self, value: Any) -> bytes:
        return _check_int(value, self.max).to_bytes(self.size, self.byteorder)


class Offset(UInt):
    """Integer with an additive offset: value = raw + offset (e.g. temperature raw - 50)."""

    def __init__(self, size: int, offset: int) -> None:
        super().__init__(size)
        self.offset = offset

    def read(self, buf: bytes, off: int) -> tuple[Any, int]:
        end = off + self.size
        return int.from_bytes(buf[off:end], "little") + self.offset, end

    def encode(self, value: Any) -> bytes:
        raw = _check_int(value, self.max + self.offset, self.offset) - self.offset
        return raw.to_bytes(self.size, "little")


class Scaled(UInt):
    """Fixed-point decimal: value = raw * 10**-decimals + offset, as ``decimal.Decimal``."""

    def __init__(self, size: int, decimals: int, offset: int = 0) -> None:
        super().__init__(size)
        self.decimals = decimals
        self.offset = Decimal(offset)

    def read(self, buf: bytes, off: int) -> tuple[Any, int]:
        end = off + self.size
        value = Decimal(int.from_bytes(buf[off:end], "little")).scaleb(-self.decimals)
        return (value + self.offset if self.offset else value), end

    def encode(self, value: Any) -> bytes:
        return _scaled_to_raw(value, self.decimals, self.offset, self.max).to_bytes(self.size, "little")


class BCD(Codec):
    """Packed BCD kept as an upper-case hex string (A-F survive); encoding left-pads with zeros."""

    def __init__(self, size: int) -> None:
        self.size = self.min_size = size

    def read(self, buf: bytes, off: int) -> tuple[Any, int]:
        end = off + self.size
        return buf[off:end].hex().upper(), end

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, str) or len(value) > 2 * self.size or value.strip(_HEX_DIGITS):
            raise EncodeError(f"expected up to {2 * self.size} hex digits, got {value!r}")
        return bytes.fromhex(value.rjust(2 * self.size, "0"))


class Ascii(Codec):
    """Fixed-length text, zero-padded on the right; ``reverse`` for byte-reversed fields (VIN in 0x31/0xA1).

    Bytes are mapped 1:1 (latin-1) so that no input can fail to decode; trailing NULs are dropped.
    """

    def __init__(self, size: int, reverse: bool = False) -> None:
        self.size = self.min_size = size
        self.reverse = reverse

    def read(self, buf: bytes, off: int) -> tuple[Any, int]:
        end = off + self.size
        raw = bytes(buf[off:end])
        if self.reverse:
            return raw[::-1].decode("latin-1").strip("\0"), end
        return raw.decode("latin-1").rstrip("\0"), end

    def encode(self, value: Any) -> bytes:
        raw = _text_bytes(value)
        if len(raw) > self.size:
            raise EncodeError(f"{value!r} longer than {self.size} bytes")
        raw = raw.ljust(self.size, b"\0")
        return raw[::-1] if self.reverse else raw


class PrefixedAscii(Codec):
    """Text preceded by its byte length (BIN, ``len_size`` bytes)."""

    def __init__(self, len_size: int = 1) -> None:
        self.length = UInt(len_size)
        self.min_size = len_size

    def read(self, buf: bytes, off: int) -> tuple[Any, int]:
        self._need(buf, off + self.min_size)
        count, off = self.length.read(buf, off)
        end = off + count
        self._need(buf, end)
        return bytes(buf[off:end]).decode("latin-1"), end

    def encode(self, value: Any) -> bytes:
        raw = _text_bytes(value)
        return self.length.encode(len(raw)) + raw


class Raw(Codec):
    """Opaque bytes (physical card numbers, reserved areas). ``align_right`` left-pads short values."""

    def __init__(self, size: int, align_right: bool = False) -> None:
        self.size = self.min_size = size
        self.align_right = align_right

    def read(self, buf: bytes, off: int) -> tuple[Any, int]:
        end = off + self.size
        return bytes(buf[off:end]), end

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise EncodeError(f"expected bytes, got {type(value).__name__}")
        raw = bytes(value)
        if len(raw) == self.size or (self.align_right and len(raw) < self.size):
            return raw.rjust(self.size, b"\0")
        raise EncodeError(f"expected {self.size} bytes, got {len(raw)}")


class CP56Time(Codec):
    """CP56Time2a in Beijing local time <-> naive UTC ``datetime``.

    All-zero bytes and impossible calendar values decode to None; None encodes as seven zero bytes.
    Reserved / IV / SU / weekday bits are masked on decode and written as zero.
    """

    size = min_size = 7

    def read(self, buf: bytes, off: int) -> tuple[Any, int]:
        end = off + 7
        b = buf[off:end]
        if len(b) < 7:
            raise DecodeError("CP56Time2a truncated")
        if not any(b):
            return None, end
        millis = b[0] | (b[1] << 8)
        try:
            local = datetime(
                2000 + (b[6] & 0x7F), b[5] & 0x0F, b[4] & 0x1F, b[3] & 0x1F, b[2] & 0x3F,
                millis // 1000, (millis % 1000) * 1000,
            )
        except ValueError:
            return None, end
        return local - BEIJING_OFFSET, end

    def encode(self, value: Any) -> bytes:
        if value is None:
            return bytes(7)
        if not isinstance(value, datetime):
            raise EncodeError(f"expected datetime or None, got {type(value).__name__}")
        local = to_naive_utc(value) + BEIJING_OFFSET
        if not 2000 <= local.year <= 2127:
            raise EncodeError(f"{value} outside the CP56Time2a range")
        millis = local.second * 1000 + local.microsecond // 1000
        return bytes((millis & 0xFF, millis >> 8, local.minute, local.hour, local.day, local.month,
                      local.year - 2000))


class Bits(Codec):
    """A bit slot inside a little-endian group of bytes; consecutive Bits fields form one group,
    least-significant bits first, closed at each byte boundary (see ``_BitGroup``)."""

    def __init__(self, width: int, decimals: int | None = None) -> None:
        self.width = width
        self.decimals = decimals
        self.max = (1 << width) - 1

    def from_raw(self, raw: int) -> Any:
        return raw if self.decimals is None else Decimal(raw).scaleb(-self.decimals)

    def to_raw(self, value: Any) -> int:
        if self.decimals is None:
            return _check_int(value, self.max)
        return _scaled_to_raw(value, self.decimals, Decimal(0), self.max)

    @property
    def default(self) -> Any:
        return self.from_raw(0)


class _BitGroup(Codec):
    def __init__(self, slots: list[Bits]) -> None:
        self.slots = tuple(slots)
        self.size = self.min_size = sum(s.width for s in slots) // 8

    def read(self, buf: bytes, off: int) -> tuple[Any, int]:
        end = off + self.size
        raw = int.from_bytes(buf[off:end], "little")
        values = []
        for slot in self.slots:
            values.append(slot.from_raw(raw & slot.max))
            raw >>= slot.width
        return tuple(values), end

    def encode(self, value: Any) -> bytes:
        raw = shift = 0
        for slot, item in zip(self.slots, value, strict=True):
            raw |= slot.to_raw(item) << shift
            shift += slot.width
        return raw.to_bytes(self.size, "little")


class FixedList(Codec):
    """Exactly ``count`` items (e.g. the 48 half-hour rate indexes)."""

    def __init__(self, item: Codec, count: int) -> None:
        self.item = item
        self.count = count
        self.size = self.min_size = item.size * count

    def read(self, buf: bytes, off: int) -> tuple[Any, int]:
        items = []
        for _ in range(self.count):
            value, off = self.item.read(buf, off)
            items.append(value)
        return items, off

    def encode(self, value: Any) -> bytes:
        if len(value) != self.count:
            raise EncodeError(f"expected {self.count} items, got {len(value)}")
        return b"".join(self.item.encode(v) for v in value)


class CountedList(Codec):
    """A BIN count followed by that many fixed-size items."""

    def __init__(self, item: Codec, count_size: int = 1, max_items: int | None = None) -> None:
        self.item = item
        self.count = UInt(count_size)
        self.min_size = count_size
        self.max_items = self.count.max if max_items is None else max_items

    def read(self, buf: bytes, off: int) -> tuple[Any, int]:
        self._need(buf, off + self.min_size)
        count, off = self.count.read(buf, off)
        self._need(buf, off + count * self.item.size)
        items = []
        for _ in range(count):
            value, off = self.item.read(buf, off)
            items.append(value)
        return items, off

    def encode(self, value: Any) -> bytes:
        if len(value) > self.max_items:
            raise EncodeError(f"at most {self.max_items} items, got {len(value)}")
        return self.count.encode(len(value)) + b"".join(self.item.encode(v) for v in value)


class RemainderList(Codec):
    """Fixed-size items filling the rest of the body (no count field); must be the last field."""

    def __init__(self, item: Codec, max_items: int | None = None) -> None:
        self.item = item
        self.max_items = max_items

    def read(self, buf: bytes, off: int) -> tuple[Any, int]:
        count, rest = divmod(len(buf) - off, self.item.size)
        if rest or count < 0:
            raise DecodeError(f"{len(buf) - off} bytes is not a whole number of {self.item.size}-byte items")
        items = []
        for _ in range(count):
            value, off = self.item.read(buf, off)
            items.append(value)
        return items, off

    def encode(self, value: Any) -> bytes:
        if self.max_items is not None and len(value) > self.max_items:
            raise EncodeError(f"at most {self.max_items} items, got {len(value)}")
        return b"".join(self.item.encode(v) for v in value)


class Struct(Codec):
    """A nested record (list item)."""

    def __init__(self, cls: type[Record]) -> None:
        self.cls = cls
        self.size = cls.BODY_SIZE
        self.min_size = cls.MIN_BODY_SIZE

    def read(self, buf: bytes, off: int) -> tuple[Any, int]:
        return self.cls.read(buf, off)

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, self.cls):
            raise EncodeError(f"expected {self.cls.__name__}, got {type(value).__name__}")
        return value.encode()


def field(codec: Codec) -> Any:
    """Dataclass field carrying its codec; the default is what all-zero bytes decode to."""
    default = codec.default
    meta = {"codec": codec}
    if type(default).__hash__ is None:
        return dataclasses.field(default_factory=lambda: codec.default, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


Layout = tuple[tuple[Any, Codec], ...]


def _compile(fields: list[tuple[str, Codec]]) -> Layout:
    layout: list[tuple[Any, Codec]] = []
    names: list[str] = []
    slots: list[Bits] = []
    for name, codec in fields:
        if isinstance(codec, Bits):
            names.append(name)
            slots.append(codec)
            if sum(s.width for s in slots) % 8 == 0:
                layout.append((tuple(names), _BitGroup(slots)))
                names, slots = [], []
            continue
        if slots:
            raise TypeError(f"bit fields before {name!r} do not fill whole bytes")
        layout.append((name, codec))
    if slots:
        raise TypeError("trailing bit fields do not fill whole bytes")
    for _, codec in layout[:-1]:
        if isinstance(codec, RemainderList):
            raise TypeError("RemainderList must be the last field")
    return tuple(layout)


def _layout_size(layout: Layout) -> int | None:
    sizes = [codec.size for _, codec in layout]
    return None if None in sizes else sum(sizes)


_STRUCT_INTS = {1: "B", 2: "H", 4: "I", 8: "Q"}


def _flat_part(codec: Codec):
    """(struct format, conversion or None) reading ``codec`` within one ``struct.unpack_from``, or None
    when it has no flat form (lists, bit groups, times, big-endian or odd-sized integers)."""
    kind = type(codec)
    if kind in (UInt, Offset, Scaled) and codec.size in _STRUCT_INTS and codec.byteorder == "little":
        fmt = _STRUCT_INTS[codec.size]
        if kind is Offset:
            return fmt, (lambda v, o=codec.offset: v + o)
        if kind is Scaled:
            if codec.offset:
                return fmt, (lambda v, d=-codec.decimals, o=codec.offset: Decimal(v).scaleb(d) + o)
            return fmt, (lambda v, d=-codec.decimals: Decimal(v).scaleb(d))
        return fmt, None
    if kind is BCD:
        return f"{codec.size}s", (lambda v: v.hex().upper())
    if kind is Ascii:
        if codec.reverse:
            return f"{codec.size}s", (lambda v: v[::-1].decode("latin-1").strip("\0"))
        return f"{codec.size}s", (lambda v: v.decode("latin-1").rstrip("\0"))
    if kind is Raw:
        return f"{codec.size}s", None
    return None


def _flat_reader(layout: Layout):
    """(struct, names, conversions) reading a layout of flat fields in one call, or None."""
    parts = []
    for name, codec in layout:
        part = _flat_part(codec) if name.__class__ is str else None
        if part is None:
            return None
        parts.append((name, *part))
    if not parts:
        return None
    return struct.Struct("<" + "".join(fmt for _, fmt, _ in parts)), tuple(p[0] for p in parts), \
        tuple(p[2] for p in parts)


_FLAT: dict[int, tuple | None] = {}      # id(layout) -> _flat_reader(layout); layouts live as long as their classes


def _read_layout(layout: Layout, buf: bytes, off: int) -> tuple[dict[str, Any], int]:
    key = id(layout)
    flat = _FLAT.get(key, _FLAT)
    if flat is _FLAT:
        flat = _FLAT[key] = _flat_reader(layout)
    if flat is not None and len(buf) - off >= flat[0].size:
        unpacker, names, conversions = flat
        raw = unpacker.unpack_from(buf, off)
        return {name: (conv(v) if conv is not None else v)
                for name, conv, v in zip(names, conversions, raw, strict=True)}, off + unpacker.size
    values: dict[str, Any] = {}
    for name, codec in layout:
        value, off = codec.read(buf, off)
        if name.__class__ is tuple:
            values.update(zip(name, value, strict=True))
        else:
            values[name] = value
    return values, off


class Record:
    """Base class of declaratively laid-out bodies; use with the :func:`record` decorator."""

    #: Fixed body size in bytes, or None for variable-size layouts.
    BODY_SIZE: ClassVar[int | None] = None
    MIN_BODY_SIZE: ClassVar[int] = 0
    #: Known non-spec variants: body size -> {field name: codec override}.
    LEGACY_LAYOUTS: ClassVar[dict[int, dict[str, Codec]]] = {}
    _layout: ClassVar[Layout] = ()
    _alt_layouts: ClassVar[dict[int, Layout]] = {}

    @classmethod
    def read(cls: type[R], buf: bytes, off: int = 0) -> tuple[R, int]:
        """Read one record at ``off``; returns (record, end offset)."""
        values, end = _read_layout(cls._layout, buf, off)
        return cls(**values), end

    @classmethod
    def decode(cls: type[R], body: bytes, *, strict: bool = True) -> R:
        """Decode a whole body. ``strict=False`` ignores trailing bytes after the layout."""
        size, length = cls.BODY_SIZE, len(body)
        layout = cls._layout
        if size is not None and length != size:
            alt = cls._alt_layouts.get(length)
            if alt is not None:
                layout = alt
            elif strict or length < size:
                raise DecodeError(f"{cls.__name__}: body is {length} bytes, expected {size}")
        elif length < cls.MIN_BODY_SIZE:
            raise DecodeError(f"{cls.__name__}: body is {length} bytes, expected >= {cls.MIN_BODY_SIZE}")
        values, end = _read_layout(layout, body, 0)
        if end > length or (strict and end != length and size is None):
            raise DecodeError(f"{cls.__name__}: layout ends at {end}, body is {length} bytes")
        return cls(**values)

    def encode(self) -> bytes:
        """Encode the body bytes."""
        parts = []
        for name, codec in self._layout:
            value = tuple(getattr(self, n) for n in name) if name.__class__ is tuple else getattr(self, name)
            try:
                parts.append(codec.encode(value))
            except (TypeError, ValueError, OverflowError, ArithmeticError) as exc:
                raise EncodeError(f"{type(self).__name__}.{name}: {exc}") from None
        return b"".join(parts)


def record(cls: type[R]) -> type[R]:
    """Class decorator: make ``cls`` a dataclass and compile its field layout."""
    cls = dataclasses.dataclass(cls)
    fields = []
    for f in dataclasses.fields(cls):
        if "codec" not in f.metadata:
            raise TypeError(f"{cls.__name__}.{f.name} has no codec")
        fields.append((f.name, f.metadata["codec"]))
    cls._layout = _compile(fields)
    cls.BODY_SIZE = _layout_size(cls._layout)
    cls.MIN_BODY_SIZE = sum(codec.min_size for _, codec in cls._layout)
    alt_layouts = {}
    for size, overrides in cls.LEGACY_LAYOUTS.items():
        alt = _compile([(name, overrides.get(name, codec)) for name, codec in fields])
        if _layout_size(alt) != size:
            raise TypeError(f"{cls.__name__}: legacy layout for {size} bytes has another size")
        alt_layouts[size] = alt
    cls._alt_layouts = alt_layouts
    return cls
