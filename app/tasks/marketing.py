"""Coupon jobs (app.services.coupons): order rewards and registration gifts queued by the domain
signals, and the expiry cron."""
from app.security.scope import platform_job


@platform_job("coupon-order-reward")
def order_reward_job(order_id):
    """The ``order_finished`` coupon campaigns of a settled order."""
    from app.services import coupons

    r = coupons.on_order_finished(order_id)
    return {"members": r.members, "coupons": r.coupons, "refused": r.refused}


@platform_job("coupon-registration-gift")
def registration_gift_job(member_id):
    """The ``register`` coupon campaigns of a new member."""
    from app.services import coupons

    r = coupons.on_member_registered(member_id)
    return {"members": r.members, "coupons": r.coupons, "refused": r.refused}


@platform_job("coupon-expiry")
def expire_coupons():
    """Cron: unused coupons past their validity become ``expired``."""
    from app.services import coupons

    return coupons.expire_coupons()
