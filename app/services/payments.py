"""Payments (支付记录) and refunds (退款): every payment rule, for the member API, the WeChat Pay callbacks, the
admin, the jobs and the demo data alike. WeChat Pay itself is spoken only by :mod:`app.services.wechatpay`.

Top-up: :func:`create_topup` writes the payment (``pending``) and returns the JSAPI parameters for
``wx.requestPayment``. The money is credited only by :func:`apply_transaction`, the one credit function,
called for a verified notification (:func:`handle_payment_notification`), for the pending-payment query
(:func:`query_pending_payments`) and for the demo gateway (:func:`confirm_demo_payment`). It locks the member
then the payment, credits the wallet under ``idempotency_key="pay:<payment_no>"`` and marks the payment
``succeeded`` with WeChat's transaction id: the same notification twice, or concurrently, credits once. An
amount that disagrees with the payment is not credited: the payment goes to ``review`` (logged).

Refunds have one path (:class:`app.models.Refund`): ``Payment.refunded_amount`` is the amount of the
payment reserved for refunds (sent, in flight or done), never more than the payment's amount.

- unused prepaid amounts of orders: settlement reserves them on the payment and marks it ``refunding``
  (``settlement._record_refund``); :func:`sync_order_refunds` writes the refund rows of what is reserved but
  has no refund yet;
- a member's wallet refund (:func:`request_wallet_refund`): the wallet is debited first (ledger entry
  ``refund``), then the amount is refunded against the member's successful top-ups, newest first, split over
  several payments if needed.

:func:`send_refund` asks WeChat (idempotent by ``refund_no``; network failures leave the refund ``pending``
for the next run), :func:`apply_refund_result` records WeChat's answer or refund notification once:
SUCCESS -> ``succeeded``; CLOSED / ABNORMAL / refused -> ``failed``: the reservation goes back to the payment
and, for a wallet refund, the amount back to the wallet (ledger entry). A failed refund can be retried
(:func:`retry_refund`).

Lock order everywhere: member, then payments (by id), then refunds: no deadlock between a notification, a
refund request and a refund result.

Units of work: the functions that say so commit (or roll back what they did); the others only flush.
"""
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Member, Payment, PaymentGateway, Refund, WalletEntry
from app.services import clock, wallet, wechatpay
from app.services.money import has_places, q_amount, q_pile_balance, to_decimal
from app.services.wallet import lock_member, lock_row

log = logging.getLogger(__name__)

ZERO = Decimal("0")
FEN = Decimal("0.01")
PAID = ("succeeded", "refunding", "refunded", "partial_refund")       # the money was received
OPEN = ("created", "pending")                                         # waiting for the payer
IN_FLIGHT = ("pending", "processing")                                 # refunds not finished
RESERVED = ("pending", "processing", "succeeded")                     # refunds that hold their amount
REFUNDABLE_DAYS = 365                                                 # WeChat refunds payments up to a year old


class PaymentError(ValueError):
    """A payment request that cannot be done; ``code`` is stable (the member API maps it)."""

    def __init__(self, code, message=None):
        super().__init__(message or code)
        self.code = code


class UnknownGateway(LookupError):
    pass


@dataclass
class TopUp:
    payment: Payment
    pay_params: dict


# ----- helpers --------------------------------------------------------------------------------------------------
def to_fen(amount):
    amount = q_amount(amount)
    if not has_places(amount, FEN):
        raise PaymentError("amount_invalid", "amounts paid through the gateway are whole fen")
    return int(amount * 100)


def to_fen_or_none(amount):
    """Fen of ``amount``, or None when it is not whole fen."""
    amount = q_amount(amount)
    return int(amount * 100) if has_places(amount, FEN) else None


def from_fen(fen):
    return q_amount(to_decimal(fen) / 100)


def _new_no(prefix):
    """``P``/``R`` + local yymmddHHMMSS + 12 hex: unique, 25 chars (WeChat allows 6-32 of [0-9A-Za-z_-|*])."""
    return prefix + clock.local_now().strftime("%y%m%d%H%M%S") + uuid.uuid4().hex[:12].upper()


def new_payment_no():
    return _new_no("P")


def new_refund_no():
    return _new_no("R")


def notify_url(gateway, kind="notify"):
    return f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/pay/wechat/{gateway.code}/{kind}"


def topup_gateway(session=None):
    """The gateway members top up through: the first enabled WeChat Pay gateway with credentials."""
    session = session or db.session
    for gateway in session.scalars(select(PaymentGateway).where(PaymentGateway.gateway_type == "wechat",
                                                                PaymentGateway.enabled.is_(True))
                                   .order_by(PaymentGateway.sort, PaymentGateway.id)):
        if wechatpay.configured(gateway):
            return gateway
    return None


def gateway_by_code(code, session=None):
    session = session or db.session
    gateway = session.scalar(select(PaymentGateway).where(PaymentGateway.code == code))
    if gateway is None or gateway.gateway_type != "wechat":
        raise UnknownGateway(code)
    return gateway


def set_credentials(gateway, *, mchid=None, appid=None, merchant_serial_no=None, api_v3_key=None,
                    private_key=None, platform_public_key=None, platform_public_key_id=None):
    """Store the gateway's WeChat Pay credentials; secrets sealed (app.services.secrets_box). A secret given
    as None/empty keeps the stored one (write-only fields). Does not commit."""
    from app.services.secrets_box import seal

    for name, value in (("mchid", mchid), ("appid", appid), ("merchant_serial_no", merchant_serial_no),
                        ("platform_public_key_id", platform_public_key_id)):
        if value is not None:
            setattr(gateway, name, value.strip() or None)
    for name, value in (("api_v3_key_enc", api_v3_key), ("private_key_enc", private_key),
                        ("platform_public_key_enc", platform_public_key)):
        if value:
            setattr(gateway, name, seal(value.strip()))


def _payment_id(session, payment_no):
    return session.scalar(select(Payment.id).where(Payment.payment_no == payment_no))


def _lock_payment(session, payment_id):
    """Member (if any) then payment locked; the payment freshly loaded."""
    member_id = session.scalar(select(Payment.member_id).where(Payment.id == payment_id))
    if member_id:
        lock_member(session, member_id)
    return lock_row(session, Payment, payment_id)


# ----- top-ups --------------------------------------------------------------------------------------------------
def create_topup(member_id, amount, *, gateway=None, session=None):
    """A wallet top-up of ``amount`` yuan by the member: the payment (``pending``) and the parameters of
    ``wx.requestPayment``. A unit of work (commits the payment before and after asking WeChat).
    PaymentError codes: amount_invalid, member_disabled, no_gateway, no_openid, gateway_unavailable."""
    session = session or db.session
    cfg = current_app.config
    try:
        raw = to_decimal(amount)
        amount = q_amount(raw)
    except Exception:
        raise PaymentError("amount_invalid") from None
    if (not raw.is_finite() or not has_places(raw, FEN) or amount < to_decimal(cfg["PAYMENT_MIN_TOPUP"])
            or amount > to_decimal(cfg["PAYMENT_MAX_TOPUP"])):
        raise PaymentError("amount_invalid")
    member = session.get(Member, member_id, populate_existing=True)
    if member is None or member.status != "active":
        raise PaymentError("member_disabled")
    gateway = gateway or topup_gateway(session)
    if gateway is None:
        raise PaymentError("no_gateway")
    if gateway.gateway_type == "wechat" and not member.openid:
        raise PaymentError("no_openid")
    now = clock.utcnow()
    payment = Payment(payment_no=new_payment_no(), gateway_id=gateway.id, member_id=member.id,
                      operator_id=member.operator_id, purpose="recharge", amount=amount, refunded_amount=ZERO,
                      status="created", expires_at=now + timedelta(minutes=cfg["PAYMENT_EXPIRE_MINUTES"]))
    session.add(payment)
    session.commit()           # the row exists before WeChat can tell us about it
    params = {}
    if gateway.gateway_type == "wechat":
        try:
            params = wechatpay.jsapi_prepay(gateway, payment_no=payment.payment_no, total_fen=to_fen(amount),
                                            description=f"{_topup_description()} {amount}",
                                            openid=member.openid, notify_url=notify_url(gateway),
                                            expires_at=payment.expires_at)
        except wechatpay.WeChatPayError as exc:
            log.warning("prepay of %s failed: %s", payment.payment_no, exc)
            payment = session.get(Payment, payment.id)
            payment.status = "failed"
            payment.remark = str(exc)[:255]
            session.commit()
            raise PaymentError("gateway_unavailable") from exc
    payment = lock_row(session, Payment, payment.id)
    if payment.status == "created":
        payment.status = "pending"
    session.commit()
    return TopUp(payment, params)


def _topup_description():
    return "钱包充值"


def apply_transaction(payment_no, txn, *, source, session=None):
    """The one credit function: record the transaction ``txn`` (WeChat's fields: out_trade_no, transaction_id,
    trade_state, amount.total in fen, success_time) of ``payment_no``. Returns what happened: ``credited``,
    ``duplicate`` (already done), ``not_paid`` (trade not successful), ``amount_mismatch`` (payment put in
    review), ``review``, ``unknown``. Does not commit."""
    session = session or db.session
    payment_id = _payment_id(session, payment_no)
    if payment_id is None:
        log.error("payment %s (%s): no such payment", payment_no, source)
        return "unknown"
    payment = _lock_payment(session, payment_id)
    state = txn.get("trade_state")
    trade_no = txn.get("transaction_id")
    if payment.status in PAID:
        if payment.gateway_trade_no and trade_no and payment.gateway_trade_no != trade_no:
            log.error("payment %s paid twice? stored transaction %s, %s says %s", payment_no,
                      payment.gateway_trade_no, source, trade_no)
        return "duplicate"
    if payment.status == "review":
        return "review"
    if state != "SUCCESS":
        if state in ("CLOSED", "REVOKED", "PAYERROR") and payment.status in OPEN + ("failed",):
            payment.status = "closed" if state != "PAYERROR" else "failed"
            payment.notify_payload = txn
            session.flush()
        return "not_paid"
    total = (txn.get("amount") or {}).get("total")
    if total is None or int(total) != to_fen(payment.amount):
        log.error("payment %s (%s): amount %s fen, expected %s yuan: not credited, put in review", payment_no,
                  source, total, payment.amount)
        payment.status = "review"
        payment.gateway_trade_no = trade_no
        payment.notify_payload = txn
        payment.remark = f"amount {total} fen != {payment.amount} yuan"[:255]
        session.flush()
        return "amount_mismatch"
    payment.status = "succeeded"
    payment.gateway_trade_no = trade_no
    payment.paid_at = clock.parse_iso_utc(txn.get("success_time")) or clock.utcnow()
    payment.notify_payload = txn
    if payment.purpose == "recharge" and payment.member_id:
        wallet.post_entry(payment.member_id, payment.amount, "recharge", idempotency_key=f"pay:{payment.payment_no}",
                          remark=f"{_topup_description()} {payment.payment_no}", session=session,
                          payment_id=payment.id)
    session.flush()
    return "credited"


def _commit_applied(fn, session):
    """Run ``fn()`` and commit; a concurrent run that booked the same key first (IntegrityError) is
    rolled back and ``fn`` run once more (it then sees the committed booking)."""
    for attempt in (1, 2):
        try:
            result = fn()
            session.commit()
            return result
        except IntegrityError:
            session.rollback()
            if attempt == 2:
                raise
        except Exception:
            session.rollback()
            raise


def handle_payment_notification(gateway_code, headers, body, session=None):
    """A WeChat Pay payment notification (POST /pay/wechat/<code>/notify): verified and decrypted by the library,
    credited once, committed. Raises UnknownGateway, wechatpay.NotificationRejected (bad signature: nothing
    credited); returns the result of :func:`apply_transaction`."""
    session = session or db.session
    gateway = gateway_by_code(gateway_code, session)
    data = wechatpay.parse_notification(gateway, headers, body)
    txn = data["resource"]
    if txn.get("mchid") and txn.get("mchid") != gateway.mchid:
        raise wechatpay.NotificationRejected("merchant id of another merchant")
    payment_no = txn.get("out_trade_no") or ""
    owner = session.scalar(select(Payment.gateway_id).where(Payment.payment_no == payment_no))
    if owner is not None and owner != gateway.id:
        log.error("notification of payment %s came through gateway %s", payment_no, gateway_code)
        return "unknown"
    return _commit_applied(lambda: apply_transaction(payment_no, txn, source="notification", session=session),
                           session)


# ----- the demo gateway (demo data: real payment path, no merchant) -------------------------------------------
def demo_gateway(session=None):
    """The demo gateway (code ``demo``), created if missing. Its payments are "paid" at once and its refunds
    succeed at once, through the same functions as WeChat's answers."""
    session = session or db.session
    gateway = session.scalar(select(PaymentGateway).where(PaymentGateway.code == "demo"))
    if gateway is None:
        gateway = PaymentGateway(code="demo", gateway_type="demo", name="演示支付", display_name="演示支付",
                                 sort=99, enabled=True, remark="demo data: payments confirmed locally")
        session.add(gateway)
        session.flush()
    return gateway


def _demo_txn(payment):
    return {"out_trade_no": payment.payment_no, "transaction_id": "DEMO" + payment.payment_no[1:],
            "trade_state": "SUCCESS", "amount": {"total": to_fen(payment.amount), "currency": "CNY"},
            "success_time": clock.utcnow().strftime("%Y-%m-%dT%H:%M:%S+00:00")}


def demo_topup(member_id, amount, session=None):
    """A top-up through the demo gateway, paid at once (:func:`apply_transaction`, like a notification). Does
    not commit; returns the payment."""
    session = session or db.session
    gateway = demo_gateway(session)
    member = session.get(Member, member_id)
    payment = Payment(payment_no=new_payment_no(), gateway_id=gateway.id, member_id=member.id,
                      operator_id=member.operator_id, purpose="recharge", amount=q_amount(amount),
                      refunded_amount=ZERO, status="pending", expires_at=clock.utcnow())
    session.add(payment)
    session.flush()
    apply_transaction(payment.payment_no, _demo_txn(payment), source="demo", session=session)
    return payment


def demo_wallet_refund(member_id, amount, reason, session=None):
    """A wallet refund against demo top-ups, refunded at once (:func:`apply_refund_result`). Does not commit."""
    session = session or db.session
    refunds = book_wallet_refund(member_id, amount, reason, session=session)
    for refund in refunds:
        apply_refund_result(refund.refund_no, {"status": "SUCCESS", "refund_id": "DEMO" + refund.refund_no[1:]},
                            source="demo", session=session)
    return refunds


def query_pending_payments(limit=200, session=None):
    """Cron: payments still open PAYMENT_PENDING_QUERY_MINUTES after creation are asked about at WeChat; paid
    ones are credited (same function as a notification), closed ones closed, expired unpaid ones closed
    (at WeChat too). Each payment is its own unit of work. Returns {result: count}."""
    session = session or db.session
    cfg = current_app.config
    now = clock.utcnow()
    before = now - timedelta(minutes=cfg["PAYMENT_PENDING_QUERY_MINUTES"])
    rows = session.execute(
        select(Payment.id, Payment.payment_no).join(PaymentGateway, PaymentGateway.id == Payment.gateway_id)
        .where(Payment.status.in_(OPEN), Payment.created_at <= before, PaymentGateway.gateway_type == "wechat")
        .order_by(Payment.id).limit(limit)).all()
    session.rollback()
    report = {}
    for payment_id, payment_no in rows:
        try:
            result = _query_one(payment_id, payment_no, now, session)
        except wechatpay.WeChatPayError as exc:
            session.rollback()
            log.warning("query of payment %s failed: %s", payment_no, exc)
            result = "error"
        report[result] = report.get(result, 0) + 1
    return report


def _query_one(payment_id, payment_no, now, session):
    payment = session.get(Payment, payment_id)
    gateway = payment.gateway
    txn = wechatpay.query_payment(gateway, payment_no)
    expired = payment.expires_at is not None and payment.expires_at <= now
    if txn is not None and txn.get("trade_state") not in ("NOTPAY", "USERPAYING"):
        return _commit_applied(lambda: apply_transaction(payment_no, txn, source="query", session=session), session)
    if not expired:
        session.rollback()
        return "waiting"
    if txn is not None:
        wechatpay.close_payment(gateway, payment_no)
    payment = _lock_payment(session, payment_id)
    if payment.status in OPEN:
        payment.status = "closed"
        payment.remark = "expired unpaid"
    session.commit()
    return "closed"


# ----- refunds --------------------------------------------------------------------------------------------------
def _reserved_in_refunds(session, payment_id):
    total = session.scalar(select(func.coalesce(func.sum(Refund.amount), 0))
                           .where(Refund.payment_id == payment_id, Refund.status.in_(RESERVED)))
    return q_amount(total)


def _refresh_payment_status(session, payment):
    """``refunding`` while a refund of it is due or in flight, else refunded / partial_refund / succeeded."""
    if payment.status not in PAID:
        return
    in_flight = session.scalar(select(func.count(Refund.id)).where(Refund.payment_id == payment.id,
                                                                   Refund.status.in_(IN_FLIGHT)))
    reserved = q_amount(payment.refunded_amount or 0)
    done = q_amount(session.scalar(select(func.coalesce(func.sum(Refund.amount), 0))
                                   .where(Refund.payment_id == payment.id, Refund.status == "succeeded")))
    if in_flight or done < reserved:
        payment.status = "refunding"
    elif reserved >= q_amount(payment.amount):
        payment.status = "refunded"
    elif reserved > 0:
        payment.status = "partial_refund"
    else:
        payment.status = "succeeded"


def sync_order_refunds(limit=500, session=None):
    """The refund rows of unused prepaid amounts: for each ``refunding`` payment, what settlement reserved
    (``refunded_amount``) and no refund holds yet becomes a refund (whole fen; a sub-fen remainder cannot be
    refunded and is released). A unit of work per payment; returns the new refunds' ids."""
    session = session or db.session
    ids = session.scalars(select(Payment.id).where(Payment.status == "refunding").order_by(Payment.id)
                          .limit(limit)).all()
    session.rollback()
    created = []
    for payment_id in ids:
        payment = _lock_payment(session, payment_id)
        if payment.status != "refunding":
            session.rollback()
            continue
        due = q_amount(payment.refunded_amount or 0) - _reserved_in_refunds(session, payment.id)
        if due > 0:
            whole = q_pile_balance(due)            # down to whole fen
            if whole < due:
                payment.refunded_amount = q_amount(payment.refunded_amount) - (due - whole)
            if whole > 0:
                refund = Refund(refund_no=new_refund_no(), payment_id=payment.id, member_id=payment.member_id,
                                order_id=payment.order_id, operator_id=payment.operator_id, kind="order",
                                amount=whole, status="pending", attempts=0, reason="unused prepayment")
                session.add(refund)
                session.flush()
                created.append(refund.id)
        _refresh_payment_status(session, payment)
        session.commit()
    return created


def refundable_payments(member_id, session=None):
    """The member's top-ups refundable now, newest first: [(payment, refundable amount)]."""
    session = session or db.session
    since = clock.utcnow() - timedelta(days=REFUNDABLE_DAYS)
    rows = session.scalars(
        select(Payment).join(PaymentGateway, PaymentGateway.id == Payment.gateway_id)
        .where(Payment.member_id == member_id, Payment.purpose == "recharge", Payment.status.in_(PAID),
               PaymentGateway.gateway_type.in_(("wechat", "demo")), Payment.paid_at >= since)
        .order_by(Payment.paid_at.desc(), Payment.id.desc())).all()
    out = []
    for payment in rows:
        left = q_amount(payment.amount) - q_amount(payment.refunded_amount or 0)
        if left > 0:
            out.append((payment, left))
    return out


def request_wallet_refund(member_id, amount=None, reason=None, *, requested_by_id=None, request_key=None,
                          session=None):
    """Refund ``amount`` (default: the whole balance) of the member's wallet to where it came from: the wallet
    is debited (ledger ``refund``), the amount split over the member's top-ups newest first. A unit of work
    (commits; nothing is sent yet: see :func:`send_refund`). ``request_key`` makes a repeated request book
    once. Returns the refunds. PaymentError codes: amount_invalid, balance_insufficient, nothing_refundable."""
    session = session or db.session
    try:
        refunds = book_wallet_refund(member_id, amount, reason, requested_by_id=requested_by_id,
                                     request_key=request_key, session=session)
        session.commit()
    except Exception:
        session.rollback()
        raise
    return refunds


def book_wallet_refund(member_id, amount=None, reason=None, *, requested_by_id=None, request_key=None,
                       session=None):
    """:func:`request_wallet_refund` without the commit."""
    session = session or db.session
    key = f"wallet-refund:{request_key or uuid.uuid4().hex}"
    member = lock_member(session, member_id)
    if request_key:
        existing = session.scalar(select(WalletEntry.id).where(WalletEntry.idempotency_key == key))
        if existing is not None:
            return session.scalars(select(Refund).where(Refund.wallet_entry_id == existing)
                                   .order_by(Refund.id)).all()
    balance = q_amount(member.balance or 0)
    try:
        raw = balance if amount is None else to_decimal(amount)
        amount = q_amount(raw)
    except Exception:       # not a number, or too big for the money columns
        raise PaymentError("amount_invalid") from None
    if amount <= 0 or not has_places(raw, FEN):
        raise PaymentError("amount_invalid")
    if amount > balance:
        raise PaymentError("balance_insufficient")
    candidates = refundable_payments(member.id, session)
    for payment, _left in sorted(candidates, key=lambda pair: pair[0].id):
        lock_row(session, Payment, payment.id)       # by id: the lock order; fresh values
    locked = []
    for payment, _left in candidates:
        left = q_amount(payment.amount) - q_amount(payment.refunded_amount or 0)
        if left > 0 and payment.status in PAID:
            locked.append((payment, left))
    if sum((left for _p, left in locked), ZERO) < amount:
        raise PaymentError("nothing_refundable")
    reason = (reason or "").strip()[:255] or "wallet refund"
    entry = wallet.post_entry(member.id, -amount, "refund", idempotency_key=key, remark=reason, session=session)
    refunds = []
    left = amount
    for payment, refundable in locked:
        if left <= 0:
            break
        share = min(left, refundable)
        payment.refunded_amount = q_amount(payment.refunded_amount or 0) + share
        payment.status = "refunding"
        refund = Refund(refund_no=new_refund_no(), payment_id=payment.id, member_id=member.id,
                        operator_id=member.operator_id, kind="wallet", amount=share, status="pending",
                        attempts=0, reason=reason, requested_by_id=requested_by_id, wallet_entry_id=entry.id)
        session.add(refund)
        refunds.append(refund)
        left -= share
    session.flush()
    return refunds


def send_refund(refund_id, session=None):
    """Ask the gateway for the refund (a ``pending`` one; a ``processing`` one is asked about) and record the
    answer. A unit of work. Network/API failures leave it ``pending`` with ``last_error`` (the job retries;
    WeChat keys refunds by ``refund_no``, so a retry never refunds twice). Returns the refund."""
    session = session or db.session
    refund = session.get(Refund, refund_id)
    if refund is None or refund.status not in IN_FLIGHT:
        session.rollback()
        return refund
    payment = refund.payment
    gateway = payment.gateway
    refund_no, status = refund.refund_no, refund.status
    refund.attempts = (refund.attempts or 0) + 1
    session.commit()
    try:
        if gateway.gateway_type == "demo":
            answer = {"out_refund_no": refund_no, "refund_id": "DEMO" + refund_no[1:], "status": "SUCCESS",
                      "success_time": clock.utcnow().strftime("%Y-%m-%dT%H:%M:%S+00:00")}
        elif status == "processing":
            answer = wechatpay.query_refund(gateway, refund_no) or {"status": "PROCESSING"}
        else:
            answer = wechatpay.refund(gateway, refund_no=refund_no, payment_no=payment.payment_no,
                                      refund_fen=to_fen(refund.amount), total_fen=to_fen(payment.amount),
                                      reason=refund.reason, notify_url=notify_url(gateway, "refund-notify"))
    except wechatpay.WeChatPayError as exc:
        log.warning("refund %s not sent: %s", refund_no, exc)
        refund = session.get(Refund, refund_id)
        refund.last_error = str(exc)[:255]
        session.commit()
        return refund
    _commit_applied(lambda: apply_refund_result(refund_no, answer, source="answer", session=session), session)
    return session.get(Refund, refund_id)


def apply_refund_result(refund_no, info, *, source, session=None):
    """Record WeChat's word on a refund (the refund answer, a refund query or a refund notification: fields
    out_refund_no, refund_id, ``status`` or ``refund_status``). Once: a finished refund is not changed again.
    Returns ``succeeded`` / ``failed`` / ``processing`` / ``duplicate`` / ``unknown``. Does not commit."""
    session = session or db.session
    row = session.execute(select(Refund.id, Refund.payment_id).where(Refund.refund_no == refund_no)).first()
    if row is None:
        log.error("refund %s (%s): no such refund", refund_no, source)
        return "unknown"
    payment = _lock_payment(session, row.payment_id)
    refund = lock_row(session, Refund, row.id)
    if refund.status not in IN_FLIGHT:
        return "duplicate"
    state = info.get("refund_status") or info.get("status")
    if info.get("refund_id"):
        refund.gateway_refund_id = info["refund_id"]
    refund.notify_payload = info
    if state == "SUCCESS":
        refund.status = "succeeded"
        refund.succeeded_at = clock.parse_iso_utc(info.get("success_time")) or clock.utcnow()
        refund.last_error = None
        result = "succeeded"
    elif state in ("CLOSED", "ABNORMAL", "REFUSED"):
        _fail(session, refund, payment, f"{state} {info.get('code') or ''} {info.get('message') or ''}".strip())
        result = "failed"
    else:
        refund.status = "processing"
        result = "processing"
    _refresh_payment_status(session, payment)
    session.flush()
    return result


def _fail(session, refund, payment, why):
    refund.status = "failed"
    refund.last_error = why[:255]
    payment.refunded_amount = max(ZERO, q_amount(payment.refunded_amount or 0) - q_amount(refund.amount))
    if refund.kind == "wallet" and refund.member_id:
        wallet.post_entry(refund.member_id, refund.amount, "refund", idempotency_key=f"refund-back:{refund.refund_no}",
                          remark=f"refund {refund.refund_no} failed: returned", session=session, payment_id=payment.id)
    log.warning("refund %s failed: %s", refund.refund_no, why)


def handle_refund_notification(gateway_code, headers, body, session=None):
    """A WeChat Pay refund notification (POST /pay/wechat/<code>/refund-notify): verified, recorded once,
    committed. Raises UnknownGateway, wechatpay.NotificationRejected."""
    session = session or db.session
    gateway = gateway_by_code(gateway_code, session)
    data = wechatpay.parse_notification(gateway, headers, body)
    info = data["resource"]
    if info.get("mchid") and info.get("mchid") != gateway.mchid:
        raise wechatpay.NotificationRejected("merchant id of another merchant")
    return _commit_applied(lambda: apply_refund_result(info.get("out_refund_no") or "", info, source="notification",
                                                       session=session), session)


def retry_refund(refund_id, user_id=None, session=None):
    """A failed refund asked for again: a new refund (new refund_no) of the same amount, the old one marked
    ``retried``. A wallet refund debits the wallet again (its amount went back when it failed). A unit of
    work; returns the new refund. PaymentError: not_retryable, balance_insufficient, nothing_refundable."""
    session = session or db.session
    try:
        old = session.get(Refund, refund_id)
        if old is None or old.status != "failed":
            raise PaymentError("not_retryable")
        if old.member_id:
            lock_member(session, old.member_id)
        payment = lock_row(session, Payment, old.payment_id)
        refund = lock_row(session, Refund, old.id)
        if refund.status != "failed":
            raise PaymentError("not_retryable")
        amount = q_amount(refund.amount)
        if q_amount(payment.amount) - q_amount(payment.refunded_amount or 0) < amount:
            raise PaymentError("nothing_refundable")
        entry_id = None
        new_no = new_refund_no()
        if refund.kind == "wallet":
            try:
                entry = wallet.post_entry(refund.member_id, -amount, "refund", idempotency_key=f"refund:{new_no}",
                                          remark=refund.reason, session=session, payment_id=payment.id)
            except wallet.WalletError:
                raise PaymentError("balance_insufficient") from None
            entry_id = entry.id
        payment.refunded_amount = q_amount(payment.refunded_amount or 0) + amount
        payment.status = "refunding"
        new = Refund(refund_no=new_no, payment_id=payment.id, member_id=refund.member_id, order_id=refund.order_id,
                     operator_id=refund.operator_id, kind=refund.kind, amount=amount, status="pending", attempts=0,
                     reason=refund.reason, requested_by_id=user_id, wallet_entry_id=entry_id, retry_of_id=refund.id)
        refund.status = "retried"
        session.add(new)
        session.flush()
        session.commit()
    except Exception:
        session.rollback()
        raise
    return new


def process_refunds(limit=200, session=None):
    """Job: write the refunds of unused prepayments, then send every pending refund (and ask about the ones
    processing for more than 5 minutes), each up to PAYMENT_REFUND_MAX_ATTEMPTS times. Returns a summary."""
    session = session or db.session
    created = sync_order_refunds(session=session)
    max_attempts = current_app.config["PAYMENT_REFUND_MAX_ATTEMPTS"]
    stale = clock.utcnow() - timedelta(minutes=5)
    ids = session.scalars(
        select(Refund.id).where(Refund.attempts < max_attempts,
                                (Refund.status == "pending")
                                | ((Refund.status == "processing") & (Refund.updated_at <= stale)))
        .order_by(Refund.id).limit(limit)).all()
    session.rollback()
    results = {}
    for refund_id in ids:
        refund = send_refund(refund_id, session=session)
        results[refund.status] = results.get(refund.status, 0) + 1
    return {"created": len(created), "sent": results}


def enqueue_refund_sends(refund_ids, connection=None):
    """Queue the sending of these refunds (job ``refund-<id>``, retried by RQ; the refund cron is the
    backstop). Best effort: a Redis failure is logged, the cron sends them."""
    from rq import Queue, Retry

    from app.extensions import get_redis

    try:
        queue = Queue("default", connection=connection or get_redis())
        for refund_id in refund_ids:
            queue.enqueue("app.tasks.payments.send_refund", refund_id, job_id=f"refund-{refund_id}",
                          retry=Retry(max=3, interval=[10, 60, 300]), description=f"send refund {refund_id}")
    except Exception:  # the cron sends what was not queued
        log.exception("refunds %s not queued", refund_ids)


# ----- reads ----------------------------------------------------------------------------------------------------
def refunds_of_member(member_id, limit=50, session=None):
    session = session or db.session
    return session.scalars(select(Refund).where(Refund.member_id == member_id)
                           .order_by(Refund.id.desc()).limit(limit)).all()


def refunds_of_payment(payment_id, session=None):
    session = session or db.session
    return session.scalars(select(Refund).where(Refund.payment_id == payment_id).order_by(Refund.id)).all()


def refunds_of_order(order_id, session=None):
    session = session or db.session
    return session.scalars(select(Refund).where(Refund.order_id == order_id).order_by(Refund.id)).all()


def refunded_beyond_amount(session=None):
    """Payments whose reserved refunds exceed their amount, or whose succeeded refunds exceed the reservation
    (should be none)."""
    session = session or db.session
    wrong = []
    for payment in session.scalars(select(Payment).where(Payment.refunded_amount > 0)):
        done = q_amount(session.scalar(select(func.coalesce(func.sum(Refund.amount), 0))
                                       .where(Refund.payment_id == payment.id, Refund.status == "succeeded")))
        if q_amount(payment.refunded_amount) > q_amount(payment.amount) or done > q_amount(payment.refunded_amount):
            wrong.append(payment)
    return wrong
