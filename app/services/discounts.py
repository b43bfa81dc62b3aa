"""Discounts and coupons at settlement: the interface the marketing issue fills.

Settlement (:mod:`app.services.settlement`) calls, inside its transaction, with the order row locked:

1. ``compute_discounts(order, breakdown)`` → :class:`DiscountResult` (pure: reads campaigns and the
   order's coupon, changes nothing);
2. ``apply_discounts(order, result)`` writes the figures on the order and its OrderPeriod rows;
3. ``commit_discounts(order, result, session)`` books what the discount consumes (coupon used,
   campaign budget, ...) in the same transaction, so a rolled-back settlement consumes nothing.

Until the marketing issue lands every order gets zero discounts. Rules the implementation must keep:
amounts Decimal, 4 dp, rounded half up once per period figure; a discount never exceeds the fee it
reduces (``DiscountResult.clamped``); the order discount is the sum of its period discounts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

ZERO = Decimal("0.0000")


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


def compute_discounts(order, breakdown) -> DiscountResult:
    """Campaign + coupon discounts of ``order`` priced as ``breakdown`` (a pricing.Breakdown).

    No-op until the marketing issue: zero discounts."""
    return DiscountResult()


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
    order.campaign_id = result.campaign_id or order.campaign_id
    order.coupon_id = result.coupon_id or order.coupon_id


def commit_discounts(order, result: DiscountResult, session) -> None:
    """Consume what the discounts use (mark the coupon used, ...) in the settlement transaction.

    No-op until the marketing issue."""
    return None
