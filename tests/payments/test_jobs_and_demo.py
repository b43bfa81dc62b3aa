"""The pending-payment query (cron), the refund job's registration, and the demo data's payments."""
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from app.extensions import db
from tests.payments.support import balance_and_ledger, count_entries, payment_row, topup


def _age(app, payment_no, minutes, expire=False):
    from app.models import Payment
    from app.services import clock

    with app.app_context():
        p = db.session.scalar(select(Payment).where(Payment.payment_no == payment_no))
        p.created_at = clock.utcnow() - timedelta(minutes=minutes)
        if expire:
            p.expires_at = clock.utcnow() - timedelta(minutes=1)
        db.session.commit()


def _run_query_job(app):
    from app.tasks.payments import query_pending_payments

    with app.app_context():
        return query_pending_payments()


def test_pending_payment_query_credits_paid_and_closes_expired(app, fake_wechat, wechat_gateway, new_member):
    member_id = new_member()
    paid, _ = topup(app, member_id, "12.00")         # paid, but the notification never came
    fake_wechat.pay(paid)
    young, _ = topup(app, member_id, "13.00")        # paid just now: left to the notification
    fake_wechat.pay(young)
    unpaid, _ = topup(app, member_id, "14.00")       # never paid, expired
    waiting, _ = topup(app, member_id, "15.00")      # not paid yet, not expired
    _age(app, paid, 11)
    _age(app, unpaid, 40, expire=True)
    _age(app, waiting, 11)
    report = _run_query_job(app)
    assert report.get("credited", 0) >= 1 and report.get("closed", 0) >= 1
    assert payment_row(app, paid)["status"] == "succeeded"
    assert payment_row(app, young)["status"] == "pending"
    assert payment_row(app, unpaid)["status"] == "closed"
    assert fake_wechat.orders[unpaid]["trade_state"] == "CLOSED"        # closed at WeChat too
    assert payment_row(app, waiting)["status"] == "pending"
    assert balance_and_ledger(app, member_id)[0] == Decimal("12.0000")
    # the late notification of the queried payment credits nothing more
    headers, body = fake_wechat.notification(fake_wechat.transaction(paid))
    assert app.test_client().post("/pay/wechat/wxtest/notify", data=body, headers=headers).status_code == 204
    assert count_entries(app, f"pay:{paid}") == 1
    _run_query_job(app)
    assert balance_and_ledger(app, member_id)[0] == Decimal("12.0000")


def test_cron_registers_the_payment_jobs(app):
    import os

    from rq.cron import CronScheduler

    from app.extensions import get_redis

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with app.app_context():
        cron = CronScheduler(connection=get_redis())
        query_seconds = app.config["PAYMENT_QUERY_CRON_SECONDS"]
    cron.load_config_from_file(os.path.join(root, "app", "tasks", "cron_config.py"))
    jobs = {job.func_name: job for job in cron.get_jobs()}
    assert jobs["app.tasks.payments.process_refunds"].interval == 60
    assert jobs["app.tasks.payments.query_pending_payments"].interval == query_seconds == 300


def test_demo_members_have_payments_and_a_refund(app):
    from app.models import Member, Payment, PaymentGateway, Refund, WalletEntry
    from app.services import wallet

    with app.app_context():
        demo = db.session.scalar(select(PaymentGateway).where(PaymentGateway.code == "demo"))
        assert demo is not None and demo.gateway_type == "demo"
        paid = db.session.scalars(select(Payment).where(Payment.gateway_id == demo.id)).all()
        assert len(paid) >= 8
        assert all(p.gateway_trade_no and p.status in ("succeeded", "refunded") for p in paid)
        # each demo top-up was credited through the payment path: its ledger entry is pay:<payment_no>
        keys = set(db.session.scalars(select(WalletEntry.idempotency_key).where(WalletEntry.payment_id.in_(
            [p.id for p in paid]))))
        assert {f"pay:{p.payment_no}" for p in paid} <= keys
        refunds = db.session.scalars(select(Refund).where(Refund.payment_id.in_([p.id for p in paid]))).all()
        assert refunds and all(r.status == "succeeded" and r.kind == "wallet" for r in refunds)
        member = db.session.get(Member, refunds[0].member_id)
        kinds = db.session.scalars(select(WalletEntry.kind).where(WalletEntry.member_id == member.id)
                                   .order_by(WalletEntry.id)).all()
        assert kinds[:3] == ["recharge", "recharge", "refund"]
        assert not [m for m, _ in wallet.balance_differences() if m.member_no in {"100", "111"}]
