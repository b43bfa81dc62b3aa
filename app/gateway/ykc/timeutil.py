"""Time helpers: piles speak Beijing local time (UTC+8, no DST); frames hold naive UTC datetimes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from app.services.clock import to_naive_utc, utcnow  # the one time module (naive UTC)

__all__ = [
    "BEIJING_OFFSET",
    "BEIJING_TZ",
    "beijing_to_utc",
    "to_naive_utc",
    "transaction_serial",
    "utc_to_beijing",
    "utcnow",
]

BEIJING_OFFSET = timedelta(hours=8)
BEIJING_TZ = timezone(BEIJING_OFFSET, "CST")


def beijing_to_utc(local: datetime) -> datetime:
    """Beijing wall-clock time (naive, or aware in any zone) -> naive UTC."""
    if local.tzinfo is not None:
        return to_naive_utc(local)
    return local - BEIJING_OFFSET


def utc_to_beijing(value: datetime) -> datetime:
    """Naive UTC (or aware) datetime -> naive Beijing wall-clock time."""
    return to_naive_utc(value) + BEIJING_OFFSET


def transaction_serial(pile_code: str, gun: str, when: datetime, counter: int) -> str:
    """Build a 32-digit transaction serial: pile(14) + gun(2) + Beijing yyMMddHHmmss(12) + counter(4).

    ``when`` is naive UTC (or aware); ``counter`` is taken modulo 10000.
    """
    pile = pile_code.rjust(14, "0")
    gun_code = gun.rjust(2, "0")
    if len(pile) != 14 or len(gun_code) != 2 or not (pile + gun_code).isdigit():
        raise ValueError("pile code must be <= 14 digits and gun <= 2 digits")
    stamp = utc_to_beijing(when).strftime("%y%m%d%H%M%S")
    return f"{pile}{gun_code}{stamp}{counter % 10000:04d}"
