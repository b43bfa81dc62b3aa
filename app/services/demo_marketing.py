"""Demo marketing (issue 13 §7), loaded with the demo data before any demo history is replayed:

- operator A: an operation campaign on all its stations (electricity 9 折, service fee 8 折), running from
  long before the history's first day, so every replayed and every new order of A's stations is discounted;
- both operators: coupon templates and coupon campaigns (registration gift, first-order reward, a staff
  issue to all members), the staff issue run at once through :func:`app.services.coupons.run_campaign`,
  so every demo member holds coupons.

``DEMO_MARKETING`` off (the test configuration: the shared test database's money examples are priced
without campaigns or coupons) loads none of it.
"""
from datetime import timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import Campaign, CouponCampaign, CouponCampaignItem, CouponTemplate
from app.services import campaigns, clock, coupons

PAST = timedelta(days=400)      # before the longest demo history (366 days)
FUTURE = timedelta(days=3 * 365)


def _template(op, name, coupon_type, target, now, *, zhe=None, threshold=0, face_value=None, max_discount=None,
              days=None, total=None, per_member=None, description=None):
    t = CouponTemplate(
        operator=op, name=name, coupon_type=coupon_type, target=target, description=description or name,
        discount_rate=campaigns.zhe_to_rate(zhe) if zhe is not None else None, threshold=Decimal(threshold),
        face_value=Decimal(face_value) if face_value is not None else None,
        max_discount=Decimal(max_discount) if max_discount is not None else None,
        validity_mode="relative" if days else "fixed", valid_days=days,
        valid_from=None if days else now - timedelta(days=1), valid_to=None if days else now + timedelta(days=365),
        all_stations=True, total_quantity=total, per_member_limit=per_member, enabled=True)
    db.session.add(t)
    return t


def _campaign(op, name, trigger, items, now, **kw):
    c = CouponCampaign(operator=op, name=name, tag=kw.pop("tag", None), start_at=now - PAST, end_at=now + FUTURE,
                       position="home", description=name, trigger=trigger, scope="all", enabled=True, **kw)
    for template, qty in items:
        c.items.append(CouponCampaignItem(template=template, quantity=qty))
    db.session.add(c)
    return c


def load_demo_marketing(ops) -> str:
    """Campaign, coupon templates, coupon campaigns and issued coupons of the demo operators (idempotent)."""
    session = db.session
    if not current_app.config["DEMO_MARKETING"]:
        return "demo marketing not loaded (DEMO_MARKETING off)"
    if session.scalar(select(CouponTemplate.id).where(CouponTemplate.operator_id == ops[0].id).limit(1)):
        return "demo marketing already loaded"
    now = clock.utcnow()
    op_a, op_b = ops[0], ops[1]
    session.add(Campaign(
        operator=op_a, kind="operation", name="充电优惠季", tag="限时优惠", position="station_page",
        all_stations=True, start_at=now - PAST, end_at=now + FUTURE, discount_mode="fixed",
        electricity_rate=campaigns.zhe_to_rate("9"), service_rate=campaigns.zhe_to_rate("8"),
        description="电费9折，服务费8折", enabled=True, priority=10))
    new_a = _template(op_a, "新人折扣券", "discount", "total", now, zhe="8.8", max_discount="20", days=30,
                      per_member=1, description="新用户充电总费用8.8折，最多优惠20元")
    reduce_a = _template(op_a, "服务费满减券", "full_reduction", "service", now, threshold="10", face_value="3",
                         days=15, per_member=5, description="服务费满10元减3元")
    deduct_a = _template(op_a, "充电抵扣券", "deduction", "total", now, face_value="5", total=10000,
                         per_member=3, description="充电总费用抵扣5元")
    deduct_b = _template(op_b, "新人抵扣券", "deduction", "service", now, face_value="4", days=30, per_member=2,
                         description="服务费抵扣4元")
    _campaign(op_a, "新人优惠券", "register", [(new_a, 1)], now, tag="新人礼")
    _campaign(op_a, "结束订单发券", "order_finished", [(reduce_a, 1)], now, order_count=1, tag="首单奖励")
    staff_a = _campaign(op_a, "会员回馈", "manual", [(deduct_a, 2), (reduce_a, 1)], now)
    staff_b = _campaign(op_b, "新人抵扣", "manual", [(deduct_b, 1)], now)
    session.commit()
    given = [coupons.run_campaign(c.id, now=now) for c in (staff_a, staff_b)]
    return f"Demo marketing: {sum(r.coupons for r in given)} coupons issued to {sum(r.members for r in given)} members."
