"""Settlement of charging orders: exactly once per order, in one transaction.

``settle_order(order_id)``:

1. locks the order row (:func:`app.services.wallet.lock_row`: FOR UPDATE on PostgreSQL, the write
   lock on SQLite) and re-reads it;
2. already ``settled`` → no-op, returns the stored result (``already=True``);
   not ``finished`` (not priced, or the bill did not match) → :class:`NotSettleable`;
3. discounts through :mod:`app.services.discounts` (zero until the marketing issue);
   payable = total − discounts (never below 0);
4. takes the money — who pays:
   - **prepaid** (a ``Payment`` of purpose ``order`` in status ``succeeded`` for the order): the
     prepayment covers min(payable, prepaid). Unused prepayment is recorded as a refund due:
     ``order.refunded_amount`` = prepaid − covered, on the payment(s) ``Payment.refunded_amount`` +=
     the share and ``Payment.status = "refunding"`` (the payment issue executes the refund through the
     gateway and sets ``refunded`` / ``partial_refund``), an OrderEvent ``refund`` with the amounts and
     ``state: "due"``. Order ``pay_status``: ``partial_refund`` (something paid, rest refunded),
     ``refunded`` (nothing payable). If payable exceeds the prepayment (stop came late) the shortfall is
     debited from the member's wallet (as below); without a member the order stays ``partial``.
   - **member wallet** (app, card and organisation orders with a member): one WalletEntry
     ``consume`` of −payable, idempotency key ``settle:{order.id}``, linked to the order.
     ``pay_type``: kept if the start path set it, else ``card`` (card order), ``organization`` (fleet
     order), ``wallet``.
   - **organization account** (a card whose pay mode is ``organization``, app/services/organizations.py):
     the same debit is booked on the organization's ledger instead (OrganizationEntry ``consume``, same
     key, arrears allowed); the member wallet is untouched; ``pay_type`` ``organization``.
   - **partner** (no member, no prepayment: interconnect orders): no wallet movement; pay_type
     ``partner``, pay_status ``paid`` — the partner platform collects from its user and pays the
     operator through T/CEC reconciliation.
5. **Insufficient balance**: the energy has been delivered, so the full payable is debited anyway and
   the wallet goes negative (arrears, 欠费). The order is ``paid`` (paid_amount = payable); the
   settlement event records ``arrears`` (the part not covered by the balance before). A negative
   balance blocks the next start (start checks balance above the minimum) until the member recharges.
6. status ``settled``, settled_at, paid_at, OrderEvent ``settled``; commit.

Exactly once: the order row lock serialises concurrent runs (both dialects); the wallet idempotency
key and its unique constraint are the last guard — a losing run's IntegrityError is rolled back (to
its savepoint) and the winner's result returned. ``settle_order`` commits on success; it never rolls
back a transaction it did not open (its work runs in a SAVEPOINT, :func:`app.services.order_state.
savepoint`), so a caller's pending work survives a refused settlement. The status move ``finished →
settled`` goes through :func:`app.services.order_state.transition` (event ``settled``).

``enqueue_settlement(order_id)``: RQ job on queue ``settlement``, job id ``settle-{order_id}``
(a job already waiting or running for the order is reused, so duplicates collapse),
``Retry(max=3, interval=[5, 30, 120])``. Commit the finished order before enqueueing.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db, get_redis
from app.models import ChargeOrder, Payment, WalletEntry
from app.models.base import utcnow
from app.services import discounts, order_state, organizations, wallet
from app.services.money import q_amount
from app.services.pricing import breakdown_from_order

ZERO = Decimal("0.0000")
QUEUE = "settlement"
RETRY_INTERVALS = [5, 30, 120]
PAUSE_ENV = "CPMS_TEST_SETTLEMENT_PAUSE_KEY"     # test hook only, see _test_pause()


class NotSettleable(ValueError):
    """The order is not in a state that can be settled."""


@dataclass
class SettlementResult:
    order_id: int
    order_no: str
    status: str
    pay_status: str
    pay_type: str | None
    total_amount: Decimal
    discount_total: Decimal
    payable_amount: Decimal
    paid_amount: Decimal
    refunded_amount: Decimal
    wallet_entry_id: int | None
    already: bool = False

    def as_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in self.__dict__.items()}


def _result(order, session, already, entry_id=None) -> SettlementResult:
    if entry_id is None:
        entry_id = session.scalar(select(WalletEntry.id).where(WalletEntry.idempotency_key == f"settle:{order.id}"))
    return SettlementResult(order.id, order.order_no, order.status, order.pay_status, order.pay_type,
                            q_amount(order.total_amount or 0), q_amount(order.discount_total or 0),
                            q_amount(order.payable_amount or 0), q_amount(order.paid_amount or 0),
                            q_amount(order.refunded_amount or 0), entry_id, already)


def _prepaid_payments(order, session) -> list:
    return list(session.scalars(select(Payment).where(Payment.order_id == order.id, Payment.purpose == "order",
                                                      Payment.status == "succeeded").order_by(Payment.id.desc())))


def _test_pause():
    """Test hook: when the env var names a Redis key, wait here (inside the transaction) while that key
    exists, after setting ``<key>:reached`` to this process's pid (the RQ work horse). Never set outside tests."""
    key = os.environ.get(PAUSE_ENV)
    if not key:
        return
    redis = get_redis()
    redis.set(f"{key}:reached", os.getpid(), ex=600)
    deadline = time.monotonic() + 120
    while redis.exists(key) and time.monotonic() < deadline:
        time.sleep(0.05)


def _event(order, event, *, detail=None, remark=None, user_id=None):
    """An event that does not move the order (e.g. ``refund``); the move itself is ``settled``."""
    return order_state.record(order, event, detail=detail, remark=remark, user_id=user_id)


def settle_order(order_id: int, *, session=None, now=None, waive_user_id=None, remark=None) -> SettlementResult:
    """Settle the order once (see the module doc). Commits.

    ``waive_user_id``: staff closing the order without charge (:func:`app.services.order_admin.
    close_without_charge`): payable 0, no wallet movement, a prepayment is refunded in full.

    The work runs in a SAVEPOINT: a failure (not settleable, a lost race) undoes this function's
    work only — and the transaction too when this call opened it — never the caller's pending work."""
    session = session or db.session
    opened = not order_state.caller_has_work(session)
    try:
        with order_state.savepoint(session):
            result = settle_in_transaction(order_id, session=session, now=now, waive_user_id=waive_user_id,
                                           remark=remark)
    except IntegrityError:
        # a concurrent run booked the debit first (unique idempotency key): return the winner's result
        order = session.get(ChargeOrder, order_id, populate_existing=True)
        if order is not None and order.status == "settled":
            result = _result(order, session, True)
            order_state.end_own_transaction(session, opened)
            return result
        raise
    if result.already:
        order_state.end_own_transaction(session, opened)   # nothing written: release our lock
        return result
    _test_pause()
    order_state.commit(session, opened)
    return result


def settle_in_transaction(order_id: int, *, session=None, now=None, waive_user_id=None,
                          remark=None) -> SettlementResult:
    """:func:`settle_order` without the commit: lock, checks, money, the ``settled`` move, flush.
    For callers that settle as part of their own unit of work (run it in a savepoint)."""
    session = session or db.session
    now = now or utcnow()
    order = wallet.lock_row(session, ChargeOrder, order_id)
    if order is None:
        raise NotSettleable(f"Order {order_id} does not exist.")
    if order.status == "settled":
        return _result(order, session, True)
    if order.status != "finished" and waive_user_id is None:
        raise NotSettleable(f"Order {order.order_no} is {order.status}: only finished orders are settled.")
    entry = _settle_locked(order, session, now, waive_user_id, remark)
    result = _result(order, session, False, entry.id if entry is not None else 0)
    result.wallet_entry_id = entry.id if entry is not None else None
    return result


def _settle_locked(order, session, now, waive_user_id, remark):
    total = q_amount(order.total_amount or 0)
    if waive_user_id is None:
        breakdown = breakdown_from_order(order)
        found = discounts.compute_discounts(order, breakdown).clamped(breakdown)
        discounts.apply_discounts(order, found)
        discounts.commit_discounts(order, found, session)
        payable = max(total - q_amount(order.discount_total or 0), ZERO)
    else:
        found = None
        payable = ZERO
    order.payable_amount = payable
    detail = {"total": str(total), "discount": str(q_amount(order.discount_total or 0)), "payable": str(payable)}

    payments = _prepaid_payments(order, session)
    prepaid = sum((q_amount(p.amount) for p in payments), ZERO)
    paid = ZERO
    pay_status = "paid"
    entry = None
    if payments:
        covered = min(payable, prepaid)
        paid = covered
        refund = prepaid - covered
        shortfall = payable - covered
        order.pay_type = order.pay_type or (payments[0].gateway.gateway_type if payments[0].gateway else "wechat")
        detail.update(prepaid=str(prepaid), covered=str(covered))
        if refund > 0:
            _record_refund(order, payments, refund)
            pay_status = "refunded" if covered == 0 else "partial_refund"
        if shortfall > 0:
            if _has_account(order, session):
                entry = _debit(order, shortfall, session, detail)
                paid += shortfall
            else:
                pay_status = "partial"
                detail["unpaid"] = str(shortfall)
    elif waive_user_id is not None:
        order.pay_type = order.pay_type or ("partner" if order.member_id is None else None)
    elif _has_account(order, session):
        order.pay_type = order.pay_type or ("card" if order.card_id else
                                            "organization" if order.organization_id else "wallet")
        if payable > 0:
            entry = _debit(order, payable, session, detail)
        paid = payable
    else:
        order.pay_type = order.pay_type or "partner"
        paid = payable
    order.paid_amount = paid
    order.pay_status = pay_status
    order.paid_at = now
    order.settled_at = now
    if waive_user_id is not None:
        detail["action"] = "close_without_charge"
    if found is not None and found.detail:
        detail["discounts"] = found.detail
    if entry is not None:
        detail["wallet_entry_id"] = entry.id
    order_state.transition(order, "settled", "settled", detail=detail, user_id=waive_user_id, reason=remark,
                           at=now, session=session)
    session.flush()
    return entry


def _has_account(order, session):
    """The order has an account to debit: its member's wallet or its card's organization account."""
    return bool(order.member_id) or organizations.paying_organization_id(order, session) is not None


def _debit(order, amount, session, detail):
    """Debit the account that pays the order (organizations.debit_order picks it: the card's
    organization account when the card says so, else the member wallet). Returns the WalletEntry, or
    None when the organization account paid (its entry id goes into the detail)."""
    entry = organizations.debit_order(order, amount, session)
    before = q_amount(entry.balance_after) + amount
    if before < amount:
        detail["arrears"] = str(amount - max(before, ZERO))
    if not isinstance(entry, WalletEntry):
        order.pay_type = "organization"
        detail["organization_entry_id"] = entry.id
        return None
    return entry


def _record_refund(order, payments, refund):
    """Allocate the refund due over the prepayments (newest first); the payment issue executes it."""
    order.refunded_amount = refund
    left = refund
    shares = []
    for p in payments:
        if left <= 0:
            break
        share = min(left, q_amount(p.amount) - q_amount(p.refunded_amount or 0))
        if share <= 0:
            continue
        p.refunded_amount = q_amount(p.refunded_amount or 0) + share
        p.status = "refunding"
        shares.append({"payment_id": p.id, "payment_no": p.payment_no, "amount": str(share)})
        left -= share
    _event(order, "refund", detail={"amount": str(refund), "state": "due", "payments": shares})


def enqueue_settlement(order_id: int, connection=None):
    """Queue the settlement job of the order (one per order: ``settle-{order_id}``)."""
    from rq import Queue, Retry
    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus

    connection = connection or get_redis()
    job_id = f"settle-{order_id}"
    try:
        job = Job.fetch(job_id, connection=connection)
        if job.get_status(refresh=True) in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED,
                                            JobStatus.STARTED):
            return job
    except NoSuchJobError:
        pass
    return Queue(QUEUE, connection=connection).enqueue(
        "app.tasks.settlement.settle_order_job", order_id, job_id=job_id,
        retry=Retry(max=3, interval=list(RETRY_INTERVALS)), description=f"settle order {order_id}",
        result_ttl=7 * 24 * 3600, failure_ttl=30 * 24 * 3600)
