"""Helpers of the payment tests (not fixtures)."""
from decimal import Decimal

from sqlalchemy import func, select

from app.extensions import db


def balance_and_ledger(app, member_id):
    from app.models import Member, WalletEntry

    with app.app_context():
        member = db.session.get(Member, member_id)
        entries = db.session.scalars(select(WalletEntry).where(WalletEntry.member_id == member_id)
                                     .order_by(WalletEntry.id)).all()
        return Decimal(member.balance), [(e.kind, Decimal(e.amount), e.idempotency_key) for e in entries]


def payment_row(app, payment_no):
    from app.models import Payment

    with app.app_context():
        p = db.session.scalar(select(Payment).where(Payment.payment_no == payment_no))
        return {"id": p.id, "status": p.status, "amount": Decimal(p.amount), "gateway_trade_no": p.gateway_trade_no,
                "refunded_amount": Decimal(p.refunded_amount), "paid_at": p.paid_at, "remark": p.remark}


def topup(app, member_id, amount, gateway_code="wxtest"):
    """A top-up through the service: (payment_no, pay params)."""
    from app.models import PaymentGateway
    from app.services import payments

    with app.app_context():
        gateway = db.session.scalar(select(PaymentGateway).where(PaymentGateway.code == gateway_code))
        result = payments.create_topup(member_id, Decimal(amount), gateway=gateway)
        return result.payment.payment_no, result.pay_params


def count_entries(app, key):
    from app.models import WalletEntry

    with app.app_context():
        return db.session.scalar(select(func.count(WalletEntry.id)).where(WalletEntry.idempotency_key == key))
