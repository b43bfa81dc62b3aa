"""The one owner of a charging order's status (DESIGN.md, "one owner per state machine").

Lifecycle: ``pending → starting → charging → stopping → finished → settled``, with ``failed``
(start refused or timed out) and ``abnormal`` (needs review). :data:`TRANSITIONS` is the table of
allowed moves; :func:`transition` is the only code that assigns ``ChargeOrder.status`` (a test scans
``app/`` for any other assignment). Every call writes exactly one :class:`OrderEvent` carrying the
move (``from_status``, ``to_status``), the reason (``remark``), the user (``created_by_id``, NULL =
system) and optional detail. A move the table does not allow raises :class:`IllegalTransition` and
changes nothing.

Events that record a fact without moving the order (``start_sent``, ``stop_requested`` on an order
already stopping, ``bill_received``, ``refund``, a staff review note, ...) go through :func:`record`,
the same writer.

Who moves what (callers lock the order row first; nothing here commits):

=====================  =========================================  ==================================
event                  move                                       caller
=====================  =========================================  ==================================
``start_failed``       pending/starting → failed                  :mod:`charging` (0x33 refusal, timeout)
``started``            starting → charging                        :mod:`charging` (0x13 charging)
``stop_requested``     starting/charging → stopping               :func:`charging.stop_charge`
``stopped``            charging → stopping                        :mod:`charging` (0x13 not charging)
``priced``             pending..stopping → finished               :func:`pricing.reprice_order`
``marked_abnormal``    any but settled → abnormal                 :func:`order_admin.mark_abnormal`
``manual_settle``      abnormal/finished → finished               :func:`order_admin.settle_with_figures`
``reviewed``           abnormal/finished → finished or abnormal   :func:`order_admin.reprice`
``settled``            finished (abnormal when waived) → settled  :func:`settlement.settle_order`
=====================  =========================================  ==================================

Orders are *created* with their first status (``starting``, or ``abnormal`` for a bill nobody
started) and a ``created`` / ``marked_abnormal`` event; creation is not a move.

:func:`savepoint` is the transaction rule of the status-changing services: they never roll back a
transaction they did not open. Their work runs in a SAVEPOINT; a failure undoes that work only (and
the transaction too when the service opened it), so the caller's pending work survives.
"""
from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import select
from sqlalchemy.orm import object_session, scoped_session

from app.extensions import db
from app.models import OrderEvent
from app.models.base import utcnow

TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"starting", "failed", "finished", "abnormal"}),
    "starting": frozenset({"charging", "stopping", "failed", "finished", "abnormal"}),
    "charging": frozenset({"stopping", "finished", "abnormal"}),
    "stopping": frozenset({"finished", "abnormal"}),
    # finished → finished: staff replace the figures (manual settlement) before it is settled
    "finished": frozenset({"finished", "settled", "abnormal"}),
    # abnormal → abnormal: a review that still disagrees keeps it in the queue with the new reason
    "abnormal": frozenset({"abnormal", "finished", "settled"}),
    # a late bill for a failed start proves energy was delivered: review it
    "failed": frozenset({"abnormal"}),
    "settled": frozenset(),                 # final: money has moved
}

# facts that happen once per order although they can be reported twice: the 0x33 start reply
# reaches the platform both as the command's answer and through the gateway's hook
ONCE_PER_ORDER = frozenset({"start_sent"})

_CURRENT = object()

# an order that reaches one of these without having used the coupon locked for it at start gives it back
# (failed start; closed without charge; settled without the coupon): the one release point
COUPON_RELEASING = frozenset({"failed", "settled"})


class IllegalTransition(ValueError):
    """An order status move that :data:`TRANSITIONS` does not allow."""

    def __init__(self, order, to_status: str):
        self.order_id = order.id
        self.order_no = order.order_no
        self.from_status = order.status
        self.to_status = to_status
        super().__init__(f"Order {order.order_no or order.id} cannot move from {order.status} to {to_status}.")


def allowed(from_status: str | None, to_status: str) -> bool:
    """True when ``from_status → to_status`` is in the table."""
    return to_status in TRANSITIONS.get(from_status, ())


def _session(order, session=None):
    return session or object_session(order) or db.session


def _write(order, event, *, from_status, to_status, user_id, remark, detail, at, session):
    ev = OrderEvent(order=order, operator_id=order.operator_id, event=event, from_status=from_status,
                    to_status=to_status, detail=detail, remark=(remark or None) and str(remark)[:255],
                    created_by_id=user_id, created_at=at or utcnow())
    _session(order, session).add(ev)
    return ev


def transition(order, to_status: str, event: str, *, user_id=None, reason=None, detail=None, at=None,
               session=None) -> OrderEvent:
    """Move ``order`` to ``to_status`` and write its one event (``event``, from, to, ``reason``,
    ``user_id``, ``detail``). Raises :class:`IllegalTransition` (nothing changed) for a move the
    table does not allow. No flush, no commit."""
    if to_status not in TRANSITIONS:
        raise IllegalTransition(order, to_status)
    from_status = order.status
    if not allowed(from_status, to_status):
        raise IllegalTransition(order, to_status)
    order.status = to_status
    ev = _write(order, event, from_status=from_status, to_status=to_status, user_id=user_id, remark=reason,
                detail=detail, at=at, session=session)
    if to_status in COUPON_RELEASING:
        from app.services import discounts

        discounts.release_coupons(order, _session(order, session))
    return ev


def has_event(order, event: str, session=None) -> bool:
    if order.id is None:
        return any(e.event == event for e in order.events)
    return _session(order, session).scalar(
        select(OrderEvent.id).where(OrderEvent.order_id == order.id, OrderEvent.event == event).limit(1)) is not None


def record(order, event: str, *, user_id=None, remark=None, detail=None, at=None, session=None,
           from_status=_CURRENT, once: bool = False) -> OrderEvent | None:
    """An event that does not move the order (to_status = its current status; from_status the
    same unless given). ``once`` (always for :data:`ONCE_PER_ORDER`): write nothing when the order
    already has an ``event`` event (returns None) — a fact reported twice is recorded once."""
    if (once or event in ONCE_PER_ORDER) and has_event(order, event, session):
        return None
    return _write(order, event, from_status=order.status if from_status is _CURRENT else from_status,
                  to_status=order.status, user_id=user_id, remark=remark, detail=detail, at=at, session=session)


def _real(session):
    return session() if isinstance(session, scoped_session) else session


def in_transaction(session) -> bool:
    """True when ``session`` (a Session or the scoped ``db.session``) has a transaction open."""
    return _real(session).in_transaction()


def caller_has_work(session) -> bool:
    """True when the caller has a transaction open or changes pending in ``session`` (its work,
    which a service must not roll back)."""
    real = _real(session)
    return real.in_transaction() or bool(real.new or real.dirty or real.deleted)


@contextmanager
def savepoint(session):
    """Run the block so that an error undoes the block's work and nothing of the caller's.

    - the caller has a transaction open or pending changes: the block runs in a SAVEPOINT; an error
      rolls back to it, leaving the caller's transaction and pending work (flushed when the savepoint
      began) as they were;
    - neither: the block's work opens the transaction, so it is the block's to roll back on an error
      (which also releases the locks it took). No SAVEPOINT there: with pysqlite, releasing a savepoint
      that began the transaction would commit it early.

    The error propagates. Nothing is committed here."""
    if caller_has_work(session):
        with session.begin_nested():
            yield
        return
    try:
        yield
    except BaseException:
        session.rollback()
        raise


def end_own_transaction(session, opened: bool) -> None:
    """Release what a read-only service call opened (locks taken to look): roll back only a
    transaction the call itself began."""
    if opened and in_transaction(session):
        session.rollback()


def commit(session, opened: bool) -> None:
    """Commit a service's unit of work; if the commit fails, roll back only a transaction the service
    itself opened (``opened``: no transaction was open when it was called)."""
    try:
        session.commit()
    except BaseException:
        if opened and in_transaction(session):
            session.rollback()
        raise
