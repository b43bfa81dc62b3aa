"""The demo piles' past: ``days`` days of charging sessions replayed through the platform's own code.

Nothing here writes a figure of its own. Each session is a virtual pile's session
(:class:`~app.gateway.simulator.charging.ChargeSession`: power curve, per-rate meter readings, the
0x3B record billed like a YKC pile) fed to the services the gateway calls, with the platform clock
(:mod:`app.services.clock`) set to the session's moments:

- the order is created by the start path (:func:`app.services.charging.create_order` and its
  post-commit step: Redis session key, end of the previous occupation);
- realtime 0x13 frames every ``SAMPLE_SECONDS`` go through :func:`app.services.charging.record_realtime`
  (starting → charging, meter samples);
- the 0x3B frame is encoded, decoded and stored like the gateway stores it, then
  :func:`app.services.charging.record_bill` prices the order from its samples and compares with the pile;
- :func:`app.services.settlement.settle_order` settles it (wallet debit, or partner) at the bill's time
  (the queued settlement job, a no-op by then, is removed);
- the gun is unplugged a while after the end: :func:`app.services.occupancy.on_connector_state` creates
  and settles an occupancy order when the free minutes are exceeded.

Around the orders: gun status changes (``ConnectorStatusLog``) and, now and then, a hardware fault that
ends the session (an ``Alarm``, closed and handled). Members recharge their wallet when it runs low.
Run once, on a database without orders (``flask setup --demo --history-days 90``; ``run.py`` does it on
first start), then the daily statistics are recomputed for the whole range.
"""
from __future__ import annotations

import random
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import event, func, insert, select
from sqlalchemy.orm import lazyload

from app.extensions import db, get_redis
from app.gateway.simulator.charging import (
    FLAG_APP,
    FLAG_CARD,
    STOP_EMERGENCY,
    STOP_MANUAL,
    STOP_TIME_REACHED,
    ChargeSession,
)
from app.gateway.state_writer import PileInfo, fault_alarms, new_bill
from app.gateway.ykc import BillingModelReply, codes, decode_frame, encode_frame
from app.models import (
    Alarm,
    Card,
    Channel,
    ChargeOrder,
    Connector,
    ConnectorStatusLog,
    Member,
    Partner,
    Pile,
)
from app.services import charging, clock, occupancy, settlement, wallet
from app.services.ykc_pricing import BillingModelError, billing_model_fields

SAMPLE_SECONDS = 600                 # a realtime frame every 10 simulated minutes (the live pile: 15 s)
RECHARGE_BELOW = Decimal("150")
# relative demand by local hour (commuters in the morning, lunch, the evening peak)
HOURLY = [1, 1, 1, 1, 1, 2, 4, 6, 7, 6, 5, 5, 6, 5, 4, 4, 5, 7, 8, 8, 7, 5, 3, 2]


class _HistoryClock(datetime):
    """The stdlib clock as :mod:`app.services.clock` reads it, answering the moment being replayed."""

    at = datetime(2000, 1, 1)

    @classmethod
    def now(cls, tz=None):
        aware = cls.at.replace(tzinfo=UTC)
        return aware.astimezone(tz) if tz is not None else cls.at


@contextmanager
def replay_clock():
    """Point the platform clock at ``_HistoryClock.at`` for the block (this process only; the demo
    history runs before the platform's processes start, or in its own ``flask`` command)."""
    saved = clock._system_clock
    clock._system_clock = _HistoryClock
    try:
        yield _HistoryClock
    finally:
        clock._system_clock = saved


@contextmanager
def fast_commits():
    """Commits that do not wait for the disk during the replay (SQLite ``synchronous=OFF``, PostgreSQL
    ``synchronous_commit=off``): thousands of small units of work on a first start. An interrupted replay
    is started again on an empty database; the connections are closed afterwards."""
    engine = db.engine
    statement = {"sqlite": "PRAGMA synchronous=OFF", "postgresql": "SET synchronous_commit TO off"}.get(
        engine.dialect.name)

    def on_checkout(dbapi_connection, record, proxy):
        cursor = dbapi_connection.cursor()
        cursor.execute(statement)
        cursor.close()

    if statement is None:
        yield
        return
    db.session.remove()
    engine.dispose()
    event.listen(engine, "checkout", on_checkout)
    try:
        yield
    finally:
        event.remove(engine, "checkout", on_checkout)
        db.session.remove()
        engine.dispose()


@contextmanager
def lean_loading():
    """The session of the replay, its queries loading relations lazily: the models load most relations
    eagerly (``selectin``), which would reload the whole master-data graph around every order the services
    read — here that graph is in the session already, and a lazy many-to-one is taken from it."""
    real = db.session()

    def lazy(state):
        if state.is_select and not state.is_column_load:
            state.statement = state.statement.options(lazyload("*"))

    event.listen(real, "do_orm_execute", lazy)
    try:
        yield real
    finally:
        event.remove(real, "do_orm_execute", lazy)


@dataclass
class Plan:
    connector_id: int
    start: datetime           # naive UTC
    minutes: float
    origin: str               # app | card | partner
    fault: bool               # a hardware fault ends it
    unplug_after: float       # minutes after the end
    fault_minutes: float


def _schedule(rng, connector_ids, first_day: date, days: int, last: datetime, per_gun_day: float) -> list[Plan]:
    """Sessions per gun and local day at hours weighted by :data:`HOURLY`, never overlapping on one gun."""
    plans = []
    for cid in connector_ids:
        busy = rng.uniform(0.5, 1.5) * per_gun_day     # some guns are busier than others
        free_at = datetime.min
        for n in range(days + 1):
            day_start = clock.day_bounds_utc(first_day + timedelta(days=n))[0]
            count = sum(1 for _ in range(4) if rng.random() < busy / 4)
            hours = sorted(rng.choices(range(24), weights=HOURLY, k=count))
            for hour in hours:
                start = day_start + timedelta(hours=hour, minutes=rng.uniform(0, 60))
                minutes = max(8.0, rng.gauss(50, 22))
                unplug = rng.uniform(1, 14) if rng.random() < 0.75 else rng.uniform(16, 75)
                fault = rng.random() < 0.03
                fault_minutes = rng.uniform(5, 90) if fault else 0.0
                if start < free_at or start + timedelta(minutes=minutes + unplug + fault_minutes) >= last:
                    continue
                roll = rng.random()
                origin = "app" if roll < 0.55 else "card" if roll < 0.8 else "partner"
                plans.append(Plan(cid, start, minutes, origin, fault, unplug, fault_minutes))
                free_at = start + timedelta(minutes=minutes + unplug + fault_minutes + 5)
    plans.sort(key=lambda p: p.start)
    return plans


class _Replay:
    def __init__(self, rng, tick):
        self.rng = rng
        self.tick = tick
        self.session = db.session
        self.connectors = {c.id: c for c in self.session.scalars(
            select(Connector).join(Pile).where(Connector.enabled.is_(True), Pile.enabled.is_(True),
                                               Pile.protocol.like("ykc%")))}
        self.members, self.cards, self.partners, self.channels = {}, {}, {}, {}
        for m in self.session.scalars(select(Member).where(Member.status == "active").order_by(Member.id)):
            self.members.setdefault(m.operator_id, []).append(m.id)
        for c in self.session.scalars(select(Card).where(Card.status == "active", Card.member_id.isnot(None))
                                      .order_by(Card.id)):
            self.cards.setdefault(c.operator_id, []).append(c.id)
        for p in self.session.scalars(select(Partner).order_by(Partner.id)):
            self.partners.setdefault(p.operator_id, p)
        for ch in self.session.scalars(select(Channel).order_by(Channel.id)):
            self.channels.setdefault((ch.operator_id, ch.channel_type), ch.id)
        self.models, self.meters, self.gun_states, self.logs = {}, {}, {}, []
        self.counts = {"orders": 0, "settled": 0, "abnormal": 0, "alarms": 0, "recharges": 0}

    def at(self, when: datetime) -> None:
        self.tick.at = when

    def model(self, connector):
        """The billing model the pile holds (0x0A fields of its station's template)."""
        station = connector.station
        if station.id not in self.models:
            try:
                fields = billing_model_fields(station.price_template)
            except BillingModelError:
                fields = None
            self.models[station.id] = BillingModelReply(pile_code=connector.pile.code, **fields) if fields else None
        return self.models[station.id]

    def log(self, connector, at, status, reason):
        previous = self.gun_states.get(connector.id, "idle")
        if previous != status:
            self.logs.append({"connector_id": connector.id, "pile_id": connector.pile_id,
                              "operator_id": connector.operator_id, "at": at, "status": status,
                              "previous_status": previous, "reason": reason})
            self.gun_states[connector.id] = status

    def payer(self, connector, plan):
        """(origin, member, card, channel id) of a session; None when nobody can pay."""
        op = connector.operator_id
        if plan.origin == "card" and self.cards.get(op):
            card = self.session.get(Card, self.rng.choice(self.cards[op]))
            return "card", card.member, card, self.channels.get((op, "pile"))
        if plan.origin == "partner" and self.partners.get(op):
            # through the partner's channel, not bound to the partner record: the past is not pushed
            # to the partner platform again (order events of partner orders are pushed as they commit)
            partner = self.partners[op]
            return "partner", None, None, partner.channel_id or self.channels.get((op, "interconnect"))
        if self.members.get(op):
            member = self.session.get(Member, self.rng.choice(self.members[op]))
            return "app", member, None, member.channel_id or self.channels.get((op, "mini_program"))
        return None

    def recharge(self, member):
        if Decimal(member.balance or 0) >= RECHARGE_BELOW:
            return
        self.counts["recharges"] += 1
        amount = Decimal(self.rng.choice(["200", "300", "500"]))
        wallet.post_entry(member.id, amount, "recharge", idempotency_key=f"demo:history:recharge:{member.id}:"
                          f"{self.counts['recharges']}", remark="demo recharge")
        self.session.commit()

    def run(self, plan: Plan) -> None:
        connector = self.session.get(Connector, plan.connector_id)
        pile = connector.pile
        payer = self.payer(connector, plan)
        if payer is None or pile.station.price_template is None:
            return
        origin, member, card, channel_id = payer
        self.at(plan.start)
        if member is not None:
            self.recharge(member)
        self.log(connector, plan.start, "occupied", "0x13")
        order = charging.create_order(connector, origin=origin, member=member, card=card, channel_id=channel_id)
        limit = charging.spend_limit(order, member)
        self.session.commit()
        order = charging._session_committed(order, limit)      # the start path's Redis key, occupancy end
        self.counts["orders"] += 1
        gun = f"{connector.gun_no:02d}"
        power = float(connector.power_kw or pile.power_kw or 60)
        meter = self.meters.get(connector.id, Decimal("1000.0000") + connector.id * 37)
        sess = ChargeSession(serial=order.serial, started_at=plan.start, meter_start=meter,
                             max_power_kw=max(7.0, min(power, 120.0)), battery_kwh=self.rng.choice([50, 60, 75]),
                             soc=self.rng.uniform(10, 55), balance=limit,
                             flag=FLAG_CARD if card is not None else FLAG_APP,
                             card=bytes.fromhex(card.physical_no) if card is not None else bytes(8))
        model = self.model(connector)
        end = plan.start + timedelta(minutes=plan.minutes)
        t, step = plan.start, 10.0                            # the first frame: the pile reports charging
        while True:
            step = min(step, (end - t).total_seconds())
            if step <= 0:
                break
            t += timedelta(seconds=step)
            sess.advance(step, t, model, rng=self.rng)
            self.at(t)
            charging.record_realtime(sess.realtime(pile.code, gun), at=t)
            if t == plan.start + timedelta(seconds=10):
                self.log(connector, t, "charging", "0x13")
            if sess.stop_reason is not None:
                break
            step = SAMPLE_SECONDS
        reason = sess.stop_reason or (STOP_EMERGENCY if plan.fault else
                                      self.rng.choice([STOP_TIME_REACHED, STOP_MANUAL, STOP_MANUAL]))
        self.meters[connector.id] = meter + sum(sess.billed()[0], Decimal(0))
        self.log(connector, t, "fault" if plan.fault else "occupied", "0x13")
        if plan.fault:
            self.alarm(connector, t, plan.fault_minutes)
        self.bill(connector, pile, sess, t, reason)
        unplug = t + timedelta(minutes=plan.unplug_after)
        self.at(unplug)
        occupancy.on_connector_state(connector.id, plugged=False, parked=None, at_utc=unplug)
        if not plan.fault:
            self.log(connector, unplug, "idle", "0x13")

    def bill(self, connector, pile, sess, ended, stop_reason):
        """The 0x3B as the gateway receives it: encoded, decoded, stored, then the bill hook's service."""
        from rq.exceptions import NoSuchJobError
        from rq.job import Job

        raw = encode_frame(sess.bill(pile.code, f"{connector.gun_no:02d}", ended, stop_reason), 1)
        _, msg = decode_frame(raw)
        received = ended + timedelta(seconds=2)
        self.at(received)
        info = PileInfo(pile.id, pile.code, pile.operator_id, pile.station_id, True, pile.protocol)
        row = new_bill(info, raw, msg)
        self.session.add(row)
        self.session.commit()
        order = charging.record_bill(row, msg)
        self.at(received + timedelta(seconds=3))
        if order.status == "finished":
            settlement.settle_order(order.id)
            try:                                  # settled now: the queued job would only find it done
                Job.fetch(f"settle-{order.id}", connection=get_redis()).delete()
            except NoSuchJobError:
                pass
        order = self.session.get(ChargeOrder, order.id)
        self.counts["settled" if order.status == "settled" else "abnormal"] += 1

    def alarm(self, connector, at, minutes):
        bits = 1 << self.rng.randrange(13)
        ended = at + timedelta(minutes=minutes)
        for code, text in fault_alarms(codes.GunStatus.FAULT, bits).items():
            self.session.add(Alarm(operator_id=connector.operator_id, station_id=connector.station_id,
                                   pile_id=connector.pile_id, connector_id=connector.id,
                                   pile_code=connector.pile.code, gun_no=connector.gun_no, fault_code=code,
                                   description=text[:255], started_at=at, ended_at=ended, handle_status="handled",
                                   handled_at=ended + timedelta(minutes=self.rng.uniform(5, 120)),
                                   remark="故障已恢复", created_at=at, updated_at=ended))
            self.counts["alarms"] += 1
        self.session.commit()
        self.logs.append({"connector_id": connector.id, "pile_id": connector.pile_id,
                          "operator_id": connector.operator_id, "at": ended, "status": "idle",
                          "previous_status": "fault", "reason": "0x13"})
        self.gun_states[connector.id] = "idle"

    def write_logs(self):
        self.logs.sort(key=lambda row: row["at"])
        for i in range(0, len(self.logs), 1000):
            self.session.execute(insert(ConnectorStatusLog), self.logs[i:i + 1000])
        self.session.commit()


def generate_history(days: int = 90, *, per_gun_day: float = 0.25, seed: int = 20240311) -> str:
    """``days`` days (up to an hour ago) of demo sessions on the enabled YKC guns, then the daily
    statistics for the range. Only on a database without orders (else it does nothing). Returns a summary."""
    session = db.session
    if session.scalar(select(func.count()).select_from(ChargeOrder)):
        return "Demo history: orders exist already, none generated."
    now = clock.utcnow()
    today = clock.local_today(now)
    first_day = today - timedelta(days=days)
    last = now - timedelta(minutes=30)
    rng = random.Random(seed)
    with fast_commits(), lean_loading() as real:
        real.expire_on_commit = False     # one writer replays: what it committed is what it holds (no reloads)
        with replay_clock() as tick:
            replay = _Replay(rng, tick)
            plans = _schedule(rng, sorted(replay.connectors), first_day, days, last, per_gun_day)
            for n, plan in enumerate(plans, 1):
                replay.run(plan)
                if n % 200 == 0:
                    session.expunge_all()          # keep the session small; master data reloads once
            replay.write_logs()
    stats_note = recompute_stats(first_day, today)
    c = replay.counts
    return (f"Demo history: {days} days, {c['orders']} orders ({c['settled']} settled, {c['abnormal']} to review), "
            f"{c['alarms']} alarms, {len(replay.logs)} status changes, {c['recharges']} recharges; {stats_note}")


def recompute_stats(first_day: date, last_day: date) -> str:
    """Fill the daily statistics the reports and the dashboard read (when that module is installed)."""
    try:
        from app.services import stats
    except ImportError:
        return "daily statistics not available."
    stats.recompute(first_day, last_day)
    return f"daily statistics recomputed {first_day} .. {last_day}."
