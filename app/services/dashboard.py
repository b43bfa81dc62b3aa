"""首页 (home dashboard) figures, always within the caller's data scope (:func:`apply_scope`).

Where each figure comes from:

- 数据概况 (energy, orders, order amount, service fee, new members) of **today** and of **this
  month**, 月度渠道电量排行 and the 30-day trend: only the daily statistics ``DailyStationStat`` /
  ``DailyChannelStat`` filled by :mod:`app.services.stats` (its rule: settled orders on the local day
  they ended; today's rows are kept current by the ``refresh_today`` job), never the orders. New
  members: members registered in the period (``ev_member``, operator + created_at index).
- Change against the previous period: today against **yesterday** (the whole day), this month
  (1st .. today) against **the same span of last month** (1st .. the same day, clipped to the
  month's length). ``(current - previous) / previous`` in percent, one decimal, with the direction;
  no percentage when the previous figure is 0.
- 待办事项: counts of exactly the rows each to-do list shows (:data:`TODO`); the view links each to
  its list filtered the same way.
- 电站数据 and 终端状态: stations / piles / guns from the database; online piles and each gun's
  state from the gateway's live state in Redis (:func:`terminal_status`), not ``Connector.status``.
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from app.extensions import db, get_redis
from app.gateway.registry import Registry, gun_key, node_key
from app.models import (
    Alarm,
    Channel,
    ChargeOrder,
    Connector,
    DailyChannelStat,
    DailyStationStat,
    FaultReport,
    Feedback,
    Invoice,
    Member,
    Pile,
    Station,
)
from app.security.scope import apply_scope
from app.services.clock import day_bounds_utc, local_today
from app.services.money import q_amount, q_energy, quantize

S = DailyStationStat
ZERO = Decimal("0")
PCT_Q = Decimal("0.1")

# 数据概况 metrics (the first four are DailyStationStat columns)
METRICS = ("energy", "order_count", "total_amount", "service_fee", "new_members")

# 终端状态 groups (everything else a gun may report, e.g. reserved, is "other")
TERMINAL_STATUSES = ("charging", "idle", "occupied", "offline", "fault")


# ----- periods and change ------------------------------------------------------------------------
def month_start(day: date) -> date:
    return day.replace(day=1)


def previous_month_span(today: date) -> tuple[date, date]:
    """Last month's 1st .. the same day of the month as ``today`` (clipped to last month's length)."""
    last_month_end = month_start(today) - timedelta(days=1)
    start = last_month_end.replace(day=1)
    last_day = calendar.monthrange(start.year, start.month)[1]
    return start, start.replace(day=min(today.day, last_day))


def change(current, previous) -> dict:
    """Change of ``current`` against ``previous``: direction (up / down / flat) and percent (one
    decimal, None when previous is 0)."""
    current, previous = Decimal(current or 0), Decimal(previous or 0)
    direction = "up" if current > previous else "down" if current < previous else "flat"
    if previous == 0:
        return {"direction": direction, "percent": None}
    pct = quantize(((current - previous) / previous * 100).copy_abs(), PCT_Q)
    return {"direction": direction, "percent": pct}


# ----- 数据概况 ---------------------------------------------------------------------------------------
def _zero_figures() -> dict:
    return {"energy": ZERO, "order_count": 0, "total_amount": ZERO, "service_fee": ZERO}


def _figures(energy, count, amount, service) -> dict:
    return {"energy": q_energy(Decimal(energy or 0)), "order_count": int(count or 0),
            "total_amount": q_amount(Decimal(amount or 0)), "service_fee": q_amount(Decimal(service or 0))}


def _sums():
    return (func.coalesce(func.sum(S.energy), 0), func.coalesce(func.sum(S.order_count), 0),
            func.coalesce(func.sum(S.total_amount), 0), func.coalesce(func.sum(S.service_fee), 0))


def _new_members(start: date, end: date) -> int:
    lo, _ = day_bounds_utc(start)
    _, hi = day_bounds_utc(end)
    return db.session.scalar(apply_scope(select(func.count()).select_from(Member), Member)
                             .where(Member.created_at >= lo, Member.created_at < hi)) or 0


def period_figures(start: date, end: date) -> dict:
    """Figures of the local days ``start .. end`` (inclusive) in scope."""
    row = db.session.execute(apply_scope(select(*_sums()), S).where(S.day >= start, S.day <= end)).one()
    return dict(_figures(*row), new_members=_new_members(start, end))


def overview_figures(today: date | None = None) -> dict:
    """数据概况: ``{"today": {...}, "month": {...}}``, each metric with ``value``, ``previous`` and
    ``change`` (today against yesterday, this month against the same span of last month)."""
    today = today or local_today()
    yesterday = today - timedelta(days=1)
    periods = {
        "today": (period_figures(today, today), period_figures(yesterday, yesterday)),
        "month": (period_figures(month_start(today), today), period_figures(*previous_month_span(today))),
    }
    return {name: {key: {"value": cur[key], "previous": prev[key], "change": change(cur[key], prev[key])}
                   for key in METRICS}
            for name, (cur, prev) in periods.items()}


# ----- trend and channel ranking -----------------------------------------------------------------
def trend(today: date | None = None, days: int = 30) -> list[dict]:
    """One row per local day of the last ``days`` days (today included): energy, orders, order
    amount and service fee; days without figures are zeros."""
    today = today or local_today()
    start = today - timedelta(days=days - 1)
    rows = db.session.execute(apply_scope(select(S.day, *_sums()), S)
                              .where(S.day >= start, S.day <= today).group_by(S.day)).all()
    by_day = {r[0]: _figures(*r[1:]) for r in rows}
    return [{"day": day, **by_day.get(day, _zero_figures())}
            for day in (start + timedelta(days=n) for n in range(days))]


def channel_ranking(today: date | None = None, limit: int = 10) -> list[dict]:
    """月度渠道电量排行: this month's energy and orders by channel (订单来源), most energy first."""
    C = DailyChannelStat
    today = today or local_today()
    energy = func.coalesce(func.sum(C.energy), 0)
    rows = db.session.execute(apply_scope(
        select(C.channel_id, Channel.name, energy, func.coalesce(func.sum(C.order_count), 0))
        .join(Channel, Channel.id == C.channel_id)
        .where(C.day >= month_start(today), C.day <= today)
        .group_by(C.channel_id, Channel.name)
        .having(func.sum(C.order_count) > 0)
        .order_by(energy.desc(), Channel.name).limit(limit), C)).all()
    return [{"channel_id": cid, "name": name, "energy": q_energy(Decimal(e or 0)), "order_count": int(n or 0)}
            for cid, name, e, n in rows]


def page(today: date | None = None) -> dict:
    """Everything the 首页 shows."""
    today = today or local_today()
    terminal = terminal_status()
    return {
        "today": today,
        "overview": overview_figures(today),
        "todo": todo_counts(),
        "stations": station_data(terminal),
        "terminal": terminal["status"],
        "channels": channel_ranking(today),
        "trend": trend(today),
        "alarms": latest_alarms(),
    }


# ----- 待办事项 ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Todo:
    key: str
    model: type
    column: str | None      # a to-do list's rows: ``column == value`` (None: a queue of its own)
    value: str | None


TODO = (
    Todo("invoices", Invoice, "status", "applied"),            # 待开发票
    Todo("fault_reports", FaultReport, "status", "pending"),   # 待处理故障上报
    Todo("feedback", Feedback, "status", "new"),               # 待处理意见反馈
    Todo("alarms", Alarm, "handle_status", "pending"),         # 未处理告警
    Todo("abnormal_orders", ChargeOrder, None, None),          # 异常订单 (the abnormal queue)
)


def _todo_count(todo: Todo) -> int:
    q = select(func.count()).select_from(todo.model)
    if todo.column is None:
        q = q.where((ChargeOrder.status == "abnormal") | (ChargeOrder.needs_review.is_(True)))
    else:
        q = q.where(getattr(todo.model, todo.column) == todo.value)
    return db.session.scalar(apply_scope(q, todo.model)) or 0


def todo_counts() -> dict[str, int]:
    return {t.key: _todo_count(t) for t in TODO}


# ----- 电站数据 and 终端状态 (live) -------------------------------------------------------------------
def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def terminal_status(redis=None) -> dict:
    """Guns in scope by live state (Redis): a gun of a pile no live gateway node holds is offline;
    otherwise the status the gateway last wrote for it (none yet: offline). Also online piles."""
    redis = redis or get_redis()
    rows = db.session.execute(apply_scope(
        select(Connector.code, Pile.code).join(Pile, Pile.id == Connector.pile_id), Connector)).all()
    pile_codes = sorted({p for _, p in rows})
    counts = dict.fromkeys(TERMINAL_STATUSES, 0)
    counts["other"] = 0
    online: set[str] = set()
    if pile_codes:
        owners = Registry(redis).owners(pile_codes)
        nodes = sorted({n for n in owners.values() if n})
        alive = ({n for n, v in zip(nodes, redis.mget([node_key(n) for n in nodes]), strict=True) if v}
                 if nodes else set())
        online = {code for code, node in owners.items() if node in alive}
        pipe = redis.pipeline(transaction=False)
        for gun, _ in rows:
            pipe.hget(gun_key(gun), "status")
        for (_, pile), status in zip(rows, pipe.execute(), strict=True):
            status = (_text(status) or "offline") if pile in online else "offline"
            counts[status if status in counts else "other"] += 1
    return {"guns": len(rows), "piles_online": len(online), "status": counts}


def station_data(terminal: dict | None = None) -> dict:
    """电站数据: stations, piles, guns in scope; online piles and guns (live)."""
    terminal = terminal or terminal_status()
    count = lambda model: db.session.scalar(apply_scope(select(func.count()).select_from(model), model)) or 0  # noqa: E731
    status = terminal["status"]
    return {"stations": count(Station), "piles": count(Pile), "guns": terminal["guns"],
            "piles_online": terminal["piles_online"], "guns_online": terminal["guns"] - status["offline"]}


def live(redis=None, today: date | None = None) -> dict:
    """What the dashboard refreshes every few seconds: 数据概况, 待办事项, 电站数据, 终端状态 and the
    newest unhandled alarms."""
    terminal = terminal_status(redis)
    return {"overview": overview_figures(today), "todo": todo_counts(), "stations": station_data(terminal),
            "terminal": terminal["status"], "alarms": latest_alarms()}


def latest_alarms(limit: int = 5) -> list[dict]:
    """The newest open (unhandled) alarms in scope."""
    rows = db.session.execute(apply_scope(
        select(Alarm.id, Alarm.pile_code, Alarm.gun_no, Alarm.fault_code, Alarm.description, Alarm.started_at)
        .where(Alarm.handle_status == "pending").order_by(Alarm.started_at.desc(), Alarm.id.desc()).limit(limit),
        Alarm)).all()
    return [dict(r._mapping) for r in rows]
