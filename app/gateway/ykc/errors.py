"""Exceptions raised by the YKC codec."""

from __future__ import annotations

__all__ = ["DecodeError", "EncodeError", "FrameError", "YkcError"]


class YkcError(ValueError):
    """Base class of every codec error."""


class FrameError(YkcError):
    """The bytes are not a well-formed frame (start byte, length, CRC)."""


class DecodeError(YkcError):
    """A well-formed frame whose body does not fit the layout of its frame type.

    ``header`` is set when the error comes from :func:`decode_frame`.
    """

    header = None


class EncodeError(YkcError):
    """A field value cannot be represented in its wire encoding."""
