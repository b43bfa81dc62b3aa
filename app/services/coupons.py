"""Coupons issued to members (卡券列表 / 卡券活动): issuing, coupon campaign runs, expiry, voiding.

Issuing (:func:`issue`) is the one write path for every source (staff "issue now", registration gift,
order reward, a member's claim, the demo data): it checks the template and the member, takes stock and
the per-member limit atomically, computes the validity and writes the coupons with unique codes. It
flushes, never commits: the caller owns the transaction (campaign runs below open and commit their own).

Atomicity: stock is taken by one conditional ``UPDATE ev_coupon_template SET issued_quantity =
issued_quantity + n WHERE id = :id AND enabled AND (total_quantity IS NULL OR issued_quantity + n <=
total_quantity)``. The row is updated even without a stock limit: the UPDATE holds the template row's
write lock (PostgreSQL row lock; SQLite's database write lock) until the caller commits, so concurrent
issues of one template serialise there. The per-member count is read *after* the UPDATE, in a new
statement, so it sees every coupon committed by a concurrent issue that held the lock before (READ
COMMITTED gives each statement a fresh snapshot; on SQLite the transaction began at the UPDATE). Over the
limit, the stock taken is given back in the same transaction and :class:`CouponIssueError` is raised:
nothing is left written, so the caller may go on with the same transaction.

Validity: a fixed-date template gives its dates (refused once its end has passed); a "days after receipt"
template of N days gives ``[now, the local midnight ending the N-th local day)`` (the receipt day is day 1).
``valid_to`` is exclusive, as :mod:`app.services.discounts` reads it.

Campaign triggers: ``manual`` (:func:`run_campaign`, the "issue now" action: all / selected members,
filtered by registration dates and order count), ``register`` (:func:`on_member_registered`, from the
``member_registered`` signal), ``order_finished`` (:func:`on_order_finished`, from ``order_finished``,
which this module sends after the commit of a settlement: :func:`install`). Signal receivers only queue
an RQ job (``app.tasks.marketing``); the job issues in its own transaction. Each campaign gives a member
its coupons once per trigger: once per registration, once per order, and a manual run skips members that
already received coupons of the campaign.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, event, func, or_, select, update
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import ChargeOrder, Coupon, CouponCampaign, CouponTemplate, Member, OrderEvent
from app.models.marketing import coupon_campaign_member
from app.security.scope import check_item
from app.services import clock

log = logging.getLogger(__name__)

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"   # no 0/O, 1/I: read aloud or typed
CODE_LENGTH = 14                                      # "CP" + 14 characters: ~70 bits
SOURCES = ("manual", "register", "order_finished", "claim")
MAX_PER_ISSUE = 100


class CouponIssueError(ValueError):
    """A coupon could not be issued (``code`` stable, message shown to the user)."""

    def __init__(self, code, message):
        super().__init__(str(message))
        self.code = code
        self.message = message


class CouponVoidError(ValueError):
    """Only unused coupons can be voided."""


MESSAGES = {
    "disabled": _l("The coupon is disabled."),
    "expired": _l("The coupon's validity period is over."),
    "out_of_stock": _l("The coupon is out of stock."),
    "limit_reached": _l("The member already holds as many of this coupon as allowed."),
    "other_operator": _l("The coupon and the member belong to different operators."),
    "bad_quantity": _l("The quantity must be between 1 and 100."),
    "member_inactive": _l("The member account is not active."),
}


def _error(code):
    return CouponIssueError(code, MESSAGES[code])


def new_code():
    return "CP" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def validity(template, now):
    """(valid_from, valid_to) of a coupon of ``template`` received at ``now`` (naive UTC); valid_to exclusive."""
    if template.validity_mode == "relative":
        days = max(int(template.valid_days or 1), 1)
        last_day = clock.local_date(now) + timedelta(days=days - 1)
        return now, clock.day_bounds_utc(last_day)[1]
    return template.valid_from, template.valid_to


def _session_of(session):
    return session or db.session


def issue(template, member, *, source, campaign=None, quantity=1, order=None, now=None, session=None) -> list:
    """Give ``member`` ``quantity`` coupons of ``template`` (atomically: module doc). Returns the new
    coupons (flushed, not committed); raises :class:`CouponIssueError` and writes nothing when refused."""
    session = _session_of(session)
    now = now or clock.utcnow()
    if source not in SOURCES:
        raise ValueError(f"unknown coupon source {source!r}")
    if not isinstance(quantity, int) or not 1 <= quantity <= MAX_PER_ISSUE:
        raise _error("bad_quantity")
    if member.operator_id != template.operator_id or (campaign is not None
                                                      and campaign.operator_id != template.operator_id):
        raise _error("other_operator")
    if member.status != "active":
        raise _error("member_inactive")
    if not template.enabled:
        raise _error("disabled")
    valid_from, valid_to = validity(template, now)
    if valid_to is not None and valid_to <= now:
        raise _error("expired")
    t = CouponTemplate.__table__
    taken = session.execute(
        update(t).where(t.c.id == template.id, t.c.enabled.is_(True),
                        or_(t.c.total_quantity.is_(None), t.c.issued_quantity + quantity <= t.c.total_quantity))
        .values(issued_quantity=t.c.issued_quantity + quantity)
        .execution_options(synchronize_session=False)).rowcount
    if taken != 1:
        session.expire(template, ["issued_quantity", "enabled"])
        raise _error("out_of_stock" if template.enabled else "disabled")
    limit = session.scalar(select(t.c.per_member_limit).where(t.c.id == template.id))
    if limit is not None:
        held = session.scalar(select(func.count(Coupon.id)).where(
            Coupon.template_id == template.id, Coupon.member_id == member.id, Coupon.status != "void"))
        if held + quantity > limit:
            session.execute(update(t).where(t.c.id == template.id)
                            .values(issued_quantity=t.c.issued_quantity - quantity)
                            .execution_options(synchronize_session=False))
            session.expire(template, ["issued_quantity"])
            raise _error("limit_reached")
    session.expire(template, ["issued_quantity"])
    out = []
    for _ in range(quantity):
        coupon = Coupon(
            operator_id=template.operator_id, code=new_code(), template=template, campaign=campaign,
            member=member, status="unused", coupon_type=template.coupon_type, target=template.target,
            discount_rate=template.discount_rate, threshold=template.threshold or 0,
            face_value=template.face_value, max_discount=template.max_discount, valid_from=valid_from,
            valid_to=valid_to, source=source, source_order_id=order.id if order is not None else None,
            created_at=now)
        check_item(coupon)
        session.add(coupon)
        out.append(coupon)
    session.flush()
    return out


# --- voiding and expiry -------------------------------------------------------------------------------------


def void(coupon, *, session=None) -> None:
    """An unused coupon is voided (staff); used, locked, expired coupons stay as they are. No commit."""
    session = _session_of(session)
    check_item(coupon)
    done = session.execute(update(Coupon).where(Coupon.id == coupon.id, Coupon.status == "unused")
                           .values(status="void", updated_at=clock.utcnow())
                           .execution_options(synchronize_session=False)).rowcount
    session.expire(coupon, ["status", "updated_at"])
    if done != 1:
        raise CouponVoidError(_l("Only unused coupons can be voided."))


def expire_coupons(now=None, *, session=None) -> int:
    """Unused coupons whose validity ended are marked ``expired`` (the cron job); commits. Locked coupons
    are left to their order (released or used at settlement)."""
    session = _session_of(session)
    now = now or clock.utcnow()
    n = session.execute(update(Coupon).where(Coupon.status == "unused", Coupon.valid_to.is_not(None),
                                             Coupon.valid_to <= now)
                        .values(status="expired", updated_at=now)
                        .execution_options(synchronize_session=False)).rowcount
    session.commit()
    return n


def effective_status(coupon, now=None):
    """The status a member sees: an unused coupon past its end is expired even before the job ran."""
    now = now or clock.utcnow()
    if coupon.status == "unused" and coupon.valid_to is not None and coupon.valid_to <= now:
        return "expired"
    return coupon.status


def member_coupons_query(member, status=None, now=None):
    """The member's coupons (newest first), optionally by the status the member sees."""
    now = now or clock.utcnow()
    q = select(Coupon).where(Coupon.member_id == member.id, Coupon.operator_id == member.operator_id)
    current = or_(Coupon.valid_to.is_(None), Coupon.valid_to > now)
    if status == "unused":
        q = q.where(Coupon.status == "unused", current)
    elif status == "expired":
        q = q.where(or_(Coupon.status == "expired", and_(Coupon.status == "unused", ~current)))
    elif status:
        q = q.where(Coupon.status == status)
    return q.order_by(Coupon.created_at.desc(), Coupon.id.desc())


def usable_coupons(member, station_id, now=None) -> list:
    """The member's unused coupons valid now and usable at ``station_id`` (soonest to expire first)."""
    now = now or clock.utcnow()
    rows = db.session.scalars(select(Coupon).where(
        Coupon.member_id == member.id, Coupon.operator_id == member.operator_id, Coupon.status == "unused",
        or_(Coupon.valid_from.is_(None), Coupon.valid_from <= now),
        or_(Coupon.valid_to.is_(None), Coupon.valid_to > now))).all()
    out = [c for c in rows if c.template is None or c.template.all_stations
           or station_id in {s.id for s in c.template.stations}]
    return sorted(out, key=lambda c: (c.valid_to or datetime.max, c.id))


# --- campaigns ----------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    members: int = 0                         # members that received at least one coupon
    coupons: int = 0
    refused: dict = field(default_factory=dict)   # error code -> count (per member and template)
    skipped: int = 0                         # members that had received the campaign's coupons already

    def add_refusal(self, code):
        self.refused[code] = self.refused.get(code, 0) + 1


def campaign_running(campaign, now):
    return bool(campaign.enabled) and campaign.start_at <= now < campaign.end_at


def settled_count_subquery():
    return (select(ChargeOrder.member_id, func.count(ChargeOrder.id).label("n"))
            .where(ChargeOrder.status == "settled", ChargeOrder.member_id.is_not(None))
            .group_by(ChargeOrder.member_id).subquery())


def campaign_members(campaign):
    """The query of the member ids a manual run of ``campaign`` gives coupons to."""
    q = select(Member.id).where(Member.operator_id == campaign.operator_id, Member.status == "active")
    if campaign.scope == "selected":
        q = q.where(Member.id.in_(select(coupon_campaign_member.c.member_id)
                                  .where(coupon_campaign_member.c.campaign_id == campaign.id)))
    if campaign.registered_from is not None:
        q = q.where(Member.created_at >= campaign.registered_from)
    if campaign.registered_to is not None:
        q = q.where(Member.created_at < campaign.registered_to)
    if campaign.min_orders:
        counts = settled_count_subquery()
        q = q.join(counts, counts.c.member_id == Member.id).where(counts.c.n >= campaign.min_orders)
    return q.order_by(Member.id)


def _give(campaign, member, source, result, *, order=None, now=None, session=None):
    """Every item of ``campaign`` to ``member`` (each item on its own: one out of stock does not stop
    the others). Returns the coupons written."""
    written = []
    for item in campaign.items:
        try:
            written += issue(item.template, member, source=source, campaign=campaign, quantity=item.quantity,
                             order=order, now=now, session=session)
        except CouponIssueError as exc:
            result.add_refusal(exc.code)
    if written:
        result.members += 1
        result.coupons += len(written)
    return written


def _already(campaign_id, member_id, session, order_id=None):
    q = select(Coupon.id).where(Coupon.campaign_id == campaign_id, Coupon.member_id == member_id)
    if order_id is not None:
        q = q.where(Coupon.source_order_id == order_id)
    return session.scalar(q.limit(1)) is not None


def run_campaign(campaign_id, *, now=None, session=None) -> RunResult:
    """Manual issue ("issue now"): the campaign's coupons to each of its members that has none of them
    yet. Commits after each member (a long run keeps what it gave if it stops)."""
    session = _session_of(session)
    now = now or clock.utcnow()
    campaign = session.get(CouponCampaign, campaign_id)
    if campaign is None:
        raise CampaignRunError(_l("The coupon campaign does not exist."))
    check_item(campaign)
    if campaign.trigger != "manual":
        raise CampaignRunError(_l("Only manual campaigns are issued by hand; the others issue by themselves."))
    if not campaign_running(campaign, now):
        raise CampaignRunError(_l("The campaign is disabled or outside its time window."))
    if not campaign.items:
        raise CampaignRunError(_l("Choose the coupons the campaign gives first."))
    member_ids = session.scalars(campaign_members(campaign)).all()
    result = RunResult()
    for member_id in member_ids:
        if _already(campaign.id, member_id, session):
            result.skipped += 1
            continue
        _give(campaign, session.get(Member, member_id), "manual", result, now=now, session=session)
        session.commit()
    campaign = session.get(CouponCampaign, campaign_id)
    campaign.last_issued_at = now
    session.commit()
    return result


class CampaignRunError(ValueError):
    """A campaign cannot be issued now (message shown to staff)."""


def _trigger_campaigns(operator_id, trigger, at, session):
    return session.scalars(select(CouponCampaign).where(
        CouponCampaign.operator_id == operator_id, CouponCampaign.trigger == trigger,
        CouponCampaign.enabled.is_(True), CouponCampaign.start_at <= at, CouponCampaign.end_at > at)
        .order_by(CouponCampaign.id)).all()


def _in_scope(campaign, member_id, session):
    if campaign.scope != "selected":
        return True
    return session.scalar(select(coupon_campaign_member.c.member_id).where(
        coupon_campaign_member.c.campaign_id == campaign.id,
        coupon_campaign_member.c.member_id == member_id)) is not None


def on_member_registered(member_id, *, now=None, session=None) -> RunResult:
    """Registration gift: the running ``register`` campaigns of the member's operator (once each). Commits."""
    session = _session_of(session)
    now = now or clock.utcnow()
    result = RunResult()
    member = session.get(Member, member_id)
    if member is None or member.status != "active":
        return result
    for campaign in _trigger_campaigns(member.operator_id, "register", now, session):
        if not _in_scope(campaign, member.id, session) or _already(campaign.id, member.id, session):
            continue
        _give(campaign, member, "register", result, now=now, session=session)
        session.commit()
    return result


def order_qualifies(campaign, order, nth) -> bool:
    """``order`` (the member's ``nth`` settled order) earns ``campaign``'s coupons."""
    if campaign.order_count and nth != campaign.order_count:
        return False
    if campaign.order_min_amount is not None and (order.total_amount or 0) < campaign.order_min_amount:
        return False
    return True


def on_order_finished(order_id, *, now=None, session=None) -> RunResult:
    """Order reward: the ``order_finished`` campaigns running when the order was settled (once per order
    and campaign). Commits."""
    session = _session_of(session)
    result = RunResult()
    order = session.get(ChargeOrder, order_id)
    if order is None or order.status != "settled" or not order.member_id:
        return result
    at = order.settled_at or now or clock.utcnow()
    campaigns = _trigger_campaigns(order.operator_id, "order_finished", at, session)
    if not campaigns:
        return result
    member = session.get(Member, order.member_id)
    if member is None or member.status != "active" or member.operator_id != order.operator_id:
        return result
    nth = session.scalar(select(func.count(ChargeOrder.id)).where(
        ChargeOrder.member_id == member.id, ChargeOrder.status == "settled",
        or_(ChargeOrder.settled_at < at, and_(ChargeOrder.settled_at == at, ChargeOrder.id <= order.id))))
    for campaign in campaigns:
        if not _in_scope(campaign, member.id, session) or not order_qualifies(campaign, order, nth):
            continue
        if _already(campaign.id, member.id, session, order_id=order.id):
            continue
        _give(campaign, member, "order_finished", result, order=order, now=now, session=session)
        session.commit()
    return result


# --- signals ------------------------------------------------------------------------------------------------
_SESSION_KEY = "cpms_settled_orders"


def _collect_settled(session, flush_context):
    found = session.info.get(_SESSION_KEY)
    for obj in session.new:
        if isinstance(obj, OrderEvent) and obj.event == "settled":
            if found is None:
                found = session.info[_SESSION_KEY] = []
            found.append(obj.order_id if obj.order_id is not None else obj.order.id)


def _send_settled(session):
    found = session.info.pop(_SESSION_KEY, None)
    if not found:
        return
    from app.services import events

    for order_id in dict.fromkeys(found):
        try:
            events.order_finished.send(None, order_id=order_id)
        except Exception:  # a receiver must never fail the committed settlement
            log.exception("order_finished receivers failed for order %s", order_id)


def _forget_settled(session, previous_transaction):
    if previous_transaction.parent is None:
        session.info.pop(_SESSION_KEY, None)


def install_order_finished_signal():
    """Every Session: a committed ``settled`` order event sends ``events.order_finished(order_id=...)``
    after the commit (the receivers run inside SQLAlchemy's after_commit: they must not use the session;
    they queue a job)."""
    if not event.contains(Session, "after_flush", _collect_settled):
        event.listen(Session, "after_flush", _collect_settled)
        event.listen(Session, "after_commit", _send_settled)
        event.listen(Session, "after_soft_rollback", _forget_settled)


def _queue():
    from rq import Queue

    from app.extensions import get_redis

    return Queue("default", connection=get_redis())


def queue_order_reward(sender, order_id=None, **_kw):
    """Receiver of ``order_finished``: queue :func:`app.tasks.marketing.order_reward_job`."""
    try:
        _queue().enqueue("app.tasks.marketing.order_reward_job", order_id, job_id=f"coupon-order-{order_id}",
                         description=f"order reward coupons of order {order_id}", result_ttl=3600)
    except Exception:
        log.exception("could not queue the order reward of order %s", order_id)


def queue_registration_gift(sender, member_id=None, **_kw):
    """Receiver of ``member_registered``: queue :func:`app.tasks.marketing.registration_gift_job`."""
    try:
        _queue().enqueue("app.tasks.marketing.registration_gift_job", member_id,
                         job_id=f"coupon-register-{member_id}",
                         description=f"registration gift coupons of member {member_id}", result_ttl=3600)
    except Exception:
        log.exception("could not queue the registration gift of member %s", member_id)


def install():
    """Called by app.services.subscribers.install(): the settlement signal and the two receivers."""
    from app.services import events

    install_order_finished_signal()
    events.order_finished.connect(queue_order_reward, weak=False)
    events.member_registered.connect(queue_registration_gift, weak=False)
