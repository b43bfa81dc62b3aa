"""End to end: an order prepaid through WeChat Pay is settled (settlement reserves the unused amount on the
payment: ``refunding``), the refund job refunds it at WeChat Pay, the refund notification finishes it."""
import uuid
from decimal import Decimal

from sqlalchemy import select

from app.extensions import db
from tests.integration.orders.test_settlement import make_order
from tests.integration.orders.test_settlement import new_member as settlement_member

D = Decimal


def test_unused_prepayment_goes_back_through_wechat_pay(app, fake_wechat, wechat_gateway):
    from app.models import ChargeOrder, Payment, PaymentGateway
    from app.services import payments
    from app.services.settlement import settle_order

    with app.app_context():
        member_id = settlement_member("5")
        order_id = make_order(member_id)                       # 29.7000 yuan of charging
        order = db.session.get(ChargeOrder, order_id)
        order.prepaid_amount = D("50.0000")
        gw = db.session.scalar(select(PaymentGateway).where(PaymentGateway.code == "wxtest"))
        no = f"P{uuid.uuid4().hex[:20]}"
        db.session.add(Payment(payment_no=no, gateway_id=gw.id, member_id=member_id, purpose="order",
                               order_id=order_id, operator_id=order.operator_id, amount=D("50.0000"),
                               refunded_amount=D("0"), status="pending"))
        db.session.commit()
    fake_wechat.orders[no] = {"request": {"appid": fake_wechat.appid, "mchid": fake_wechat.mchid,
                                          "payer": {"openid": "o"}, "amount": {"total": 5000, "currency": "CNY"}},
                              "trade_state": "NOTPAY", "transaction_id": None, "prepay_id": "wx"}
    headers, body = fake_wechat.notification(fake_wechat.pay(no))
    assert app.test_client().post("/pay/wechat/wxtest/notify", data=body, headers=headers).status_code == 204
    with app.app_context():
        assert db.session.scalar(select(Payment.status).where(Payment.payment_no == no)) == "succeeded"
        result = settle_order(order_id)
        assert result.refunded_amount == D("20.3000")
        payments.process_refunds()
        (refund,) = payments.refunds_of_order(order_id)
        assert (refund.kind, refund.amount, refund.status) == ("order", D("20.3000"), "processing")
        refund_no = refund.refund_no
    assert fake_wechat.refunds[refund_no]["request"]["amount"] == {"refund": 2030, "total": 5000, "currency": "CNY"}
    headers, body = fake_wechat.notification(fake_wechat.finish_refund(refund_no), event_type="REFUND.SUCCESS")
    assert app.test_client().post("/pay/wechat/wxtest/refund-notify", data=body, headers=headers).status_code == 204
    with app.app_context():
        (refund,) = payments.refunds_of_order(order_id)
        payment = db.session.scalar(select(Payment).where(Payment.payment_no == no))
        assert refund.status == "succeeded" and refund.succeeded_at is not None
        assert (payment.status, payment.refunded_amount) == ("partial_refund", D("20.3000"))
        payments.process_refunds()                              # nothing more to do
        assert len(payments.refunds_of_order(order_id)) == 1
