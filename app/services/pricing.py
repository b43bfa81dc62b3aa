"""Pricing of charging sessions: electricity + service fee per tariff period.

Inputs
- the order's **tariff snapshot** (:func:`snapshot`, taken at start): template id/code/version, the
  time zone of the tariff clock (config ``TIMEZONE``, Beijing) and the periods in local clock minutes
  with level and prices (5 dp, as strings);
- the **meter samples** (0x13): (UTC time, cumulative energy kWh since the session started), and,
  when the pile's bill (0x3B) has come, its total energy as the closing meter reading.

Method (:func:`price_samples`)
- The samples make a cumulative-energy curve E(t), linear between samples. Energy never goes back: a
  reading below an earlier one is taken as the earlier one. The curve starts at (start, 0) and is
  closed by (end, pile's total energy) when the bill is there — the last 0x13 can be up to 15 s
  before the stop, the pile's meter reading at stop is the best closing point; live readings still
  bound it (see :func:`reprice_order`).
- The session window is cut at every tariff period boundary (local clock, across midnight and any
  number of periods); each piece of the window inside one period on one day is a row of the
  breakdown (``OrderPeriod``). Consecutive pieces with the same level and prices (a valley running
  through midnight, 23:00-24:00 + 00:00-07:00) are one row: the pile's rate does not change there
  either, so it takes no meter reading and rounds no amount at that boundary.

Rounding — the pile's convention (YKC 0x3B, ``ykc-protocol.md``), half up, once, where a figure is final:
1. The meter reading interpolated at each period boundary is rounded to 4 dp (kWh), as the pile's
   meter reading is (×10^4). A period's energy is the difference of its two (rounded) boundary
   readings, so the period energies add up exactly to the session energy (meter stop − start), and
   every displayed period energy is final.
2. A period's **amount** is what the pile bills for it: its unit price (electricity price + service
   price, 5 dp each, so the sum is exact — the 0x3B per-period price ×10^5) × its final energy,
   rounded to 4 dp (yuan, the 0x3B per-period amount ×10^4). It is split into
   electricity fee = energy × electricity price rounded to 4 dp, and
   service fee = amount − electricity fee (the remainder; it can differ from energy × service price
   rounded on its own by 0.0001, and never goes below 0). Rounding the two fees separately and adding
   them is what made the platform and the pile differ by 0.0001 on most orders.
3. Order totals are plain sums of those rounded period figures (no further rounding):
   energy = Σ period energy, electricity_fee = Σ, service_fee = Σ, total_amount = electricity + service
   = Σ period amounts — the pile's total amount whenever both cut the session at the same readings.

Worked example: 12.3457 kWh at 0.62000 + 0.60000 yuan/kWh → amount 12.3457 × 1.22 = 15.061754 →
15.0618; electricity fee 12.3457 × 0.62 = 7.654334 → 7.6543; service fee 15.0618 − 7.6543 = 7.4075
(rounded on its own 12.3457 × 0.6 = 7.40742 → 7.4074, and 7.6543 + 7.4074 = 15.0617 ≠ the pile's 15.0618).

The platform figure is authoritative. :func:`compare_with_pile` checks it against the pile's bill;
a difference over tolerance (``PRICING_TOLERANCE_*``) flags the order abnormal
(:func:`reprice_order`).

When no samples exist but the bill does, :func:`price_by_level_energy` prices the pile's per-level
energies (0x3B sharp/peak/flat/valley, YKC rate indexes 0-3) with the snapshot's prices.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, tzinfo
from decimal import Decimal
from types import SimpleNamespace

from sqlalchemy import select
from sqlalchemy.orm import object_session

from app.extensions import db
from app.models.base import N_
from app.services import clock
from app.services.clock import DEFAULT_TIMEZONE
from app.services.money import ZERO, q_amount, q_energy, q_price
from app.services.money import to_decimal as _dec

RATE_NAMES = ("sharp", "peak", "flat", "valley")
DEFAULT_TOLERANCE = {"amount": "0.05", "ratio": "0.005", "energy": "0.05"}


class PricingError(ValueError):
    """The session cannot be priced (no tariff, no data)."""


# --- snapshot -------------------------------------------------------------------------------------------


def snapshot(template, timezone: str | None = None) -> dict:
    """JSON-able tariff snapshot of ``template`` (stored on the order at start)."""
    periods = sorted(template.periods, key=lambda p: p.start_minute)
    return {
        "template_id": template.id,
        "code": template.code,
        "name": template.name,
        "version": template.version,
        "timezone": timezone or clock.timezone_name(),
        "periods": [{"start_minute": int(p.start_minute), "end_minute": int(p.end_minute), "level": p.level,
                     "electricity_price": str(q_price(p.electricity_price)),
                     "service_price": str(q_price(p.service_price))} for p in periods],
    }


@dataclass(frozen=True)
class TariffPeriod:
    index: int
    start_minute: int
    end_minute: int
    level: str
    electricity_price: Decimal
    service_price: Decimal


def tariff_periods(snap: dict) -> list[TariffPeriod]:
    rows = sorted(snap.get("periods") or [], key=lambda r: int(r["start_minute"]))
    if not rows:
        raise PricingError("the tariff snapshot has no periods")
    periods = [TariffPeriod(i, int(r["start_minute"]), int(r["end_minute"]), r.get("level") or "flat",
                            q_price(r["electricity_price"]), q_price(r["service_price"])) for i, r in enumerate(rows)]
    if periods[0].start_minute != 0 or periods[-1].end_minute != 1440 or any(
            a.end_minute != b.start_minute for a, b in zip(periods, periods[1:], strict=False)):
        raise PricingError("the tariff snapshot does not cover 00:00-24:00 without gaps")
    return periods


def _zone(snap: dict) -> tzinfo:
    return clock.zone(snap.get("timezone") or DEFAULT_TIMEZONE)


def _period_at(periods: list[TariffPeriod], minute: int) -> TariffPeriod:
    starts = [p.start_minute for p in periods]
    return periods[bisect.bisect_right(starts, minute) - 1]


def _occurrences(snap: dict, periods: list[TariffPeriod], t0: datetime, t1: datetime):
    """Cut [t0, t1] (naive UTC) at tariff boundaries: [(start, end, period)] in time order."""
    tz = _zone(snap)
    out = []
    t = t0
    while True:
        local = clock.to_local(t, tz)
        period = _period_at(periods, local.hour * 60 + local.minute)
        end_local = datetime.combine(local.date(), time()) + timedelta(minutes=period.end_minute)
        end_utc = clock.local_to_utc(end_local, tz)
        if end_utc <= t:  # clock oddities (DST) never stall the walk
            end_utc = t + timedelta(minutes=1)
        seg_end = min(end_utc, t1)
        out.append((t, seg_end, period))
        if seg_end >= t1:
            return out
        t = seg_end


# --- breakdown ------------------------------------------------------------------------------------------


@dataclass
class PricedPeriod:
    seq: int
    start_at: datetime | None
    end_at: datetime | None
    level: str | None
    electricity_price: Decimal
    service_price: Decimal
    energy: Decimal
    electricity_fee: Decimal
    service_fee: Decimal

    @property
    def amount(self) -> Decimal:
        return self.electricity_fee + self.service_fee

    def as_dict(self) -> dict:
        return {"seq": self.seq, "start_at": self.start_at.isoformat() if self.start_at else None,
                "end_at": self.end_at.isoformat() if self.end_at else None, "level": self.level,
                "electricity_price": str(self.electricity_price), "service_price": str(self.service_price),
                "energy": str(self.energy), "electricity_fee": str(self.electricity_fee),
                "service_fee": str(self.service_fee)}


@dataclass
class Breakdown:
    periods: list[PricedPeriod] = field(default_factory=list)
    source: str = "samples"          # samples | pile_levels | order | manual

    @property
    def energy(self) -> Decimal:
        return q_energy(sum((p.energy for p in self.periods), ZERO))

    @property
    def electricity_fee(self) -> Decimal:
        return q_amount(sum((p.electricity_fee for p in self.periods), ZERO))

    @property
    def service_fee(self) -> Decimal:
        return q_amount(sum((p.service_fee for p in self.periods), ZERO))

    @property
    def total_amount(self) -> Decimal:
        return self.electricity_fee + self.service_fee

    def as_dict(self) -> dict:
        return {"source": self.source, "energy": str(self.energy), "electricity_fee": str(self.electricity_fee),
                "service_fee": str(self.service_fee), "total_amount": str(self.total_amount),
                "periods": [p.as_dict() for p in self.periods]}


def period_fees(energy, electricity_price, service_price) -> tuple[Decimal, Decimal]:
    """(electricity fee, service fee) of one period, the pile's way (module doc, rounding 2): the
    amount = energy × (electricity + service price) rounded once; the service fee is its remainder."""
    energy, ep, sp = q_energy(energy), q_price(electricity_price), q_price(service_price)
    amount = q_amount(energy * (ep + sp))
    electricity = q_amount(energy * ep)
    return electricity, amount - electricity


def _priced(seq, start, end, level, ep, sp, energy) -> PricedPeriod:
    return PricedPeriod(seq, start, end, level, ep, sp, energy, *period_fees(energy, ep, sp))


def _points(samples, started_at, ended_at, final_energy):
    pts = []
    for at, energy in samples:
        if energy is None or at is None:
            continue
        pts.append((at, q_energy(energy)))
    pts.sort(key=lambda p: p[0])
    clean, high = [], ZERO
    for at, energy in pts:          # cumulative energy never goes back
        high = max(high, energy)
        clean.append((at, high))
    if not clean:
        if started_at is None or final_energy is None:
            raise PricingError("no meter samples")
        clean = [(started_at, ZERO)]
    if started_at is not None and started_at < clean[0][0]:
        clean.insert(0, (started_at, ZERO))
    elif clean[0][1] > 0:            # energy before the first sample: booked at the first sample's time
        clean.insert(0, (clean[0][0], ZERO))
    last_at, last_e = clean[-1]
    end_at = max(ended_at, last_at) if ended_at is not None else last_at
    if final_energy is not None:
        clean.append((end_at, max(q_energy(final_energy), last_e)))
    elif end_at > last_at:
        clean.append((end_at, last_e))
    return clean


def _reading_at(times, points, b: datetime) -> Decimal:
    """E(b): linear between samples; a jump at exactly ``b`` belongs to the later period."""
    i = bisect.bisect_left(times, b)          # first point with t >= b
    if i == 0:
        return points[0][1]
    if i >= len(points):
        return points[-1][1]
    (t0, e0), (t1, e1) = points[i - 1], points[i]
    if t1 == t0:
        return e1
    span = Decimal((t1 - t0) // timedelta(microseconds=1))
    part = Decimal((b - t0) // timedelta(microseconds=1))
    return e0 + (e1 - e0) * part / span


def _merge_same_rate(occurrences):
    """Join consecutive occurrences of the same level and prices (no rate change in between)."""
    out = []
    for start, end, period in occurrences:
        if out and (out[-1][2].level, out[-1][2].electricity_price, out[-1][2].service_price) == (
                period.level, period.electricity_price, period.service_price):
            out[-1] = (out[-1][0], end, out[-1][2])
        else:
            out.append((start, end, period))
    return out


def price_samples(snap: dict, samples, started_at: datetime | None = None, ended_at: datetime | None = None,
                  final_energy=None) -> Breakdown:
    """Breakdown of a session from meter samples ``[(utc time, cumulative kWh Decimal), ...]``.

    ``started_at`` (reading 0 there), ``ended_at`` and ``final_energy`` (the pile's closing meter
    reading, e.g. the 0x3B total) close the curve when given. Rows are the period occurrences the
    session window touched, in time order (a period without energy still shows, with 0).
    """
    periods = tariff_periods(snap)
    points = _points(samples, started_at, ended_at, final_energy)
    times = [p[0] for p in points]
    t0, t1 = points[0][0], points[-1][0]
    occurrences = _occurrences(snap, periods, t0, t1) if t1 > t0 else [(t0, t1, None)]
    if occurrences[0][2] is None:
        local = clock.to_local(t0, _zone(snap))
        occurrences = [(t0, t1, _period_at(periods, local.hour * 60 + local.minute))]
    occurrences = _merge_same_rate(occurrences)
    readings = [points[0][1]]
    for _, end, _ in occurrences[:-1]:
        readings.append(q_energy(_reading_at(times, points, end)))
    readings.append(points[-1][1])
    rows = []
    for seq, ((start, end, period), e0, e1) in enumerate(zip(occurrences, readings, readings[1:], strict=False)):
        rows.append(_priced(seq, start, end, period.level, period.electricity_price, period.service_price,
                            max(e1 - e0, ZERO)))
    return Breakdown(rows, "samples")


def rate_index_prices(snap: dict) -> dict[int, tuple[str, Decimal, Decimal]]:
    """YKC rate index (0 sharp .. 3 valley) → (level, electricity price, service price), assigned the
    way the billing model sent to the pile assigns them (:mod:`app.services.ykc_pricing`)."""
    from app.services.ykc_pricing import BillingModelError, billing_model_fields

    periods = tariff_periods(snap)
    fake = SimpleNamespace(id=snap.get("template_id") or 0, version=snap.get("version") or 0, periods=[
        SimpleNamespace(start_minute=p.start_minute, end_minute=p.end_minute, level=p.level,
                        electricity_price=p.electricity_price, service_price=p.service_price) for p in periods])
    out = {}
    try:
        fields = billing_model_fields(fake)
        used = set(fields["rate_indexes"])
        for index, name in enumerate(RATE_NAMES):
            if index in used:
                out[index] = (name, q_price(fields[f"{name}_electricity_rate"]),
                              q_price(fields[f"{name}_service_rate"]))
    except BillingModelError:       # not a YKC-expressible template: match by level name
        for index, name in enumerate(RATE_NAMES):
            match = next((p for p in periods if p.level == name), None)
            if match:
                out[index] = (name, match.electricity_price, match.service_price)
    return out


def bill_level_energies(parsed: dict | None) -> list[Decimal]:
    """[sharp, peak, flat, valley] energies of a stored 0x3B (``PileBill.parsed``)."""
    parsed = parsed or {}
    return [q_energy(parsed.get(f"{name}_energy") or 0) for name in RATE_NAMES]


def price_by_level_energy(snap: dict, energies_by_rate_index, started_at: datetime | None = None,
                          ended_at: datetime | None = None) -> Breakdown:
    """Breakdown from the pile's per-level energies only (0x3B fallback, no samples).

    ``energies_by_rate_index``: a mapping {0..3: kWh} or a list [sharp, peak, flat, valley]. One row per
    rate with energy, in rate order, each spanning the whole session (the bill has no times per level).
    """
    if not isinstance(energies_by_rate_index, dict):
        energies_by_rate_index = dict(enumerate(energies_by_rate_index))
    prices = rate_index_prices(snap)
    rows = []
    for index in sorted(energies_by_rate_index):
        energy = q_energy(energies_by_rate_index[index] or 0)
        if energy <= 0:
            continue
        if index not in prices:
            raise PricingError(f"the pile billed energy at rate {index}, which the tariff does not use")
        level, ep, sp = prices[index]
        rows.append(_priced(len(rows), started_at, ended_at, level, ep, sp, energy))
    return Breakdown(rows, "pile_levels")


def breakdown_from_order(order) -> Breakdown:
    """The order's stored breakdown (OrderPeriod rows) as a :class:`Breakdown`."""
    return Breakdown([PricedPeriod(p.seq, p.start_at, p.end_at, p.level, q_price(p.electricity_price),
                                   q_price(p.service_price), q_energy(p.energy), q_amount(p.electricity_fee),
                                   q_amount(p.service_fee)) for p in order.periods], "order")


# --- comparison with the pile's bill ---------------------------------------------------------------------


def tolerances() -> dict[str, Decimal]:
    cfg = {}
    try:
        from flask import current_app

        cfg = current_app.config
    except RuntimeError:
        pass
    # settings are strings (env); a number set in code is read through str(), never as a binary float
    return {k: Decimal(str(cfg.get(f"PRICING_TOLERANCE_{k.upper()}") or v)) for k, v in DEFAULT_TOLERANCE.items()}


@dataclass
class Comparison:
    ok: bool
    reason: str | None
    amount_diff: Decimal | None = None      # platform - pile
    energy_diff: Decimal | None = None
    allowed_amount: Decimal | None = None
    allowed_energy: Decimal | None = None

    def as_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in self.__dict__.items()}


def compare_with_pile(breakdown_total, pile_amount, pile_energy, platform_energy=None, *, tolerance_amount=None,
                      tolerance_ratio=None, tolerance_energy=None) -> Comparison:
    """Platform figure vs the pile's bill. ``breakdown_total``: a :class:`Breakdown` (amount and energy)
    or the platform amount. Allowed difference: max(absolute tolerance, ratio × the pile's figure)."""
    tol = tolerances()
    t_amount = _dec(tolerance_amount) if tolerance_amount is not None else tol["amount"]
    t_ratio = _dec(tolerance_ratio) if tolerance_ratio is not None else tol["ratio"]
    t_energy = _dec(tolerance_energy) if tolerance_energy is not None else tol["energy"]
    if isinstance(breakdown_total, Breakdown):
        platform_amount, platform_energy = breakdown_total.total_amount, breakdown_total.energy
    else:
        platform_amount = q_amount(breakdown_total)
    if pile_amount is None:
        return Comparison(True, None)
    pile_amount = q_amount(pile_amount)
    allowed_amount = max(t_amount, q_amount(t_ratio * abs(pile_amount)))
    diff = platform_amount - pile_amount
    result = Comparison(True, None, amount_diff=diff, allowed_amount=allowed_amount)
    reasons = []
    if abs(diff) > allowed_amount:
        reasons.append(N_("Amount differs from the pile's bill: platform %(platform)s, pile %(pile)s "
                          "(difference %(diff)s, tolerance %(allowed)s).")
                       % {"platform": platform_amount, "pile": pile_amount, "diff": diff, "allowed": allowed_amount})
    if pile_energy is not None and platform_energy is not None:
        pile_energy = q_energy(pile_energy)
        allowed_energy = max(t_energy, q_energy(t_ratio * abs(pile_energy)))
        ediff = q_energy(platform_energy) - pile_energy
        result.energy_diff, result.allowed_energy = ediff, allowed_energy
        if abs(ediff) > allowed_energy:
            reasons.append(N_("Energy differs from the pile's bill: platform %(platform)s kWh, "
                              "pile %(pile)s kWh (tolerance %(allowed)s).")
                           % {"platform": q_energy(platform_energy), "pile": pile_energy, "allowed": allowed_energy})
    if reasons:
        result.ok, result.reason = False, " ".join(reasons)
    return result


# --- orders ---------------------------------------------------------------------------------------------


def apply_breakdown(order, breakdown: Breakdown, session=None) -> None:
    """Replace the order's OrderPeriod rows with ``breakdown`` and set its totals (no commit).

    Discounts are reset (settlement applies them); payable = total until then."""
    from app.models import OrderPeriod

    session = session or object_session(order) or db.session
    if order.periods:
        order.periods = []
        session.flush()                       # delete old rows before new ones reuse their seq
    fallback = order.started_at or order.ended_at or order.created_at or clock.utcnow()
    order.periods = [OrderPeriod(seq=p.seq, start_at=p.start_at or fallback, end_at=p.end_at or p.start_at or fallback,
                                 level=p.level, electricity_price=p.electricity_price, service_price=p.service_price,
                                 energy=p.energy, electricity_fee=p.electricity_fee, service_fee=p.service_fee)
                     for p in breakdown.periods]
    order.energy = breakdown.energy
    order.electricity_fee = breakdown.electricity_fee
    order.service_fee = breakdown.service_fee
    order.total_amount = breakdown.total_amount
    order.discount_electricity = order.discount_service = order.discount_total = ZERO
    order.payable_amount = breakdown.total_amount


@dataclass
class PricingResult:
    ok: bool
    reason: str | None
    breakdown: Breakdown | None
    comparison: Comparison | None = None
    bill_id: int | None = None

    def as_dict(self) -> dict:
        return {"ok": self.ok, "reason": self.reason,
                "breakdown": self.breakdown.as_dict() if self.breakdown else None,
                "comparison": self.comparison.as_dict() if self.comparison else None, "bill_id": self.bill_id}


def order_snapshot(order) -> dict | None:
    if order.tariff_snapshot:
        return order.tariff_snapshot
    template = order.price_template or (order.station.price_template if order.station else None)
    return snapshot(template) if template is not None else None


def find_bill(order, session=None):
    from app.models import PileBill

    session = session or object_session(order) or db.session
    bill = session.scalar(select(PileBill).where(PileBill.order_id == order.id).order_by(PileBill.id).limit(1))
    if bill is None and order.serial:
        bill = session.scalar(select(PileBill).where(PileBill.serial == order.serial))
    return bill


def price_order(order, session=None) -> tuple[Breakdown, Comparison | None, object, str | None]:
    """Compute (breakdown, comparison with the bill, bill, problem) without touching the order."""
    from app.models import MeterSample

    session = session or object_session(order) or db.session
    snap = order_snapshot(order)
    if snap is None:
        raise PricingError(N_("The order has no tariff (no snapshot and no price template)."))
    bill = find_bill(order, session)
    pile_energy = order.pile_energy if order.pile_energy is not None else (bill.total_energy if bill else None)
    pile_amount = order.pile_amount if order.pile_amount is not None else (bill.total_amount if bill else None)
    rows = session.execute(select(MeterSample.at, MeterSample.energy, MeterSample.power)
                           .where(MeterSample.order_id == order.id, MeterSample.energy.isnot(None))
                           .order_by(MeterSample.at, MeterSample.id)).all()
    started = order.started_at or (bill.started_at if bill else None)
    ended = order.ended_at or (bill.ended_at if bill else None)
    problem = None
    if rows:
        breakdown = price_samples(snap, [(r.at, r.energy) for r in rows], started_at=started, ended_at=ended,
                                  final_energy=pile_energy)
        if pile_energy is not None:
            problem = _live_vs_pile(rows, ended, q_energy(pile_energy))
    elif bill is not None:
        breakdown = price_by_level_energy(snap, bill_level_energies(bill.parsed), started, ended)
    else:
        raise PricingError(N_("No meter data and no bill from the pile."))
    comparison = compare_with_pile(breakdown, pile_amount, pile_energy) if bill or pile_amount is not None else None
    return breakdown, comparison, bill, problem


def _live_vs_pile(rows, ended_at, pile_energy) -> str | None:
    """The pile's total must agree with the live readings: not below the last one, and not above it by
    more than the tolerance plus what the last reported power could deliver until the stop (× 1.5)."""
    tol = tolerances()
    last = rows[-1]
    last_e = max(q_energy(r.energy) for r in rows)
    allowed = max(tol["energy"], q_energy(tol["ratio"] * pile_energy))
    if pile_energy < last_e - allowed:
        return (N_("The pile's bill (%(pile)s kWh) is below its last realtime reading (%(last)s kWh).")
                % {"pile": pile_energy, "last": last_e})
    tail = ZERO
    if ended_at is not None and last.power is not None and ended_at > last.at:
        hours = Decimal((ended_at - last.at) // timedelta(seconds=1)) / Decimal(3600)
        tail = _dec(last.power) * hours * Decimal("1.5")
    if pile_energy - last_e > allowed + tail:
        return (N_("The pile's bill (%(pile)s kWh) exceeds its last realtime reading (%(last)s kWh) "
                   "by more than the session could deliver.") % {"pile": pile_energy, "last": last_e})
    return None


def reprice_order(order, session=None, *, finish: bool = True, flag: bool = True) -> PricingResult:
    """Price ``order`` from its meter samples (or the bill's per-level energies), write the breakdown and
    totals, compare with the pile's bill. No commit.

    - agreement (or no bill yet) and energy > 0 → ``ok``; with ``finish`` an order that is still
      active (pending..stopping) becomes ``finished`` (ready for settlement). An abnormal order stays
      abnormal (staff move it on: :func:`app.services.order_admin.reprice`).
      The move writes the order event ``priced`` (from, to, the figures and the comparison).
    - disagreement over tolerance, zero energy, or nothing to price from → not ok; with ``flag`` the
      order is marked abnormal (status abnormal, abnormal_reason, needs_review, an OrderEvent).
    - a settled order is left alone (its money has moved): not ok, nothing written.
    """
    from app.models.order import ACTIVE_ORDER_STATUSES
    from app.services import order_state
    from app.services.order_admin import mark_abnormal

    session = session or object_session(order) or db.session
    if order.status == "settled":
        return PricingResult(False, "The order is settled: its figures are final.", None)
    try:
        breakdown, comparison, bill, problem = price_order(order, session)
    except PricingError as exc:
        result = PricingResult(False, str(exc), None)
    else:
        apply_breakdown(order, breakdown, session)
        reason = problem
        if comparison is not None and not comparison.ok:
            reason = " ".join(r for r in (comparison.reason, problem) if r)
        if reason is None and breakdown.energy <= 0:
            reason = N_("Zero energy: the session delivered no energy.")
        result = PricingResult(reason is None, reason, breakdown, comparison, bill.id if bill else None)
    if result.ok:
        if finish and order.status in ACTIVE_ORDER_STATUSES:
            bd = result.breakdown
            order_state.transition(order, "finished", "priced", session=session, detail={
                "source": bd.source, "energy": str(bd.energy), "electricity_fee": str(bd.electricity_fee),
                "service_fee": str(bd.service_fee), "total_amount": str(bd.total_amount),
                "comparison": result.comparison.as_dict() if result.comparison else None})
    elif flag:
        mark_abnormal(order, result.reason, session=session,
                      detail={"comparison": result.comparison.as_dict() if result.comparison else None})
    return result
