"""营销统计: what the marketing gave, within the caller's data scope, for a range of local days.

- per campaign (运营活动 / 互联互通活动): settled orders that got the campaign (``ChargeOrder.campaign_id``),
  their amount, the campaign's discount (the order's discount less the coupon's part) and the orders' total
  discount;
- per coupon campaign (卡券活动): coupons issued in the range (received at), coupons used in the range
  (used at) and their discount;
- per coupon template (卡券列表): the same, whatever the campaign (staff issues and claims included).

Money in 4 decimals as stored (sums of stored figures, no rounding here); days are local (TIMEZONE).
"""
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import func, select

from app.extensions import db
from app.models import Campaign, ChargeOrder, Coupon, CouponCampaign, CouponTemplate
from app.security.scope import apply_scope
from app.services import clock

ZERO = Decimal("0.0000")


@dataclass(frozen=True)
class StatsFilters:
    start: date
    end: date
    operator_id: int | None = None


def _bounds(f: StatsFilters):
    return clock.day_bounds_utc(f.start)[0], clock.day_bounds_utc(f.end)[1]


def _dec(v):
    return Decimal(v) if v is not None else ZERO


def campaign_rows(f: StatsFilters) -> list[dict]:
    start, end = _bounds(f)
    coupon_part = func.coalesce(Coupon.discount_amount, 0)
    q = (select(Campaign.id, Campaign.name, Campaign.kind, func.count(ChargeOrder.id),
                func.coalesce(func.sum(ChargeOrder.total_amount), 0),
                func.coalesce(func.sum(ChargeOrder.discount_total - coupon_part), 0),
                func.coalesce(func.sum(ChargeOrder.discount_total), 0))
         .join(ChargeOrder, ChargeOrder.campaign_id == Campaign.id)
         .outerjoin(Coupon, (Coupon.id == ChargeOrder.coupon_id) & (Coupon.status == "used"))
         .where(ChargeOrder.status == "settled", ChargeOrder.settled_at >= start, ChargeOrder.settled_at < end)
         .group_by(Campaign.id, Campaign.name, Campaign.kind).order_by(Campaign.id))
    q = apply_scope(q, Campaign)
    if f.operator_id:
        q = q.where(Campaign.operator_id == f.operator_id)
    return [{"id": r[0], "name": r[1], "kind": r[2], "order_count": int(r[3]), "order_amount": _dec(r[4]),
             "campaign_discount": _dec(r[5]), "discount_total": _dec(r[6])} for r in db.session.execute(q)]


def _coupon_rows(f: StatsFilters, model, key):
    start, end = _bounds(f)
    issued = (select(key, func.count(Coupon.id)).where(Coupon.created_at >= start, Coupon.created_at < end)
              .group_by(key))
    used = (select(key, func.count(Coupon.id), func.coalesce(func.sum(Coupon.discount_amount), 0))
            .where(Coupon.status == "used", Coupon.used_at >= start, Coupon.used_at < end).group_by(key))
    issued, used = apply_scope(issued, Coupon), apply_scope(used, Coupon)
    if f.operator_id:
        issued = issued.where(Coupon.operator_id == f.operator_id)
        used = used.where(Coupon.operator_id == f.operator_id)
    issued_by = {r[0]: int(r[1]) for r in db.session.execute(issued) if r[0] is not None}
    used_by = {r[0]: (int(r[1]), _dec(r[2])) for r in db.session.execute(used) if r[0] is not None}
    ids = sorted(set(issued_by) | set(used_by))
    names = {}
    if ids:
        names = {r[0]: r[1] for r in db.session.execute(select(model.id, model.name).where(model.id.in_(ids)))}
    return [{"id": i, "name": names.get(i, f"#{i}"), "issued": issued_by.get(i, 0),
             "used": used_by.get(i, (0, ZERO))[0], "discount_amount": used_by.get(i, (0, ZERO))[1]} for i in ids]


def coupon_campaign_rows(f: StatsFilters) -> list[dict]:
    return _coupon_rows(f, CouponCampaign, Coupon.campaign_id)


def coupon_template_rows(f: StatsFilters) -> list[dict]:
    return _coupon_rows(f, CouponTemplate, Coupon.template_id)


def totals(rows, keys) -> dict:
    return {k: sum((r[k] for r in rows), ZERO if isinstance(rows[0][k], Decimal) else 0) if rows else 0
            for k in keys}


def stats(f: StatsFilters) -> dict:
    return {"campaigns": campaign_rows(f), "coupon_campaigns": coupon_campaign_rows(f),
            "templates": coupon_template_rows(f)}
