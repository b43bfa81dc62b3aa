"""电站报表 / 运营报表: aggregates of the daily statistics (``app/services/stats.py``), always within the
caller's data scope. Never scans orders.

Filters: date range (local days), operator, station, channel, period (``day`` / ``month``; the station
report also ``summary``: one row per station over the range). Without a channel the figures come from
``DailyStationStat``; with one, the order figures come from ``DailyChannelStat`` (that channel's
orders only) while connectors and available gun time stay the station's, and the figures that have no
channel (members, occupancy fees, failures) are left empty.

Figures shown and exported are the same values: money and energy rounded to 0.01, hours and
percentages to 0.01 (utilisation of a group = charging time / available gun time, never an average).
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from app.extensions import db
from app.models import Channel, DailyChannelStat, DailyStationStat, Station
from app.models.operator import Operator
from app.security.scope import apply_scope
from app.services.clock import local_today
from app.services.money import q_hundredth

S = DailyStationStat
C = DailyChannelStat
LEVELS = ("sharp", "peak", "flat", "valley")
ORDER_SUMS = ("order_count", "energy", "energy_sharp", "energy_peak", "energy_flat", "energy_valley",
              "electricity_fee", "service_fee", "total_amount", "discount_amount", "paid_amount",
              "duration_seconds")
STATION_SUMS = ("member_count", "occupancy_amount", "failed_count", "abnormal_count", "available_seconds")
NO_CHANNEL = ("member_count", "occupancy_amount", "failed_count", "abnormal_count")
INTS = ("order_count", "member_count", "failed_count", "abnormal_count", "connector_count", "station_count")
PERIODS = ("summary", "day", "month")


@dataclass(frozen=True)
class Filters:
    start: date
    end: date
    station_id: int | None = None
    operator_id: int | None = None
    channel_id: int | None = None
    period: str = "day"
    error: str | None = None


EARLIEST_DAY = date(2000, 1, 1)
LATEST_DAY = date(2099, 12, 31)


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
    # dates far outside any data (9999-12-31) would overflow when turned into UTC bounds
    d_start, d_end = max(d_start, EARLIEST_DAY), min(d_end, LATEST_DAY)
    if d_start > d_end:
        d_start, d_end, error = *default_range(today), "date"
    return d_start, d_end, error


def _int(value):
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def parse_filters(args, default_period="day", periods=PERIODS):
    """Filters from request arguments (a mapping of strings); unreadable values fall back to defaults."""
    start, end, error = parse_range(args.get("start"), args.get("end"))
    period = args.get("period") or default_period
    if period not in periods:
        period = default_period
    return Filters(start, end, _int(args.get("station")), _int(args.get("operator")), _int(args.get("channel")),
                   period, error)


# --- queries -------------------------------------------------------------------------------------------


def _query(model, columns, f: Filters, key):
    q = select(key.label("key"), *[func.coalesce(func.sum(getattr(model, c)), 0).label(c) for c in columns])
    q = apply_scope(q, model).where(model.day >= f.start, model.day <= f.end)
    if f.station_id:
        q = q.where(model.station_id == f.station_id)
    if f.operator_id:
        q = q.where(model.operator_id == f.operator_id)
    if model is C:
        q = q.where(C.channel_id == f.channel_id)
    return q.group_by(key)


def _grouped(f: Filters, by: str):
    """{key: raw figures} with key = station id, or (station id, day), or day."""
    keys = {"station": (S.station_id, C.station_id), "day": (S.day, C.day)}
    extra = []
    if by == "station":
        extra = [func.max(S.connector_count).label("connector_count")]
    elif by == "day":
        extra = [func.sum(S.connector_count).label("connector_count"),
                 func.count(func.distinct(S.station_id)).label("station_count")]
    out = {}
    if by == "station_day":
        q = _query(S, ORDER_SUMS + STATION_SUMS, f, S.station_id).add_columns(
            S.day, func.max(S.connector_count).label("connector_count")).group_by(S.day)
        for r in db.session.execute(q):
            m = dict(r._mapping)
            out[(m.pop("key"), m.pop("day"))] = m
        if f.channel_id:
            q = _query(C, ORDER_SUMS, f, C.station_id).add_columns(C.day).group_by(C.day)
            chan = {}
            for r in db.session.execute(q):
                m = dict(r._mapping)
                chan[(m.pop("key"), m.pop("day"))] = m
            _overlay(out, chan)
        return out
    s_key, c_key = keys[by]
    for r in db.session.execute(_query(S, ORDER_SUMS + STATION_SUMS, f, s_key).add_columns(*extra)):
        m = dict(r._mapping)
        out[m.pop("key")] = m
    if f.channel_id:
        chan = {}
        for r in db.session.execute(_query(C, ORDER_SUMS, f, c_key)):
            m = dict(r._mapping)
            chan[m.pop("key")] = m
        _overlay(out, chan)
    return out


def _overlay(out, chan):
    """Channel filter: the order figures of the channel, the station's connectors and gun time."""
    for key, row in out.items():
        fig = chan.get(key, {})
        for c in ORDER_SUMS:
            row[c] = fig.get(c, 0)
        for c in NO_CHANNEL:
            row[c] = None


def _month(day):
    return day.strftime("%Y-%m")


def _roll_up(by_day):
    """Per-day rows -> per-month rows: sums; connectors and stations = the month's maximum."""
    months = {}
    for day in sorted(by_day):
        row = by_day[day]
        m = months.setdefault(_month(day), {k: None if row[k] is None else 0 for k in row})
        for k, v in row.items():
            if k in ("connector_count", "station_count"):
                m[k] = max(m[k], v or 0)
            elif v is not None:
                m[k] += v
    return months


def _display(row):
    """Raw sums -> shown / exported values (the same values in both)."""
    out = dict(row)
    secs = int(row.get("duration_seconds") or 0)
    available = int(row.get("available_seconds") or 0)
    out["duration_hours"] = q_hundredth(Decimal(secs) / 3600)
    out["utilisation"] = q_hundredth(Decimal(secs) * 100 / available) if available else Decimal("0.00")
    for k, v in row.items():
        if v is None or k in ("duration_seconds", "available_seconds", "day", "period") or isinstance(v, str):
            continue
        out[k] = int(v) if k in INTS else q_hundredth(Decimal(str(v)))
    return out


def _stations(ids):
    if not ids:
        return {}
    q = select(Station.id, Station.code, Station.name).where(Station.id.in_(list(ids)))
    return {sid: (code, name) for sid, code, name in db.session.execute(q)}


def station_rows(f: Filters):
    """电站报表 table: one row per station (``summary``) or per station and day / month."""
    by_station = f.period == "summary"
    raw = _grouped(f, "station" if by_station else "station_day")
    if not by_station:
        grouped = defaultdict(dict)
        for (sid, day), row in raw.items():
            grouped[sid][day] = row
        raw = {}
        for sid, days in grouped.items():
            buckets = _roll_up(days) if f.period == "month" else {d.isoformat(): r for d, r in days.items()}
            for label, row in buckets.items():
                raw[(sid, label)] = row
    names = _stations({k if by_station else k[0] for k in raw})
    rows = []
    for key, row in raw.items():
        sid, label = (key, None) if by_station else key
        code, name = names.get(sid, ("", ""))
        rows.append(dict(_display(row), station_id=sid, station_code=code, station_name=name, period=label))
    rows.sort(key=lambda r: (r["station_code"], r["period"] or ""))
    return rows


def period_rows(f: Filters):
    """运营报表 table / the charts: one row per day or month over the stations in the filters."""
    by_day = _grouped(f, "day")
    buckets = _roll_up(by_day) if f.period == "month" else {d.isoformat(): r for d, r in sorted(by_day.items())}
    return [dict(_display(row), period=label) for label, row in buckets.items()]


def totals(rows):
    """The footer: sums of the shown rows; utilisation from the summed times."""
    if not rows:
        return {}
    raw = {}
    for c in (*ORDER_SUMS, *STATION_SUMS):
        values = [r.get(c) for r in rows]
        raw[c] = None if all(v is None for v in values) else sum(v or 0 for v in values)
    raw["duration_seconds"] = sum(int(r.get("duration_seconds") or 0) for r in rows)
    raw["available_seconds"] = sum(int(r.get("available_seconds") or 0) for r in rows)
    return _display(raw)


def _labels(f: Filters):
    """Every day (or month) of the range up to today: the charts' axis, without gaps."""
    out, day = [], f.start
    last = min(f.end, local_today())
    while day <= last:
        label = _month(day) if f.period == "month" else day.isoformat()
        if not out or out[-1] != label:
            out.append(label)
        day += timedelta(days=1)
    return out


def chart_data(rows, f: Filters | None = None):
    """ECharts series of the period rows (trend, by tariff period, utilisation); with the filters, every
    day / month of the range is on the axis (zero where nothing was recorded)."""
    if f is not None:
        by_label = {r["period"]: r for r in rows}
        labels = _labels(f)
        labels += [p for p in by_label if p not in set(labels)]
        rows = [by_label.get(label, {"period": label}) for label in sorted(labels)]

    def nums(key):
        return [float(r[key]) if r.get(key) is not None else 0 for r in rows]

    return {
        "periods": [r["period"] for r in rows],
        "energy": nums("energy"),
        "total_amount": nums("total_amount"),
        "service_fee": nums("service_fee"),
        "order_count": nums("order_count"),
        "levels": {lv: nums(f"energy_{lv}") for lv in LEVELS},
        "utilisation": nums("utilisation"),
    }


def fmt(value):
    """How a figure appears in a table cell."""
    if value is None:
        return ""
    return str(q_hundredth(Decimal(str(value))) if isinstance(value, Decimal) else value)


# --- filter choices (within the scope) -------------------------------------------------------------------


def station_choices(operator_id=None):
    q = apply_scope(select(Station.id, Station.code, Station.name).order_by(Station.code), Station)
    if operator_id:
        q = q.where(Station.operator_id == operator_id)
    return [(sid, f"{code} {name}") for sid, code, name in db.session.execute(q)]


def operator_choices():
    q = apply_scope(select(Operator.id, Operator.name).order_by(Operator.id), Operator)
    return [(oid, name) for oid, name in db.session.execute(q)]


def channel_choices(operator_id=None):
    q = apply_scope(select(Channel.id, Channel.name, Channel.operator_id).order_by(Channel.operator_id, Channel.id),
                    Channel)
    if operator_id:
        q = q.where(Channel.operator_id == operator_id)
    return [(cid, name) for cid, name, _op in db.session.execute(q)]
