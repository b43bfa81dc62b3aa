"""Property test (Hypothesis): after any sequence of top-ups (through the signed notification path), charges
(debits as settlement books them), refunds of unused order prepayments, wallet refunds (succeeding or failing
at WeChat) and manual adjustments, the wallet balance equals the sum of its ledger and no payment is refunded
beyond its amount. Runs on the session database: SQLite by default, PostgreSQL with TEST_DATABASE_URL."""
import uuid
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.extensions import db

OPS = st.sampled_from(["topup", "charge", "order_refund", "wallet_refund", "adjust"])
STEP = st.tuples(OPS, st.integers(min_value=1, max_value=30000), st.sampled_from(["SUCCESS", "CLOSED", "ABNORMAL"]))


def _topup(app, fake, member_id, fen):
    from app.services import payments

    with app.app_context():
        payment_no = payments.create_topup(member_id, Decimal(fen) / 100).payment.payment_no
    headers, body = fake.notification(fake.pay(payment_no))
    assert app.test_client().post("/pay/wechat/wxtest/notify", data=body, headers=headers).status_code == 204


def _order_prepayment(app, fake, member_id, fen, refund_fen):
    """An order prepayment paid through WeChat, part of it unused: reserved and marked ``refunding`` as
    settlement._record_refund does."""
    from app.models import Member, Payment, PaymentGateway
    from app.services import payments

    no = payments.new_payment_no()
    with app.app_context():
        gw = db.session.scalar(select(PaymentGateway).where(PaymentGateway.code == "wxtest"))
        member = db.session.get(Member, member_id)
        payment = Payment(payment_no=no, gateway_id=gw.id, member_id=member_id, operator_id=member.operator_id,
                          purpose="order", amount=Decimal(fen) / 100, refunded_amount=0, status="pending")
        db.session.add(payment)
        db.session.commit()
    fake.orders[no] = {"request": {"appid": fake.appid, "mchid": fake.mchid, "payer": {"openid": "o"},
                                   "amount": {"total": fen, "currency": "CNY"}},
                       "trade_state": "NOTPAY", "transaction_id": None, "prepay_id": "wx"}
    headers, body = fake.notification(fake.pay(no))
    assert app.test_client().post("/pay/wechat/wxtest/notify", data=body, headers=headers).status_code == 204
    with app.app_context():
        payment = db.session.scalar(select(Payment).where(Payment.payment_no == no))
        payment.refunded_amount = Decimal(min(refund_fen, fen)) / 100
        payment.status = "refunding"
        db.session.commit()


def _finish_refunds(app, fake, outcome):
    """Send what is due; WeChat then reports ``outcome`` for each refund (notification)."""
    from app.models import Refund
    from app.services import payments

    with app.app_context():
        payments.process_refunds()
        open_refunds = db.session.scalars(select(Refund.refund_no).where(Refund.status == "processing")).all()
    for refund_no in open_refunds:
        if refund_no not in fake.refunds:
            continue
        headers, body = fake.notification(fake.finish_refund(refund_no, outcome), event_type=f"REFUND.{outcome}")
        assert app.test_client().post("/pay/wechat/wxtest/refund-notify", data=body, headers=headers).status_code == 204


def _check(app, member_id):
    from app.models import Member, Payment, Refund, WalletEntry

    with app.app_context():
        db.session.expire_all()
        balance = Decimal(db.session.get(Member, member_id).balance)
        entries = db.session.scalars(select(WalletEntry.amount).where(WalletEntry.member_id == member_id)).all()
        assert balance == sum((Decimal(a) for a in entries), Decimal("0"))
        for p in db.session.scalars(select(Payment).where(Payment.member_id == member_id)):
            done = db.session.scalar(select(func.coalesce(func.sum(Refund.amount), 0)).where(
                Refund.payment_id == p.id, Refund.status == "succeeded"))
            reserved = db.session.scalar(select(func.coalesce(func.sum(Refund.amount), 0)).where(
                Refund.payment_id == p.id, Refund.status.in_(("pending", "processing", "succeeded"))))
            assert Decimal(p.refunded_amount) <= Decimal(p.amount), p.payment_no
            assert Decimal(str(done)) <= Decimal(p.refunded_amount), p.payment_no
            assert Decimal(str(reserved)) <= Decimal(p.amount), p.payment_no
        return balance


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(steps=st.lists(STEP, min_size=1, max_size=10))
def test_balance_is_the_ledger_sum_after_any_sequence(app, fake_wechat, wechat_gateway, new_member, steps):
    from app.services import payments, wallet

    member_id = new_member()
    fake_wechat.refund_status = "PROCESSING"
    for op, fen, outcome in steps:
        amount = Decimal(fen) / 100
        if op == "topup":
            _topup(app, fake_wechat, member_id, max(fen, 100))      # PAYMENT_MIN_TOPUP: 1 yuan
        elif op == "charge":
            with app.app_context():
                wallet.post_entry(member_id, -amount, "consume", idempotency_key=f"settle:prop:{uuid.uuid4().hex}",
                                  allow_negative=True, remark="property charge")
                db.session.commit()
        elif op == "order_refund":
            _order_prepayment(app, fake_wechat, member_id, fen, fen // 3 + 1)
            _finish_refunds(app, fake_wechat, outcome)
        elif op == "wallet_refund":
            with app.app_context():
                try:
                    payments.request_wallet_refund(member_id, amount, "property refund")
                except payments.PaymentError as exc:
                    assert exc.code in ("balance_insufficient", "nothing_refundable", "amount_invalid")
            _finish_refunds(app, fake_wechat, outcome)
        else:
            with app.app_context():
                try:
                    wallet.adjust(member_id, amount if fen % 2 else -amount, "property adjust", None,
                                  uuid.uuid4().hex)
                except wallet.WalletError:
                    pass             # a deduction beyond the balance is refused
        _check(app, member_id)
    with app.app_context():
        assert not [m for m, _ in wallet.balance_differences() if m.id == member_id]
        assert not [p for p in payments.refunded_beyond_amount() if p.member_id == member_id]
