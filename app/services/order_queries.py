"""Read-side queries of the order screens: totals bar, charging curve, live figures.

Every function either receives an already filtered and scoped query, or applies the data scope
itself (:func:`app.security.scope.apply_scope`): callers from custom endpoints get nothing outside
the caller's scope.
"""
from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select

from app.extensions import db
from app.models import ChargeOrder, MeterSample
from app.models.base import utcnow
from app.models.order import ACTIVE_ORDER_STATUSES
from app.security.scope import apply_scope
from app.services import clock
from app.services.clock import parse_iso_utc
from app.services.money import q_amount, q_energy

log = logging.getLogger(__name__)

CURVE_MAX_POINTS = 2000
LIVE_FIELDS = ("power", "voltage", "current", "soc", "energy", "amount")
ZERO = Decimal("0")


# ----- totals bar -------------------------------------------------------------------------------
def totals(query) -> dict:
    """订单量 / 订单金额 / 订单电费 / 订单服务费 / 订单电量 / 充电时长 of a filtered ChargeOrder query,
    in ONE aggregate statement (ordering and pagination are dropped)."""
    row = (
        query.order_by(None)
        .with_entities(
            func.count(),  # count(*): the list indexes cover every column here (index-only scan)
            func.coalesce(func.sum(ChargeOrder.total_amount), 0),
            func.coalesce(func.sum(ChargeOrder.electricity_fee), 0),
            func.coalesce(func.sum(ChargeOrder.service_fee), 0),
            func.coalesce(func.sum(ChargeOrder.energy), 0),
            func.coalesce(func.sum(ChargeOrder.duration_seconds), 0),
        )
        .one()
    )
    count, amount, electricity, service, energy, seconds = row
    return {
        "count": int(count or 0),
        "amount": q_amount(Decimal(amount or 0)),
        "electricity_fee": q_amount(Decimal(electricity or 0)),
        "service_fee": q_amount(Decimal(service or 0)),
        "energy": q_energy(Decimal(energy or 0)),
        "duration_seconds": int(seconds or 0),
    }


def duration_text(seconds) -> str:
    """Seconds as ``H:MM:SS`` (hours may exceed 24)."""
    seconds = max(int(seconds or 0), 0)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"


def totals_json(values: dict) -> dict:
    out = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in values.items()}
    out["duration"] = duration_text(values["duration_seconds"])
    return out


# ----- charging curve ---------------------------------------------------------------------------
def _num(value):
    return None if value is None else float(value)


def _iso(value: datetime | None) -> str | None:
    """Naive UTC -> ISO 8601 with Z (microseconds kept: the curve's ``after`` cursor is exact)."""
    return value.isoformat() + "Z" if value else None


def curve(order: ChargeOrder, after: datetime | None = None) -> dict:
    """Meter samples of one order (already checked to be in scope by the caller; the query is
    scoped again through the order's operator), oldest first, thinned to CURVE_MAX_POINTS."""
    stmt = (
        select(MeterSample.at, MeterSample.power, MeterSample.soc, MeterSample.voltage, MeterSample.current,
               MeterSample.energy, MeterSample.amount)
        .join(ChargeOrder, ChargeOrder.id == MeterSample.order_id)
        .where(MeterSample.order_id == order.id)
        .order_by(MeterSample.at, MeterSample.id)
    )
    stmt = apply_scope(stmt, ChargeOrder)
    if after is not None:
        stmt = stmt.where(MeterSample.at > after)
    rows = db.session.execute(stmt).all()
    step = max(1, -(-len(rows) // CURVE_MAX_POINTS))
    if step > 1:
        rows = rows[::step] + ([rows[-1]] if (len(rows) - 1) % step else [])
    return {
        "order_id": order.id,
        "status": order.status,
        "samples": [
            {"at": _iso(r.at), "local": clock.format_local(r.at), "power": _num(r.power), "soc": r.soc,
             "voltage": _num(r.voltage), "current": _num(r.current), "energy": _num(r.energy), "amount": _num(r.amount)}
            for r in rows
        ],
    }


# ----- live figures -----------------------------------------------------------------------------
def _gateway_live(orders) -> dict[str, dict]:
    """Live gun hashes from the gateway's Redis state, by connector code. Never raises: the
    database columns are the fallback."""
    codes = [o.connector.code for o in orders if o.connector is not None and o.status in ACTIVE_ORDER_STATUSES]
    if not codes:
        return {}
    try:
        from app.extensions import get_redis
        from app.services import live_state

        return live_state.live_guns(get_redis(), codes)
    except Exception as exc:  # gateway state unavailable: show what the database has
        log.debug("live gun state unavailable: %s", exc)
        return {}


def _parse_time(text) -> datetime | None:
    return parse_iso_utc(text)


def live_figures(order_ids, now: datetime | None = None) -> dict[int, dict]:
    """Latest power, voltage, current, SOC, energy, amount and duration of the given orders that
    are in the caller's scope ({order id: figures}); ids outside the scope are left out."""
    ids = sorted({int(i) for i in order_ids if str(i).isdigit()})[:200]
    if not ids:
        return {}
    stmt = apply_scope(select(ChargeOrder).where(ChargeOrder.id.in_(ids)), ChargeOrder)
    orders = db.session.execute(stmt).scalars().all()
    gateway = _gateway_live(orders)
    now = now or utcnow()
    out = {}
    for o in orders:
        figures = {
            "power": _num(o.live_power), "voltage": _num(o.live_voltage), "current": _num(o.live_current),
            "soc": o.live_soc, "energy": _num(o.live_energy if o.live_energy is not None else o.energy),
            "amount": _num(o.live_amount if o.live_amount is not None else o.total_amount),
            "remaining_minutes": o.live_remaining_minutes, "updated_at": _iso(o.live_updated_at),
        }
        gun = gateway.get(o.connector.code) if o.connector is not None else None
        if gun and o.serial and gun.get("serial") == o.serial:
            at = _parse_time(gun.get("updated_at"))
            if at is not None and (o.live_updated_at is None or at >= o.live_updated_at):
                for key in LIVE_FIELDS:
                    if gun.get(key) not in (None, ""):
                        figures[key] = int(gun[key]) if key == "soc" else float(gun[key])
                if gun.get("remaining_minutes") not in (None, ""):
                    figures["remaining_minutes"] = int(gun["remaining_minutes"])
                figures["updated_at"] = _iso(at)
        if o.status in ACTIVE_ORDER_STATUSES and o.started_at:
            seconds = int((now - o.started_at).total_seconds())
        else:
            seconds = o.duration_seconds or 0
        figures["duration_seconds"] = max(seconds, 0)
        figures["duration"] = duration_text(seconds)
        figures["status"] = o.status
        out[o.id] = figures
    return out
