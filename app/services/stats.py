"""Daily aggregation of orders into ``DailyStationStat`` / ``DailyChannelStat`` (the reports and the
dashboard read only these; they never scan orders).

Rules (DESIGN "Money, time and identifiers"):
- **Day** = the local calendar day (``TIMEZONE``, :mod:`app.services.clock`) of the order's **end of
  charging** (``ended_at``, else ``started_at``); a start failure (no charging) lands on the local day
  it was created. A charge from 23:30 to 00:30 Asia/Shanghai counts entirely on the day it ended. The
  orders of a local day are found through the ``started_at`` index (``created_at`` for failures): a
  charge ends at most :data:`MAX_ORDER_DAYS` after it started.
- **Figures** are those of ``settled`` orders (money final); ``failed`` orders are counted as start
  failures, ``abnormal`` ones as abnormal orders. Energy by tariff period is the sum of the orders'
  ``OrderPeriod`` rows by level (sharp / peak / flat / valley; a manual period counts in total only).
- **Utilisation** = charging seconds / available gun-seconds; available = the station's connectors
  (as they are now) x the seconds of the local day (23 h / 25 h on a DST day; today: up to now); the
  stored day figure is capped at 1. Over a range the reports compute sum / sum, never an average.
- **Channel**: a second table per (station, day, channel) with the additive order figures; a report's
  channel filter and the dashboard's channel ranking read it (orders without a channel have no row).
- Idempotent upsert: a run rewrites the rows of its day (a bucket that lost its orders is set to zero,
  never deleted — history rows). Running it twice gives the same rows.

Jobs: :func:`refresh_today` every few minutes (today, plus the days of orders changed since the last
few minutes), :func:`finalize_yesterday` shortly after local midnight, ``flask stats recompute``.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import and_, func, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import ChargeOrder, Connector, DailyChannelStat, DailyStationStat, OccupancyOrder, OrderPeriod, Station
from app.security.scope import platform_scope
from app.services.clock import day_bounds_utc, local_date, local_today, utcnow
from app.services.money import q_amount, q_energy, q_rate
from app.services.order_state import caller_has_work, commit, savepoint

MAX_ORDER_DAYS = 3            # a charge ends at most this long after it started (a longer one is abnormal)
REFRESH_LOOKBACK_MINUTES = 15  # refresh_today also redoes the days of orders changed this recently
LEVELS = ("sharp", "peak", "flat", "valley")
ORDER_SUMS = ("order_count", "energy", "energy_sharp", "energy_peak", "energy_flat", "energy_valley",
              "electricity_fee", "service_fee", "total_amount", "discount_amount", "paid_amount",
              "duration_seconds")

CO = ChargeOrder
DAY_TIME = func.coalesce(CO.ended_at, CO.started_at)   # settled / abnormal orders
CHARGED = ("settled", "abnormal")
ONE = Decimal(1)


def _zero():
    return {k: 0 for k in ORDER_SUMS}


def order_window(start, end):
    """Where-clause: charged orders (add the status) whose day-time falls in the UTC window
    [start, end), bounded on the started_at index. The one rule for readers of raw orders (the
    dashboard's today figures use it too)."""
    return and_(CO.started_at >= start - timedelta(days=MAX_ORDER_DAYS), CO.started_at < end,
                DAY_TIME >= start, DAY_TIME < end)


def _station_filter(q, col, station_ids):
    return q if station_ids is None else q.where(col.in_(list(station_ids) or [-1]))


def _compute(day: date, station_ids, now: datetime):
    """{station_id: figures}, {(station_id, channel_id): figures} of one local day."""
    start, end = day_bounds_utc(day)
    window = order_window(start, end)
    settled = and_(window, CO.status == "settled")

    per_channel = defaultdict(_zero)
    q = select(
        CO.station_id, CO.channel_id, func.count(CO.id), func.coalesce(func.sum(CO.energy), 0),
        func.coalesce(func.sum(CO.electricity_fee), 0), func.coalesce(func.sum(CO.service_fee), 0),
        func.coalesce(func.sum(CO.total_amount), 0), func.coalesce(func.sum(CO.discount_total), 0),
        func.coalesce(func.sum(CO.paid_amount), 0), func.coalesce(func.sum(CO.duration_seconds), 0),
    ).where(settled).group_by(CO.station_id, CO.channel_id)
    for sid, cid, n, energy, efee, sfee, total, disc, paid, secs in db.session.execute(
            _station_filter(q, CO.station_id, station_ids)):
        row = per_channel[(sid, cid)]
        row.update(order_count=n, energy=q_energy(energy), electricity_fee=q_amount(efee),
                   service_fee=q_amount(sfee), total_amount=q_amount(total), discount_amount=q_amount(disc),
                   paid_amount=q_amount(paid), duration_seconds=int(secs))

    q = (select(CO.station_id, CO.channel_id, OrderPeriod.level, func.coalesce(func.sum(OrderPeriod.energy), 0))
         .join(OrderPeriod, OrderPeriod.order_id == CO.id).where(settled, OrderPeriod.level.in_(LEVELS))
         .group_by(CO.station_id, CO.channel_id, OrderPeriod.level))
    for sid, cid, level, energy in db.session.execute(_station_filter(q, CO.station_id, station_ids)):
        per_channel[(sid, cid)][f"energy_{level}"] = q_energy(energy)

    stations = {}
    sq = select(Station.id, Station.operator_id)
    for sid, op in db.session.execute(_station_filter(sq, Station.id, station_ids)):
        stations[sid] = dict(_zero(), operator_id=op, member_count=0, occupancy_amount=0, failed_count=0,
                             abnormal_count=0, connector_count=0)
    for (sid, _cid), fig in per_channel.items():
        if sid in stations:
            for k in ORDER_SUMS:
                stations[sid][k] += fig[k]

    q = select(CO.station_id, func.count(func.distinct(CO.member_id))).where(settled).group_by(CO.station_id)
    for sid, n in db.session.execute(_station_filter(q, CO.station_id, station_ids)):
        if sid in stations:
            stations[sid]["member_count"] = n
    failures = {
        "abnormal_count": select(CO.station_id, func.count(CO.id)).where(window, CO.status == "abnormal"),
        "failed_count": select(CO.station_id, func.count(CO.id)).where(
            CO.created_at >= start, CO.created_at < end, CO.status == "failed"),
    }
    for key, q in failures.items():
        for sid, n in db.session.execute(_station_filter(q.group_by(CO.station_id), CO.station_id, station_ids)):
            if sid in stations:
                stations[sid][key] = n

    occ = OccupancyOrder
    occ_time = func.coalesce(occ.ended_at, occ.started_at)
    q = (select(occ.station_id, func.coalesce(func.sum(occ.amount), 0))
         .where(occ.started_at >= start - timedelta(days=MAX_ORDER_DAYS), occ.started_at < end,
                occ_time >= start, occ_time < end, occ.status.in_(("finished", "settled")))
         .group_by(occ.station_id))
    for sid, amount in db.session.execute(_station_filter(q, occ.station_id, station_ids)):
        if sid in stations:
            stations[sid]["occupancy_amount"] = q_amount(amount)

    q = select(Connector.station_id, func.count(Connector.id)).group_by(Connector.station_id)
    for sid, n in db.session.execute(_station_filter(q, Connector.station_id, station_ids)):
        if sid in stations:
            stations[sid]["connector_count"] = n
    day_seconds = max(0, int((min(end, max(now, start)) - start).total_seconds()))
    for fig in stations.values():
        fig["available_seconds"] = fig["connector_count"] * day_seconds
        # capped at 1: a long charge ending just after midnight has more time than the young day
        fig["utilisation"] = min(ONE, q_rate(Decimal(fig["duration_seconds"]) / fig["available_seconds"])) \
            if fig["available_seconds"] else Decimal(0)

    channels = {k: dict(v, operator_id=stations[k[0]]["operator_id"])
                for k, v in per_channel.items() if k[1] is not None and k[0] in stations}
    return stations, channels


def _write(day, station_ids, stations, channels):
    rows = 0
    q = select(DailyStationStat).where(DailyStationStat.day == day)
    existing = {r.station_id: r for r in db.session.scalars(_station_filter(q, DailyStationStat.station_id,
                                                                               station_ids))}
    for sid, fig in stations.items():
        row = existing.get(sid)
        if row is None:
            row = DailyStationStat(station_id=sid, day=day)
            db.session.add(row)
        for k, v in fig.items():
            if getattr(row, k) != v:
                setattr(row, k, v)
        rows += 1
    q = select(DailyChannelStat).where(DailyChannelStat.day == day)
    existing = {(r.station_id, r.channel_id): r
                for r in db.session.scalars(_station_filter(q, DailyChannelStat.station_id, station_ids))}
    for key, row in existing.items():   # a bucket that lost its orders: zero, never deleted
        if key not in channels:
            channels[key] = dict(_zero(), operator_id=row.operator_id)
    for (sid, cid), fig in channels.items():
        row = existing.get((sid, cid))
        if row is None:
            row = DailyChannelStat(station_id=sid, day=day, channel_id=cid)
            db.session.add(row)
        for k, v in fig.items():
            if getattr(row, k) != v:
                setattr(row, k, v)
        rows += 1
    return rows


def aggregate_day(day: date, station_ids=None, now: datetime | None = None) -> int:
    """(Re)compute the rows of one local day (all stations, or ``station_ids``); idempotent upsert.
    Returns the rows written (station rows + channel rows). Commits its own work in a savepoint and
    then the session (never rolls back a transaction it did not open)."""
    now = now or utcnow()
    session = db.session
    opened = not caller_has_work(session)
    with platform_scope("daily-stats"):
        for attempt in (1, 2):
            try:
                with savepoint(session):
                    stations, channels = _compute(day, station_ids, now)
                    rows = _write(day, station_ids, stations, channels)
                    session.flush()
                break
            except IntegrityError:  # a concurrent run inserted the same rows first: update them
                if attempt == 2:
                    raise
        commit(session, opened)
    return rows


def recompute(start: date, end: date, station_ids=None, now: datetime | None = None) -> int:
    """Every local day from ``start`` to ``end`` inclusive; returns the rows written."""
    if start > end:
        start, end = end, start
    rows, day = 0, start
    while day <= end:
        rows += aggregate_day(day, station_ids, now=now)
        day += timedelta(days=1)
    return rows


def changed_days(since: datetime) -> set[date]:
    """Local days of the orders changed since ``since`` (a late settlement, a review, a refund)."""
    with platform_scope("daily-stats"):
        q = select(func.coalesce(CO.ended_at, CO.started_at, CO.created_at)).where(
            CO.status.in_((*CHARGED, "failed")), CO.updated_at >= since)
        return {local_date(t) for (t,) in db.session.execute(q.distinct()) if t is not None}


def refresh_today(now: datetime | None = None) -> int:
    """Incremental run (cron, every few minutes): today, plus the days of orders changed in the last
    :data:`REFRESH_LOOKBACK_MINUTES` minutes."""
    now = now or utcnow()
    days = {local_today(now)} | changed_days(now - timedelta(minutes=REFRESH_LOOKBACK_MINUTES))
    return sum(aggregate_day(d, now=now) for d in sorted(days))


def finalize_yesterday(now: datetime | None = None) -> int:
    """Shortly after local midnight: the final figures of yesterday."""
    now = now or utcnow()
    return aggregate_day(local_today(now) - timedelta(days=1), now=now)
