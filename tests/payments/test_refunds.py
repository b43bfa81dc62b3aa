"""Refunds through the fake WeChat Pay server: wallet-balance refunds split over top-ups, unused prepayments of
orders (the ``refunding`` payments settlement writes), refund notifications, failures and retries."""
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.extensions import db
from tests.payments.support import balance_and_ledger, payment_row, topup

REFUND_URL = "/pay/wechat/wxtest/refund-notify"
D = Decimal


def _paid_topup(app, fake, member_id, amount):
    payment_no, _ = topup(app, member_id, amount)
    headers, body = fake.notification(fake.pay(payment_no))
    assert app.test_client().post("/pay/wechat/wxtest/notify", data=body, headers=headers).status_code == 204
    return payment_no


def _refunds(app, **where):
    from app.models import Refund

    with app.app_context():
        q = select(Refund).order_by(Refund.id)
        for k, v in where.items():
            q = q.where(getattr(Refund, k) == v)
        return [{"id": r.id, "refund_no": r.refund_no, "amount": D(r.amount), "status": r.status, "kind": r.kind,
                 "payment_no": r.payment.payment_no, "gateway_refund_id": r.gateway_refund_id,
                 "last_error": r.last_error} for r in db.session.scalars(q)]


def _send_all(app):
    from app.services import payments

    with app.app_context():
        return payments.process_refunds()


def _refund_notify(app, fake, refund_no, status="SUCCESS"):
    headers, body = fake.notification(fake.finish_refund(refund_no, status), event_type=f"REFUND.{status}")
    return app.test_client().post(REFUND_URL, data=body, headers=headers)


def test_wallet_refund_splits_over_top_ups_newest_first(app, fake_wechat, wechat_gateway, new_member):
    from app.services import payments

    member_id = new_member()
    first = _paid_topup(app, fake_wechat, member_id, "30.00")
    second = _paid_topup(app, fake_wechat, member_id, "50.00")
    with app.app_context():
        refunds = payments.request_wallet_refund(member_id, D("60.00"), "不用了", request_key="k1")
        assert [(r.payment.payment_no, r.amount) for r in refunds] == [(second, D("50.0000")), (first, D("10.0000"))]
        # the same request again (a retried HTTP call): booked once
        again = payments.request_wallet_refund(member_id, D("60.00"), "不用了", request_key="k1")
        assert [r.id for r in again] == [r.id for r in refunds]
    balance, ledger = balance_and_ledger(app, member_id)
    assert balance == D("20.0000")
    assert ledger[-1][:2] == ("refund", D("-60.0000"))
    assert payment_row(app, second)["status"] == "refunding"

    fake_wechat.refund_status = "PROCESSING"
    _send_all(app)
    rows = _refunds(app, member_id=member_id)
    assert [r["status"] for r in rows] == ["processing", "processing"]
    sent = {r["out_refund_no"]: r["request"] for r in fake_wechat.refunds.values() if r["out_refund_no"] in
            {x["refund_no"] for x in rows}}
    assert sorted((v["out_trade_no"], v["amount"]["refund"], v["amount"]["total"]) for v in sent.values()) == \
        sorted([(second, 5000, 5000), (first, 1000, 3000)])
    assert all(v["notify_url"].endswith("/pay/wechat/wxtest/refund-notify") for v in sent.values())

    for row in rows:
        rv = _refund_notify(app, fake_wechat, row["refund_no"])
        assert rv.status_code == 204, rv.get_data(as_text=True)
        assert _refund_notify(app, fake_wechat, row["refund_no"]).status_code == 204     # again: nothing changes
    rows = _refunds(app, member_id=member_id)
    assert [r["status"] for r in rows] == ["succeeded", "succeeded"]
    assert all(r["gateway_refund_id"] for r in rows)
    assert payment_row(app, second)["status"] == "refunded"
    assert payment_row(app, first)["status"] == "partial_refund"
    assert payment_row(app, first)["refunded_amount"] == D("10.0000")
    # the balance did not move again with the notifications
    assert balance_and_ledger(app, member_id)[0] == D("20.0000")


def test_refund_notification_with_a_bad_signature_changes_nothing(app, fake_wechat, wechat_gateway, new_member):
    from app.services import payments

    member_id = new_member()
    _paid_topup(app, fake_wechat, member_id, "10.00")
    with app.app_context():
        payments.request_wallet_refund(member_id, None, "all")
    _send_all(app)
    (row,) = _refunds(app, member_id=member_id)
    headers, body = fake_wechat.notification(fake_wechat.finish_refund(row["refund_no"]), event_type="REFUND.SUCCESS",
                                             key=fake_wechat.other_key)
    assert app.test_client().post(REFUND_URL, data=body, headers=headers).status_code == 401
    assert _refunds(app, member_id=member_id)[0]["status"] == "processing"


def test_failed_wallet_refund_returns_the_money_and_can_be_retried(app, fake_wechat, wechat_gateway, new_member):
    from app.services import payments

    member_id = new_member()
    payment_no = _paid_topup(app, fake_wechat, member_id, "40.00")
    with app.app_context():
        payments.request_wallet_refund(member_id, D("25.50"), "refund please")
    assert balance_and_ledger(app, member_id)[0] == D("14.5000")
    _send_all(app)
    (row,) = _refunds(app, member_id=member_id)
    assert _refund_notify(app, fake_wechat, row["refund_no"], "ABNORMAL").status_code == 204
    (row,) = _refunds(app, member_id=member_id)
    assert row["status"] == "failed" and "ABNORMAL" in row["last_error"]
    balance, ledger = balance_and_ledger(app, member_id)
    assert balance == D("40.0000")                                    # returned to the wallet by a ledger entry
    assert ledger[-1] == ("refund", D("25.5000"), f"refund-back:{row['refund_no']}")
    assert payment_row(app, payment_no)["refunded_amount"] == D("0.0000")
    assert payment_row(app, payment_no)["status"] == "succeeded"
    # a second notification of the failure changes nothing
    assert _refund_notify(app, fake_wechat, row["refund_no"], "ABNORMAL").status_code == 204
    assert balance_and_ledger(app, member_id)[0] == D("40.0000")

    fake_wechat.refund_status = "SUCCESS"
    try:
        with app.app_context():
            new = payments.retry_refund(row["id"], user_id=None)
            payments.send_refund(new.id)
    finally:
        fake_wechat.refund_status = "PROCESSING"
    rows = _refunds(app, member_id=member_id)
    assert [r["status"] for r in rows] == ["retried", "succeeded"]
    assert balance_and_ledger(app, member_id)[0] == D("14.5000")
    assert payment_row(app, payment_no)["refunded_amount"] == D("25.5000")
    assert payment_row(app, payment_no)["status"] == "partial_refund"
    with app.app_context(), pytest.raises(payments.PaymentError) as err:
        payments.retry_refund(rows[0]["id"])
    assert err.value.code == "not_retryable"


def test_wallet_refund_limits(app, fake_wechat, wechat_gateway, new_member):
    """Only money topped up through a gateway goes back; not more than the balance; whole fen."""
    from app.services import payments

    member_id = new_member(balance=D("100"))            # a manual adjustment: no payment to refund against
    _paid_topup(app, fake_wechat, member_id, "10.00")
    with app.app_context():
        for amount, code in ((D("10.01"), "nothing_refundable"), (D("200"), "balance_insufficient"),
                             (D("0"), "amount_invalid"), (D("1.005"), "amount_invalid")):
            with pytest.raises(payments.PaymentError) as err:
                payments.request_wallet_refund(member_id, amount, "x")
            assert err.value.code == code, amount
    assert balance_and_ledger(app, member_id)[0] == D("110.0000")
    assert _refunds(app, member_id=member_id) == []


def test_network_failure_leaves_the_refund_pending_and_the_job_sends_it_later(app, fake_wechat, wechat_gateway,
                                                                             new_member):
    from app.services import payments

    member_id = new_member()
    _paid_topup(app, fake_wechat, member_id, "5.00")
    with app.app_context():
        payments.request_wallet_refund(member_id, None, "all")
    fake_wechat.fail_next = 1
    _send_all(app)
    (row,) = _refunds(app, member_id=member_id)
    assert row["status"] == "pending" and "500" in row["last_error"]
    _send_all(app)
    (row,) = _refunds(app, member_id=member_id)
    assert row["status"] == "processing"
    # a refund the notification never came for is asked about (query) by the job once it is stale
    fake_wechat.finish_refund(row["refund_no"], "SUCCESS")
    from app.models import Refund
    from app.services import clock

    with app.app_context():
        refund = db.session.get(Refund, row["id"])
        refund.updated_at = clock.utcnow().replace(year=2020)
        db.session.commit()
    _send_all(app)
    assert _refunds(app, member_id=member_id)[0]["status"] == "succeeded"


def test_unused_prepayment_of_an_order_is_refunded(app, fake_wechat, wechat_gateway, new_member):
    """Settlement reserves the unused prepayment on the payment and marks it ``refunding``
    (settlement._record_refund); the refund job writes and sends the refund: whole fen only."""
    from app.models import Payment

    member_id = new_member()
    payment_no = _paid_topup(app, fake_wechat, member_id, "100.00")
    with app.app_context():
        payment = db.session.scalar(select(Payment).where(Payment.payment_no == payment_no))
        payment.purpose = "order"
        payment.refunded_amount = D("37.1234")           # as settlement writes it
        payment.status = "refunding"
        db.session.commit()
    fake_wechat.refund_status = "SUCCESS"
    try:
        summary = _send_all(app)
    finally:
        fake_wechat.refund_status = "PROCESSING"
    assert summary["created"] >= 1
    (row,) = [r for r in _refunds(app, kind="order") if r["payment_no"] == payment_no]
    assert row["amount"] == D("37.1200") and row["status"] == "succeeded"
    assert fake_wechat.refunds[row["refund_no"]]["amount"]["refund"] == 3712
    p = payment_row(app, payment_no)
    assert p["refunded_amount"] == D("37.1200")           # the sub-fen remainder cannot be refunded
    assert p["status"] == "partial_refund"
    # nothing more is due: the job writes no second refund
    _send_all(app)
    assert len([r for r in _refunds(app, kind="order") if r["payment_no"] == payment_no]) == 1
