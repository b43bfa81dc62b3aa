"""Discounts and coupons at settlement (manual §2.6.1 运营活动, §2.6.2 互联互通活动, §2.6.3 卡券).

Settlement (:mod:`app.services.settlement`) calls, inside its transaction, with the order row locked:

1. ``compute_discounts(order, breakdown)`` → :class:`DiscountResult` (pure: reads campaigns and the
   order's coupon, changes nothing);
2. ``apply_discounts(order, result)`` writes the figures on the order and its OrderPeriod rows;
3. ``commit_discounts(order, result, session)`` books what the discount consumes (the coupon becomes
   ``used``) in the same transaction, so a rolled-back settlement consumes nothing.

The rules (one place for admin, REST, member API, partners and jobs; re-pricing an abnormal order
settles through the same path, so it re-applies them with the same locked coupon):

**Which campaign.** Candidates are the enabled campaigns of the order's operator whose window
``[start_at, end_at)`` contains the order's *start time* — the start of charging (``started_at``;
before the pile reported charging: ``start_requested_at``, then ``created_at``) — whose station scope
contains the station (``all_stations`` or the station chosen) and whose channel matches:
operation campaigns apply to the channels chosen, or to every order (any channel, none) when none is
chosen; interconnect campaigns apply only to orders of their partner channel. The candidate saving
the most applies (ties: higher ``priority``, then the older campaign, smaller id). One campaign per
order, never two.

**Organisation discount.** When :mod:`app.services.organizations` provides ``discount_rates(order)``
(electricity rate, service rate) for the order, it competes with the best campaign as a fixed
discount; the larger saving applies (a tie goes to the campaign).

**Campaign figures, per tariff period of the breakdown** (every figure rounded half up to 4 dp once):

- fixed discount: electricity discount = electricity fee × (1 − electricity rate), service discount =
  service fee × (1 − service rate);
- time-of-day discount: a period's fees are discounted at the rates of the campaign's local-time
  windows (``CampaignPeriod``, every day) *pro rata by time*: discount = fee × Σ over windows
  (seconds of the period inside the window / seconds of the period × (1 − window rate)); time outside
  every window is not discounted. A period of no duration (a pile-level or manual breakdown row) takes
  the window containing its start.

**Then one coupon**: the coupon locked for the order at start (the member's choice through
``charging.start_charge(coupon_id=...)``), else the valid coupon of the member that saves the most
(ties: earliest expiry, then smaller id); partner orders (no member) get none. A coupon is valid for the
order when it is the member's, of the operator, ``unused`` (or locked by this order), valid at the
order's start time (``valid_from`` ≤ t < ``valid_to``, open ends allowed) and its template's station
scope contains the station. The target (``total`` or ``service``) is the fee *after the campaign*:

- ``discount``: target × (1 − rate), capped at ``max_discount`` when set;
- ``full_reduction`` (满 threshold 减 face value): face value when target ≥ threshold, else nothing;
- ``deduction`` (抵): face value;
- any kind: nothing when the target is below a threshold > 0; never more than the target.

The coupon saving is spread over the periods pro rata to each period's target fee after the campaign
(for ``total``: electricity and service of each period are separate shares, in period order,
electricity first), by cumulative rounding: share i = round(S × C_i / T) − round(S × C_(i−1) / T), where
C_i is the running sum of the target fees — the shares add up exactly to S and none exceeds its fee.
Order discounts are the sums of the period discounts; a discount never exceeds the fee it reduces, so
payable = total − discount is never below zero.

Coupon lifecycle around an order: :func:`lock_coupon` (start, same transaction as the order) →
:func:`commit_discounts` (settlement: ``used``, ``order_id``, ``used_at``, ``discount_amount``) or
:func:`release_coupons` (the order failed, was closed without charge, or settled without using it:
back to ``unused``). The release is hooked in one place: :func:`app.services.order_state.transition`
to a final status (``failed``, ``settled``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

from sqlalchemy import or_, select, update
from sqlalchemy.orm import object_session

from app.extensions import db
from app.models.base import N_
from app.services import clock
from app.services.money import q_amount

ZERO = Decimal("0.0000")
ONE = Decimal("1")


class CouponError(ValueError):
    """The coupon cannot be used for this order (message shown to the user)."""


@dataclass
class PeriodDiscount:
    seq: int
    electricity: Decimal = ZERO
    service: Decimal = ZERO


@dataclass
class DiscountResult:
    periods: list[PeriodDiscount] = field(default_factory=list)   # one per breakdown row with a discount
    campaign_id: int | None = None
    coupon_id: int | None = None
    detail: dict = field(default_factory=dict)                   # shown in the settlement event

    @property
    def electricity(self) -> Decimal:
        return sum((p.electricity for p in self.periods), ZERO)

    @property
    def service(self) -> Decimal:
        return sum((p.service for p in self.periods), ZERO)

    @property
    def total(self) -> Decimal:
        return self.electricity + self.service

    def clamped(self, breakdown) -> DiscountResult:
        """The same discounts, each capped at the fee of its period (never below zero)."""
        fees = {p.seq: p for p in breakdown.periods}
        out = []
        for d in self.periods:
            p = fees.get(d.seq)
            if p is None:
                continue
            out.append(PeriodDiscount(d.seq, min(max(d.electricity, ZERO), p.electricity_fee),
                                      min(max(d.service, ZERO), p.service_fee)))
        return DiscountResult(out, self.campaign_id, self.coupon_id, dict(self.detail))


# --- context --------------------------------------------------------------------------------------------


def order_start_time(order) -> datetime:
    """The time campaigns and coupons are judged at: the start of charging."""
    return (getattr(order, "started_at", None) or getattr(order, "start_requested_at", None)
            or getattr(order, "created_at", None) or clock.utcnow())


def _session(obj=None):
    return (object_session(obj) if obj is not None else None) or db.session


def _tz(order):
    snap = getattr(order, "tariff_snapshot", None) or {}
    return clock.zone(snap.get("timezone") or clock.timezone_name())


# --- campaigns ------------------------------------------------------------------------------------------


def active_campaigns(operator_id, station_id, channel_id=None, at=None, *, session=None) -> list:
    """Enabled campaigns of the operator running at ``at`` (default now) for the station and channel
    (rules in the module doc), best first by priority then id. For the member app's station page pass
    no channel: operation campaigns open to every channel (or to the one given)."""
    from app.models import Campaign

    session = session or db.session
    at = at or clock.utcnow()
    rows = session.scalars(select(Campaign).where(
        Campaign.operator_id == operator_id, Campaign.enabled.is_(True), Campaign.start_at <= at,
        Campaign.end_at > at).order_by(Campaign.priority.desc(), Campaign.id)).all()
    return [c for c in rows if _station_ok(c, station_id) and _channel_ok(c, channel_id)]


def _station_ok(campaign, station_id) -> bool:
    return bool(campaign.all_stations) or any(s.id == station_id for s in campaign.stations)


def _channel_ok(campaign, channel_id) -> bool:
    if campaign.kind == "interconnect":
        return channel_id is not None and campaign.channel_id == channel_id
    chosen = [c.id for c in (getattr(campaign, "channels", None) or [])]
    return not chosen or channel_id in chosen


def _off(rate) -> Decimal:
    rate = Decimal(str(rate if rate is not None else 1))
    return max(ONE - rate, Decimal(0))


def _window_overlap(start: datetime, end: datetime, s_min: int, e_min: int, tz) -> float:
    """Seconds of [start, end) (naive UTC) inside the daily local window [s_min, e_min)."""
    local_start, local_end = clock.to_local(start, tz), clock.to_local(end, tz)
    total = 0.0
    day = local_start.date() - timedelta(days=1)
    while day <= local_end.date():
        base = datetime.combine(day, datetime.min.time())
        w0, w1 = base + timedelta(minutes=s_min), base + timedelta(minutes=e_min)
        if e_min <= s_min:                       # a window across midnight (22:00-06:00)
            w1 += timedelta(days=1)
        a, b = max(w0, local_start.replace(tzinfo=None)), min(w1, local_end.replace(tzinfo=None))
        if b > a:
            total += (b - a).total_seconds()
        day += timedelta(days=1)
    return total


def _minute_in(minute: int, s_min: int, e_min: int) -> bool:
    if e_min <= s_min:
        return minute >= s_min or minute < e_min
    return s_min <= minute < e_min


def _tod_factors(campaign, period, tz) -> tuple[Decimal, Decimal]:
    """(electricity off-fraction, service off-fraction) of ``period`` under a time-of-day campaign."""
    windows = list(campaign.periods)
    if not windows or period.start_at is None:
        return Decimal(0), Decimal(0)
    end = period.end_at or period.start_at
    seconds = int((end - period.start_at).total_seconds())
    if seconds <= 0:
        local = clock.to_local(period.start_at, tz)
        minute = local.hour * 60 + local.minute
        for w in windows:
            if _minute_in(minute, int(w.start_minute), int(w.end_minute)):
                return _off(w.electricity_rate), _off(w.service_rate)
        return Decimal(0), Decimal(0)
    fe = fs = Decimal(0)
    for w in windows:
        inside = Decimal(int(_window_overlap(period.start_at, end, int(w.start_minute), int(w.end_minute), tz)))
        if inside:
            fe += inside * _off(w.electricity_rate)
            fs += inside * _off(w.service_rate)
    return fe / seconds, fs / seconds


def _fixed_rates(e_rate, s_rate, breakdown) -> list[PeriodDiscount]:
    return [PeriodDiscount(p.seq, q_amount(p.electricity_fee * _off(e_rate)), q_amount(p.service_fee * _off(s_rate)))
            for p in breakdown.periods]


def campaign_periods(campaign, breakdown, tz=None) -> list[PeriodDiscount]:
    """The campaign's discount of each breakdown period (module doc), capped at the period's fees."""
    tz = tz or clock.zone()
    if campaign.discount_mode == "time_of_day":
        out = []
        for p in breakdown.periods:
            fe, fs = _tod_factors(campaign, p, tz)
            out.append(PeriodDiscount(p.seq, q_amount(p.electricity_fee * fe), q_amount(p.service_fee * fs)))
    else:
        out = _fixed_rates(campaign.electricity_rate, campaign.service_rate, breakdown)
    fees = {p.seq: p for p in breakdown.periods}
    return [PeriodDiscount(d.seq, min(d.electricity, fees[d.seq].electricity_fee),
                           min(d.service, fees[d.seq].service_fee)) for d in out]


def _sum(rows) -> Decimal:
    return sum((r.electricity + r.service for r in rows), ZERO)


def _organization_rates(order):
    try:
        from app.services import organizations
    except ImportError:
        return None
    fn = getattr(organizations, "discount_rates", None)
    if fn is None:
        return None
    try:
        return fn(order)
    except Exception:  # an organisation rule that cannot be read never blocks a settlement
        return None


def best_campaign(order, breakdown, *, session=None):
    """(campaign or None, its period discounts, label) — the best campaign, or the organisation
    discount when it saves more (label ``"organization"``)."""
    session = session or _session(order)
    tz = _tz(order)
    best, best_rows, best_saving = None, [], ZERO
    for c in active_campaigns(order.operator_id, order.station_id, getattr(order, "channel_id", None),
                              order_start_time(order), session=session):
        rows = campaign_periods(c, breakdown, tz)
        saving = _sum(rows)
        if saving > best_saving:          # candidates come by priority then id: a tie keeps the first
            best, best_rows, best_saving = c, rows, saving
    label = "campaign" if best is not None else None
    rates = _organization_rates(order)
    if rates:
        rows = _fixed_rates(rates[0], rates[1], breakdown)
        if _sum(rows) > best_saving:
            return None, rows, "organization"
    return best, best_rows, label


# --- coupons --------------------------------------------------------------------------------------------


def coupon_problem(coupon, *, member_id, operator_id, station_id, at, order_id=None) -> str | None:
    """Why ``coupon`` cannot be used (an untranslated message) or None when it can."""
    if coupon is None or coupon.member_id != member_id or coupon.operator_id != operator_id:
        return N_("The coupon is not yours.")
    if not (coupon.status == "unused" or (coupon.status == "locked" and order_id is not None
                                          and coupon.order_id == order_id)):
        return N_("The coupon has been used or is locked by another order.")
    if (coupon.valid_from and at < coupon.valid_from) or (coupon.valid_to and at >= coupon.valid_to):
        return N_("The coupon is not valid at this time.")
    template = coupon.template
    if template is not None and not template.all_stations and station_id not in {s.id for s in template.stations}:
        return N_("The coupon cannot be used at this station.")
    return None


def coupon_saving(coupon, electricity: Decimal, service: Decimal) -> Decimal:
    """What ``coupon`` takes off fees of ``electricity`` + ``service`` (already after the campaign)."""
    target = service if coupon.target == "service" else electricity + service
    threshold = Decimal(coupon.threshold or 0)
    if target <= 0 or (threshold > 0 and target < threshold):
        return ZERO
    if coupon.coupon_type == "discount":
        saving = q_amount(target * _off(coupon.discount_rate))
        if coupon.max_discount is not None and Decimal(coupon.max_discount) > 0:
            saving = min(saving, q_amount(coupon.max_discount))
    elif coupon.coupon_type in ("full_reduction", "deduction"):
        saving = q_amount(coupon.face_value or 0)
    else:
        return ZERO
    return min(saving, target)


def _spread(saving: Decimal, parts: list[Decimal]) -> list[Decimal]:
    """``saving`` over ``parts`` pro rata by cumulative rounding (module doc)."""
    total = sum(parts, ZERO)
    if saving <= 0 or total <= 0:
        return [ZERO for _ in parts]
    out, cum, before = [], ZERO, ZERO
    for part in parts:
        cum += part
        upto = q_amount(saving * cum / total)
        out.append(upto - before)
        before = upto
    return out


def coupon_periods(coupon, breakdown, campaign_rows) -> tuple[Decimal, list[PeriodDiscount]]:
    """(coupon saving, its spread over the periods) on top of ``campaign_rows``."""
    camp = {r.seq: r for r in campaign_rows}
    left = []
    for p in breakdown.periods:
        c = camp.get(p.seq)
        left.append((p.seq, p.electricity_fee - (c.electricity if c else ZERO),
                     p.service_fee - (c.service if c else ZERO)))
    e_left = sum((e for _, e, _ in left), ZERO)
    s_left = sum((s for _, _, s in left), ZERO)
    saving = coupon_saving(coupon, e_left, s_left)
    if saving <= 0:
        return ZERO, []
    if coupon.target == "service":
        shares = _spread(saving, [s for _, _, s in left])
        return saving, [PeriodDiscount(seq, ZERO, sh) for (seq, _, _), sh in zip(left, shares, strict=True)]
    flat = []
    for _, e, s in left:
        flat += [e, s]
    shares = _spread(saving, flat)
    return saving, [PeriodDiscount(seq, shares[2 * i], shares[2 * i + 1]) for i, (seq, _, _) in enumerate(left)]


def _member_coupons(member_id, operator_id, session, order_id=None) -> list:
    from app.models import Coupon

    cond = Coupon.status == "unused"
    if order_id is not None:
        cond = or_(cond, (Coupon.status == "locked") & (Coupon.order_id == order_id))
    return list(session.scalars(select(Coupon).where(Coupon.member_id == member_id, Coupon.operator_id == operator_id,
                                                     cond).order_by(Coupon.id)))


def chosen_coupon(order, session=None):
    """The coupon locked for ``order`` at start (or None)."""
    from app.models import Coupon

    session = session or _session(order)
    if getattr(order, "id", None) is None:
        return None
    return session.scalar(select(Coupon).where(Coupon.order_id == order.id, Coupon.status == "locked")
                          .order_by(Coupon.id).limit(1))


def _expiry_key(coupon):
    return (coupon.valid_to or datetime.max, coupon.id)


# --- settlement interface ---------------------------------------------------------------------------------


def _merge(breakdown, campaign_rows, coupon_rows) -> list[PeriodDiscount]:
    camp = {r.seq: r for r in campaign_rows}
    coup = {r.seq: r for r in coupon_rows}
    out = []
    for p in breakdown.periods:
        a, b = camp.get(p.seq), coup.get(p.seq)
        e = (a.electricity if a else ZERO) + (b.electricity if b else ZERO)
        s = (a.service if a else ZERO) + (b.service if b else ZERO)
        if e or s:
            out.append(PeriodDiscount(p.seq, e, s))
    return out


def compute_discounts(order, breakdown, *, session=None) -> DiscountResult:
    """Campaign + coupon discounts of ``order`` priced as ``breakdown`` (a pricing.Breakdown); the
    rules are in the module doc. Reads only."""
    session = session or _session(order)
    at = order_start_time(order)
    campaign, camp_rows, label = best_campaign(order, breakdown, session=session)
    detail = {}
    if label == "campaign":
        detail["campaign"] = {"id": campaign.id, "name": campaign.name, "amount": str(_sum(camp_rows))}
    elif label == "organization":
        detail["organization"] = {"amount": str(_sum(camp_rows))}
    coupon, coup_rows, coup_saving = None, [], ZERO
    if getattr(order, "member_id", None):
        locked = chosen_coupon(order, session)
        if locked is not None and coupon_problem(locked, member_id=order.member_id, operator_id=order.operator_id,
                                                 station_id=order.station_id, at=at, order_id=order.id) is None:
            coup_saving, coup_rows = coupon_periods(locked, breakdown, camp_rows)
            coupon = locked if coup_saving > 0 else None
        elif locked is None:
            candidates = []
            for c in _member_coupons(order.member_id, order.operator_id, session):
                if coupon_problem(c, member_id=order.member_id, operator_id=order.operator_id,
                                  station_id=order.station_id, at=at) is None:
                    saving, rows = coupon_periods(c, breakdown, camp_rows)
                    if saving > 0:
                        candidates.append((-saving, _expiry_key(c), c, rows))
            if candidates:
                candidates.sort(key=lambda t: (t[0], t[1]))
                _, _, coupon, coup_rows = candidates[0]
                coup_saving = -candidates[0][0]
    if coupon is not None:
        detail["coupon"] = {"id": coupon.id, "code": coupon.code, "amount": str(coup_saving)}
    else:
        coup_rows = []
    return DiscountResult(_merge(breakdown, camp_rows, coup_rows), campaign.id if campaign is not None else None,
                          coupon.id if coupon is not None else None, detail)


def apply_discounts(order, result: DiscountResult) -> None:
    """Write ``result`` on the order and its OrderPeriod rows (no commit)."""
    by_seq = {d.seq: d for d in result.periods}
    for period in order.periods:
        d = by_seq.get(period.seq)
        period.discount_electricity = d.electricity if d else ZERO
        period.discount_service = d.service if d else ZERO
    order.discount_electricity = result.electricity
    order.discount_service = result.service
    order.discount_total = result.total
    order.campaign_id = result.campaign_id
    order.coupon_id = result.coupon_id


def commit_discounts(order, result: DiscountResult, session) -> None:
    """The coupon the result uses becomes ``used`` by the order (one conditional UPDATE: a coupon
    used meanwhile by another order raises, and the settlement is retried without it)."""
    from app.models import Coupon

    if result.coupon_id is None:
        return
    amount = q_amount((result.detail.get("coupon") or {}).get("amount") or 0)
    done = session.execute(
        update(Coupon).where(Coupon.id == result.coupon_id, or_(
            Coupon.status == "unused", (Coupon.status == "locked") & (Coupon.order_id == order.id)))
        .values(status="used", order_id=order.id, used_at=clock.utcnow(), discount_amount=amount)
        .execution_options(synchronize_session="fetch"))
    if done.rowcount != 1:
        raise CouponError(f"coupon {result.coupon_id} was used by another order")


# --- start and end of an order ----------------------------------------------------------------------------


def start_coupon_problem(coupon_id, member, connector, at=None) -> str | None:
    """Why the coupon cannot be chosen for a start by ``member`` on ``connector`` (None: it can)."""
    from app.models import Coupon

    if member is None:
        return N_("Only a member can use a coupon.")
    coupon = db.session.get(Coupon, coupon_id)
    return coupon_problem(coupon, member_id=member.id, operator_id=connector.operator_id,
                          station_id=connector.station_id, at=at or clock.utcnow())


def lock_coupon(order, coupon_id, *, session=None, at=None):
    """Lock the member's coupon ``coupon_id`` for the new ``order`` (flushed, not committed): status
    ``locked``, ``order_id``; ``order.coupon_id`` remembers the choice. Raises :class:`CouponError`."""
    from app.models import Coupon

    session = session or _session(order)
    coupon = session.get(Coupon, coupon_id)
    at = at or clock.utcnow()
    if order.member_id is None:
        raise CouponError(N_("Only a member can use a coupon."))
    problem = coupon_problem(coupon, member_id=order.member_id, operator_id=order.operator_id,
                             station_id=order.station_id, at=at)
    if problem:
        raise CouponError(problem)
    done = session.execute(update(Coupon).where(Coupon.id == coupon_id, Coupon.status == "unused")
                           .values(status="locked", order_id=order.id)
                           .execution_options(synchronize_session="fetch"))
    if done.rowcount != 1:
        raise CouponError(N_("The coupon has been used or is locked by another order."))
    order.coupon_id = coupon_id
    return coupon


def release_coupons(order, session=None) -> int:
    """Coupons still locked by ``order`` go back to ``unused`` (the order ended without using them).
    Called by :func:`app.services.order_state.transition` on a move to ``failed`` or ``settled``."""
    from app.models import Coupon

    if getattr(order, "id", None) is None:
        return 0
    session = session or _session(order)
    locked = list(session.scalars(select(Coupon.id).where(Coupon.order_id == order.id, Coupon.status == "locked")))
    if not locked:
        return 0
    session.execute(update(Coupon).where(Coupon.id.in_(locked), Coupon.status == "locked")
                    .values(status="unused", order_id=None).execution_options(synchronize_session="fetch"))
    if order.coupon_id in locked:             # the order did not use it: it shows no coupon
        order.coupon_id = None
    return len(locked)


# --- estimates for the member app -----------------------------------------------------------------------------


def _hypothetical(connector, energy_kwh, at):
    """A one-period breakdown of ``energy_kwh`` at the gun's prices at ``at`` (the station's template)."""
    from app.services import pricing

    template = connector.station.price_template
    snap = pricing.snapshot(template)
    periods = pricing.tariff_periods(snap)
    local = clock.to_local(at, clock.zone(snap["timezone"]))
    tp = pricing._period_at(periods, local.hour * 60 + local.minute)
    row = pricing._priced(0, at, at, tp.level, tp.electricity_price, tp.service_price, Decimal(energy_kwh))
    return pricing.Breakdown([row], "estimate"), snap


def estimate_savings(*, member, connector, coupons, energy_kwh=Decimal("20"), at=None, channel_id=None) -> dict:
    """{coupon id: what it would save} on a charge of ``energy_kwh`` at the gun's current prices,
    after the best campaign (the rules of :func:`compute_discounts`); a coupon that cannot be used
    here saves 0. ``channel_id``: the order's channel, by default the member's (what the member API's
    start gives the order)."""
    at = at or clock.utcnow()
    if channel_id is None:
        channel_id = getattr(member, "channel_id", None)
    breakdown, snap = _hypothetical(connector, energy_kwh, at)
    order = SimpleNamespace(id=None, operator_id=connector.operator_id, station_id=connector.station_id,
                            channel_id=channel_id, member_id=member.id if member else None,
                            organization_id=getattr(member, "organization_id", None), started_at=at,
                            tariff_snapshot=snap, member=member, connector_id=connector.id)
    _, camp_rows, _ = best_campaign(order, breakdown, session=db.session)
    out = {}
    for c in coupons:
        if coupon_problem(c, member_id=order.member_id, operator_id=order.operator_id, station_id=order.station_id,
                          at=at) is not None:
            out[c.id] = ZERO
            continue
        out[c.id] = coupon_periods(c, breakdown, camp_rows)[0]
    return out
