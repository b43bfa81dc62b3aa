"""Order numbers and YKC transaction serials.

- ``new_order_no`` → ``yyMMdd`` (Beijing date) + 7 digits. The 7 digits come from one Redis
  counter per Beijing day (``INCR``), shared by charge orders and occupancy orders, so both kinds
  draw from one sequence. When the day's counter does not exist yet (first number of the day, or
  Redis lost its data) it is seeded from the highest number of that day already in the database
  (``SET NX``, so concurrent seeders agree). The database unique constraints stay the final guard:
  a number that is somehow taken already is skipped.
- ``new_serial`` → the 32-digit YKC transaction serial (pile 14 + gun 2 + Beijing yyMMddHHmmss +
  4-digit counter), with a per-pile Redis counter (mod 10000) for the last 4 digits.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from app.extensions import db, get_redis
from app.gateway.ykc.timeutil import transaction_serial, utc_to_beijing
from app.models.base import utcnow

ORDER_NO_DIGITS = 7
ORDER_NO_MAX = 10**ORDER_NO_DIGITS - 1
COUNTER_TTL = 3 * 24 * 3600


class OrderNumberError(RuntimeError):
    pass


def _day_prefix(now_utc: datetime) -> str:
    return utc_to_beijing(now_utc).strftime("%y%m%d")


def _db_max_sequence(prefix: str, session) -> int:
    from app.models import ChargeOrder, OccupancyOrder

    best = 0
    for model in (ChargeOrder, OccupancyOrder):
        value = session.scalar(select(func.max(model.order_no)).where(model.order_no.like(f"{prefix}%"),
                                                                       func.length(model.order_no) == 13))
        if value and value[6:].isdigit():
            best = max(best, int(value[6:]))
    return best


def _taken(order_no: str, session) -> bool:
    from app.models import ChargeOrder, OccupancyOrder

    return any(session.scalar(select(model.id).where(model.order_no == order_no).limit(1)) is not None
               for model in (ChargeOrder, OccupancyOrder))


def new_order_no(now_utc: datetime | None = None, session=None) -> str:
    """A fresh order number ``yyMMdd`` + 7 digits for the Beijing day of ``now_utc`` (naive UTC)."""
    session = session or db.session
    prefix = _day_prefix(now_utc or utcnow())
    redis = get_redis()
    key = f"cpms:order_no:{prefix}"
    if not redis.exists(key):
        redis.set(key, _db_max_sequence(prefix, session), nx=True, ex=COUNTER_TTL)
    for _ in range(5):
        n = int(redis.incr(key))
        if n == 1:
            redis.expire(key, COUNTER_TTL)
        if n > ORDER_NO_MAX:
            raise OrderNumberError(f"order numbers of {prefix} exhausted")
        order_no = f"{prefix}{n:0{ORDER_NO_DIGITS}d}"
        if not _taken(order_no, session):
            return order_no
        # Redis counter behind the database (restored backup): jump past what the database holds.
        redis.set(key, max(n, _db_max_sequence(prefix, session)), ex=COUNTER_TTL)
    raise OrderNumberError(f"could not allocate an order number for {prefix}")


def new_serial(pile_code: str, gun_no: int | str, now: datetime | None = None) -> str:
    """The order's 32-digit YKC transaction serial (``now`` naive UTC; Beijing time in the serial)."""
    counter = int(get_redis().incr(f"cpms:serial:{pile_code}"))
    gun = f"{int(gun_no):02d}" if str(gun_no).isdigit() else str(gun_no)
    return transaction_serial(str(pile_code), gun, now or utcnow(), counter)
