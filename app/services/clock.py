"""The one time module: UTC storage, local display, "today" in the operator's timezone.

Conventions (DESIGN "Money, time and identifiers"):
- every stored timestamp is a **naive UTC** ``datetime`` (:func:`utcnow`);
- people see and type times in the configured ``TIMEZONE`` (default Asia/Shanghai):
  :func:`to_local` / :func:`format_local` for display, :func:`local_to_utc` for what they typed;
- "today", a report's default range, a yyMM in a generated code: the **local** day
  (:func:`local_today`), and a local day as a UTC window :func:`day_bounds_utc` (``start <= t < end``).

Nothing else in ``app/`` reads the clock or the zone (``date.today()``, ``datetime.now()``,
``datetime.utcnow()``, ``ZoneInfo(...)``): ``tests/unit/test_money_time_modules.py`` scans for it.
Piles and T/CEC speak fixed Beijing time; that conversion is the codec's (``app/gateway/ykc/timeutil.py``).
"""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = [
    "DEFAULT_TIMEZONE", "timezone_name", "zone", "utcnow", "to_naive_utc", "to_local", "format_local",
    "local_to_utc", "local_now", "local_today", "local_date", "day_bounds_utc", "parse_iso_utc",
]

DEFAULT_TIMEZONE = "Asia/Shanghai"
_system_clock = datetime  # the one place the wall clock is read (tests freeze it here)


def timezone_name() -> str:
    """The configured ``TIMEZONE`` of the running app; the default outside an app context."""
    try:
        from flask import current_app

        return current_app.config.get("TIMEZONE") or DEFAULT_TIMEZONE
    except RuntimeError:  # no app context (pure use: codec tools, simulator, unit tests)
        return DEFAULT_TIMEZONE


@lru_cache(maxsize=32)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def zone(name: str | None = None) -> tzinfo:
    """The zone ``name`` (default: the configured ``TIMEZONE``)."""
    return _zone(name or timezone_name())


def utcnow() -> datetime:
    """Now, as a naive UTC datetime (how every timestamp is stored)."""
    return _system_clock.now(UTC).replace(tzinfo=None)


def to_naive_utc(value: datetime) -> datetime:
    """Naive values are UTC already; aware ones are converted to naive UTC."""
    return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)


def to_local(value: datetime, tz: str | tzinfo | None = None) -> datetime:
    """A stored time (naive UTC, or aware) as an aware datetime in ``tz`` (default ``TIMEZONE``)."""
    target = tz if isinstance(tz, tzinfo) else zone(tz)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(target)


def format_local(value, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """Display string of a stored time in ``TIMEZONE``; ``None`` is ``""``, anything else is as is."""
    if not isinstance(value, datetime):
        return "" if value is None else value
    return to_local(value).strftime(fmt)


def local_to_utc(value: datetime, tz: str | tzinfo | None = None) -> datetime:
    """What a person typed (naive = wall-clock time in ``tz``, default ``TIMEZONE``; aware as is) ->
    naive UTC for storage."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz if isinstance(tz, tzinfo) else zone(tz))
    return value.astimezone(UTC).replace(tzinfo=None)


def local_now(now: datetime | None = None) -> datetime:
    """Now (or ``now``, naive UTC) as an aware datetime in ``TIMEZONE``."""
    return to_local(now if now is not None else utcnow())


def local_date(value: datetime) -> date:
    """The local (``TIMEZONE``) calendar day of a stored time."""
    return to_local(value).date()


def local_today(now: datetime | None = None) -> date:
    """Today in the operator's timezone (``now``: naive UTC, for a fixed clock)."""
    return local_now(now).date()


def day_bounds_utc(day: date, tz: str | tzinfo | None = None) -> tuple[datetime, datetime]:
    """The local day ``day`` as naive UTC ``(start, end)``: ``start <= t < end`` (the next local midnight)."""
    start = datetime.combine(day, time())
    return local_to_utc(start, tz), local_to_utc(start + timedelta(days=1), tz)


def parse_iso_utc(text) -> datetime | None:
    """An ISO 8601 string (``Z`` allowed; naive = UTC) -> naive UTC; ``None`` when empty or unreadable."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return to_naive_utc(value)
