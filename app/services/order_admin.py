"""Abnormal orders (异常订单) queue: marking and the staff actions on it.

Every action is an OrderEvent with ``created_by_id`` (the staff user) and ``created_at`` (when), plus
``reviewed_by_id`` / ``reviewed_at`` on the order. Actions are accepted on ``abnormal`` and
``finished`` orders only; anything else raises :class:`OrderActionError` (a ValueError) with a
message fit for the screen.

- ``settle_with_figures``: staff enter energy, electricity fee and service fee; the breakdown becomes
  one ``manual`` period (prices = fee / energy, 5 dp), the order is finished and settled at once (the
  same exactly-once settlement as the job). Event ``manual_settle`` with old and new figures.
- ``close_without_charge``: the order is settled with payable 0 and no wallet movement; a prepayment is
  refunded in full (recorded as a refund due, see settlement). The measured energy and fees stay on the
  order as facts. Marker: status ``settled`` with ``payable_amount`` 0 and an OrderEvent ``reviewed``
  whose detail is ``{"action": "close_without_charge"}`` (the ``settled`` event carries the same action);
  :func:`closed_without_charge` tells screens.
- ``reprice``: re-runs pricing from the meter samples (and the bill); within tolerance → finished and
  settled at once; otherwise the order stays abnormal with the new reason. Event ``reviewed`` with the
  pricing result. Without a bill, the platform figure is accepted (the staff review is the check).

Status moves go through :func:`app.services.order_state.transition` (one event each). No action rolls
back a transaction it did not open: each runs in a SAVEPOINT (:func:`app.services.order_state.savepoint`),
so a refused action leaves the caller's pending work as it was; a successful one commits.
"""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import exists, select
from sqlalchemy.orm import object_session

from app.extensions import db
from app.models import ChargeOrder, OrderEvent
from app.models.base import utcnow
from app.services import order_state, wallet
from app.services.money import q_amount, q_energy, q_price
from app.services.pricing import Breakdown, PricedPeriod, apply_breakdown

ACTIONABLE = ("abnormal", "finished")


class OrderActionError(ValueError):
    """A staff action that cannot be done on this order (message shown to the user)."""


def mark_abnormal(order, reason: str, *, user_id=None, session=None, detail=None) -> None:
    """Flag ``order`` abnormal (needs review) with ``reason``; event ``marked_abnormal``. No commit.
    Raises :class:`~app.services.order_state.IllegalTransition` for a settled order."""
    reason = (reason or "Abnormal").strip()[:255]
    order_state.transition(order, "abnormal", "marked_abnormal", user_id=user_id, reason=reason, detail=detail,
                           session=session)
    order.abnormal_reason = reason
    order.needs_review = True
    (session or object_session(order) or db.session).flush()


def abnormal_queue():
    """Select of the orders in the abnormal queue (newest first); screens add their filters and scope."""
    return (select(ChargeOrder).where((ChargeOrder.status == "abnormal") | (ChargeOrder.needs_review.is_(True)))
            .order_by(ChargeOrder.id.desc()))


def closed_without_charge(order) -> bool:
    session = object_session(order) or db.session
    return order.status == "settled" and bool(session.scalar(select(exists().where(
        OrderEvent.order_id == order.id, OrderEvent.event == "reviewed",
        OrderEvent.detail["action"].as_string() == "close_without_charge"))))


def _lock_actionable(session, order_id, action):
    order = wallet.lock_row(session, ChargeOrder, order_id)
    if order is None:
        raise OrderActionError(f"Order {order_id} does not exist.")
    if order.status not in ACTIONABLE:
        raise OrderActionError(
            f"Order {order.order_no} is {order.status}: {action} is only possible for abnormal or finished orders.")
    return order


def _reviewed(order, user_id, now):
    order.needs_review = False
    order.reviewed_by_id = user_id
    order.reviewed_at = now


def _figures(order) -> dict:
    return {"energy": str(order.energy), "electricity_fee": str(order.electricity_fee),
            "service_fee": str(order.service_fee), "total_amount": str(order.total_amount)}


def _money(value, what):
    if isinstance(value, float):
        raise OrderActionError(f"{what}: give a decimal, not a float.")
    try:
        value = Decimal(str(value).strip())
    except Exception:
        raise OrderActionError(f"{what}: not a number ({value}).") from None
    if not value.is_finite() or value < 0:
        raise OrderActionError(f"{what} must be zero or more.")
    return value


def settle_with_figures(order_id, user_id, energy, electricity_fee, service_fee, remark=None, *, session=None):
    """Staff settle the order with their own figures. Returns the SettlementResult."""
    from app.services.settlement import settle_order

    session = session or db.session
    now = utcnow()
    energy = q_energy(_money(energy, "Energy"))
    e_fee = q_amount(_money(electricity_fee, "Electricity fee"))
    s_fee = q_amount(_money(service_fee, "Service fee"))
    opened = not order_state.caller_has_work(session)
    with order_state.savepoint(session):
        order = _lock_actionable(session, order_id, "settling with given figures")
        before = _figures(order)
        ep = q_price(e_fee / energy) if energy else Decimal("0")
        sp = q_price(s_fee / energy) if energy else Decimal("0")
        start = order.started_at or order.ended_at or now
        apply_breakdown(order, Breakdown([PricedPeriod(0, start, order.ended_at or start, "manual", ep, sp,
                                                       energy, e_fee, s_fee)], "manual"), session)
        _reviewed(order, user_id, now)
        order_state.transition(order, "finished", "manual_settle", user_id=user_id, reason=remark, at=now,
                               session=session, detail={"before": before, "after": _figures(order)})
    order_state.commit(session, opened)
    return settle_order(order_id, session=session)


def close_without_charge(order_id, user_id, remark=None, *, session=None):
    """Close the order without charging (payable 0, no wallet movement). Returns the SettlementResult.
    The review note (``reviewed``) and the settlement (``settled``, the one status move) are one
    transaction."""
    from app.services.settlement import settle_in_transaction

    session = session or db.session
    now = utcnow()
    opened = not order_state.caller_has_work(session)
    with order_state.savepoint(session):
        order = _lock_actionable(session, order_id, "closing without charge")
        _reviewed(order, user_id, now)
        order_state.record(order, "reviewed", user_id=user_id, remark=remark, at=now, session=session,
                           detail={"action": "close_without_charge", "figures": _figures(order)})
        result = settle_in_transaction(order_id, session=session, now=now, waive_user_id=user_id, remark=remark)
    order_state.commit(session, opened)
    return result


def reprice(order_id, user_id, remark=None, *, session=None):
    """Re-run pricing; within tolerance → finished and settled (returns the SettlementResult), else the
    order stays abnormal (returns the PricingResult). Either way one ``reviewed`` event (the move)."""
    from app.services.pricing import reprice_order
    from app.services.settlement import settle_order

    session = session or db.session
    now = utcnow()
    opened = not order_state.caller_has_work(session)
    with order_state.savepoint(session):
        order = _lock_actionable(session, order_id, "re-pricing")
        before = _figures(order)
        result = reprice_order(order, session, finish=False, flag=False)
        detail = {"action": "reprice", "ok": result.ok, "reason": result.reason, "before": before,
                  "after": _figures(order),
                  "comparison": result.comparison.as_dict() if result.comparison else None}
        if result.ok:
            _reviewed(order, user_id, now)
            to_status = "finished"
        else:
            order.abnormal_reason = (result.reason or "")[:255]
            order.needs_review = True
            to_status = "abnormal"
        order_state.transition(order, to_status, "reviewed", user_id=user_id, reason=remark, at=now,
                               session=session, detail=detail)
    order_state.commit(session, opened)
    if not result.ok:
        return result
    return settle_order(order_id, session=session)
