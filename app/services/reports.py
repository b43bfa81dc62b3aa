"""电站报表 / 运营报表: aggregates of DailyStationStat, always within the caller's data scope."""

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from app.extensions import db
from app.models import DailyStationStat, Station
from app.security.scope import apply_scope
from app.services.clock import local_today
from app.services.money import q_hundredth

S = DailyStationStat
SUMS = (
    "order_count",
    "member_count",
    "energy",
    "electricity_fee",
    "service_fee",
    "total_amount",
    "discount_amount",
    "paid_amount",
    "occupancy_amount",
    "duration_seconds",
)


def default_range(today=None, days=30):
    today = today or local_today()  # the operator's day (TIMEZONE), not the server's
    return today - timedelta(days=days - 1), today


def parse_range(start, end, today=None):
    """(start, end, error) from ISO strings; defaults to the last 30 days; swaps a reversed range."""
    d_start, d_end = default_range(today)
    error = None
    try:
        if start:
            d_start = date.fromisoformat(start)
        if end:
            d_end = date.fromisoformat(end)
    except ValueError:
        error = "date"
        d_start, d_end = default_range(today)
    if d_start > d_end:
        d_start, d_end = d_end, d_start
    return d_start, d_end, error


def _filtered(q, start, end, station_id):
    q = apply_scope(q, S).where(S.day >= start, S.day <= end)
    if station_id:
        q = q.where(S.station_id == station_id)
    return q


def _sum_columns():
    return [func.coalesce(func.sum(getattr(S, c)), 0).label(c) for c in SUMS]


def _row(mapping):
    row = dict(mapping)
    seconds = int(row.get("duration_seconds") or 0)
    row["duration_hours"] = q_hundredth(Decimal(seconds) / 3600)
    return row


def station_summary(start, end, station_id=None):
    """One row per station: sums over the range, max connectors, mean utilisation."""
    q = (
        select(
            S.station_id,
            Station.code.label("station_code"),
            Station.name.label("station_name"),
            func.max(S.connector_count).label("connector_count"),
            func.avg(S.utilisation).label("utilisation"),
            *_sum_columns(),
        )
        .join(Station, Station.id == S.station_id)
        .group_by(S.station_id, Station.code, Station.name)
        .order_by(Station.code)
    )
    rows = [_row(r._mapping) for r in db.session.execute(_filtered(q, start, end, station_id))]
    for r in rows:
        r["utilisation"] = _percent(r["utilisation"])
    return rows


def daily_trend(start, end, station_id=None):
    """One row per day over the stations in scope."""
    q = (
        select(
            S.day,
            func.count(func.distinct(S.station_id)).label("station_count"),
            func.sum(S.connector_count).label("connector_count"),
            func.avg(S.utilisation).label("utilisation"),
            *_sum_columns(),
        )
        .group_by(S.day)
        .order_by(S.day)
    )
    rows = [_row(r._mapping) for r in db.session.execute(_filtered(q, start, end, station_id))]
    for r in rows:
        r["utilisation"] = _percent(r["utilisation"])
    return rows


def totals(rows):
    out = {c: sum((r[c] or 0) for r in rows) for c in SUMS}
    out["duration_hours"] = q_hundredth(Decimal(int(out["duration_seconds"])) / 3600)
    return out


def _percent(value):
    return q_hundredth(Decimal(str(value or 0)) * 100)


def station_choices():
    q = apply_scope(select(Station.id, Station.code, Station.name).order_by(Station.code), Station)
    return [(sid, f"{code} {name}") for sid, code, name in db.session.execute(q)]
