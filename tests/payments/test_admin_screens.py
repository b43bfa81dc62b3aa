"""Admin screens: 支付记录 and 退款记录 (read only, scoped to the operator), refunds on the member's and the
payment's pages, and the write-only WeChat Pay credentials of 支付网关."""
from decimal import Decimal

from sqlalchemy import select

from app.extensions import db
from tests.conftest import ADMIN_PASSWORD
from tests.payments.support import payment_row, topup

STAFF_PASSWORD = "staff-pass-1"


def _html(rv):
    assert rv.status_code == 200, rv.status_code
    return rv.get_data(as_text=True)


def _paid_with_refund(app, fake, member_id):
    from app.services import payments

    payment_no, _ = topup(app, member_id, "45.00")
    headers, body = fake.notification(fake.pay(payment_no))
    assert app.test_client().post("/pay/wechat/wxtest/notify", data=body, headers=headers).status_code == 204
    with app.app_context():
        (refund,) = payments.request_wallet_refund(member_id, Decimal("5.00"), "screen test")
        return payment_no, refund.refund_no


def test_payment_and_refund_screens(app, login, fake_wechat, wechat_gateway, new_member):
    member_id = new_member(0)
    payment_no, refund_no = _paid_with_refund(app, fake_wechat, member_id)
    row = payment_row(app, payment_no)
    client = login("staff_a", STAFF_PASSWORD, lang="zh")
    html = _html(client.get("/paymentview/list/"))
    assert "支付记录" in html and payment_no in html
    html = _html(client.get(f"/paymentview/list/?_flt_0_gateway_trade_no={row['gateway_trade_no']}"))
    assert payment_no in html
    html = _html(client.get("/paymentview/list/?_flt_0_status=closed"))
    assert payment_no not in html
    html = _html(client.get(f"/paymentview/show/{row['id']}"))
    assert refund_no in html and row["gateway_trade_no"] in html and "退款中" in html
    assert "/paymentview/delete/" not in html
    html = _html(client.get("/refundview/list/"))
    assert "退款记录" in html and refund_no in html and "待发送" in html
    html = _html(client.get(f"/memberview/show/{member_id}"))
    assert refund_no in html and "5.0000" in html
    assert "/paymentview/delete/" not in html

    # the other operator's admin sees neither
    other = login("staff_b", STAFF_PASSWORD, lang="zh")
    assert payment_no not in other.get("/paymentview/list/").get_data(as_text=True)
    assert refund_no not in other.get("/refundview/list/").get_data(as_text=True)
    assert row["gateway_trade_no"] not in other.get(f"/paymentview/show/{row['id']}").get_data(as_text=True)
    assert other.post(f"/paymentview/delete/{row['id']}").status_code in (302, 403, 404, 405)
    assert payment_row(app, payment_no)["status"] == "refunding"


def test_gateway_credentials_are_write_only_and_sealed(app, login, fake_wechat):
    from app.models import PaymentGateway
    from app.services.secrets_box import unseal

    client = login("admin", ADMIN_PASSWORD, lang="zh")
    form = {"code": "wxform", "gateway_type": "wechat", "name": "表单网关", "display_name": "表单网关", "sort": "9",
            "enabled": "y", "remark": "", "mchid": "1900000999", "appid": "wx0000000000000001",
            "merchant_serial_no": "ABC123", "platform_public_key_id": "PUB_KEY_ID_1", "api_base_url": "",
            "api_v3_key": "k" * 32, "private_key": fake_wechat.merchant_private_pem,
            "platform_public_key": fake_wechat.platform_public_pem}
    rv = client.post("/paymentgatewayview/add", data=form)
    assert rv.status_code == 302, rv.get_data(as_text=True)[:2000]
    with app.app_context():
        gw = db.session.scalar(select(PaymentGateway).where(PaymentGateway.code == "wxform"))
        gw_id = gw.id
        assert gw.api_v3_key_enc.startswith("fernet:") and "k" * 32 not in gw.api_v3_key_enc
        assert unseal(gw.api_v3_key_enc) == "k" * 32
        assert unseal(gw.private_key_enc).startswith("-----BEGIN PRIVATE KEY-----")
        assert "BEGIN" not in gw.private_key_enc
    html = _html(client.get(f"/paymentgatewayview/show/{gw_id}"))
    assert "已设置" in html and "k" * 32 not in html and "BEGIN PRIVATE KEY" not in html
    html = _html(client.get(f"/paymentgatewayview/edit/{gw_id}"))
    assert "k" * 32 not in html and "BEGIN PRIVATE KEY" not in html and "BEGIN PUBLIC KEY" not in html
    # an edit with the secrets left empty keeps them
    form.update(api_v3_key="", private_key="", platform_public_key="", name="表单网关2")
    assert client.post(f"/paymentgatewayview/edit/{gw_id}", data=form).status_code == 302
    with app.app_context():
        gw = db.session.get(PaymentGateway, gw_id)
        assert gw.name == "表单网关2" and unseal(gw.api_v3_key_enc) == "k" * 32
        assert unseal(gw.platform_public_key_enc).startswith("-----BEGIN PUBLIC KEY-----")
    # a new key replaces the old one
    form.update(api_v3_key="n" * 32)
    assert client.post(f"/paymentgatewayview/edit/{gw_id}", data=form).status_code == 302
    with app.app_context():
        assert unseal(db.session.get(PaymentGateway, gw_id).api_v3_key_enc) == "n" * 32
        gw = db.session.get(PaymentGateway, gw_id)
        gw.enabled = False                       # keep it out of the other tests' way
        db.session.commit()


def test_retry_action_on_a_failed_refund(app, login, fake_wechat, wechat_gateway, new_member):
    from app.models import Refund
    from app.services import payments

    member_id = new_member(0)
    payment_no, refund_no = _paid_with_refund(app, fake_wechat, member_id)
    with app.app_context():
        refund_id = db.session.scalar(select(Refund.id).where(Refund.refund_no == refund_no))
        payments.send_refund(refund_id)
        payments.apply_refund_result(refund_no, {"status": "CLOSED"}, source="test")
        db.session.commit()
    viewer = login("viewer_a", STAFF_PASSWORD, lang="zh")
    viewer.post("/refundview/action_post", data={"action": "retry", "rowid": [str(refund_id)]})
    with app.app_context():
        assert db.session.get(Refund, refund_id).status == "failed"          # read-only staff cannot
    client = login("staff_a", STAFF_PASSWORD, lang="zh")
    html = _html(client.get("/refundview/list/"))
    assert "失败" in html and "重新退款" in html
    rv = client.post("/refundview/action_post", data={"action": "retry", "rowid": [str(refund_id)]},
                     follow_redirects=True)
    assert rv.status_code == 200 and "已重新发起 1 笔退款" in rv.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Refund, refund_id).status == "retried"
        new = db.session.scalar(select(Refund).where(Refund.retry_of_id == refund_id))
        assert new.status == "processing" and new.amount == Decimal("5.0000")
    assert payment_row(app, payment_no)["refunded_amount"] == Decimal("5.0000")


def test_refund_of_an_order_shows_on_the_order(app, login, fake_wechat, wechat_gateway, new_member):
    import uuid

    from app.models import ChargeOrder, Connector, Member, Payment, PaymentGateway
    from app.services import payments

    member_id = new_member(0)
    with app.app_context():
        member = db.session.get(Member, member_id)
        conn = db.session.scalars(select(Connector).where(Connector.operator_id == member.operator_id)
                                  .order_by(Connector.id)).first()
        order = ChargeOrder(order_no="8" + str(uuid.uuid4().int)[:12], operator_id=member.operator_id,
                            station_id=conn.station_id, pile_id=conn.pile_id, connector_id=conn.id,
                            member_id=member_id, status="settled", pay_status="partial_refund",
                            energy=Decimal("10.0000"), electricity_fee=Decimal("15.0000"),
                            service_fee=Decimal("6.1200"), total_amount=Decimal("21.1200"),
                            payable_amount=Decimal("21.1200"), paid_amount=Decimal("21.1200"),
                            refunded_amount=Decimal("8.8800"))
        db.session.add(order)
        db.session.flush()
        gw = db.session.scalar(select(PaymentGateway).where(PaymentGateway.code == "wxtest"))
        no = payments.new_payment_no()
        db.session.add(Payment(payment_no=no, gateway_id=gw.id, member_id=order.member_id, order_id=order.id,
                               operator_id=order.operator_id, purpose="order", amount=Decimal("30.00"),
                               refunded_amount=Decimal("0"), status="pending"))
        db.session.commit()
        order_id, operator_id = order.id, order.operator_id
    fake_wechat.orders[no] = {"request": {"appid": fake_wechat.appid, "mchid": fake_wechat.mchid,
                                          "payer": {"openid": "o"}, "amount": {"total": 3000, "currency": "CNY"}},
                              "trade_state": "NOTPAY", "transaction_id": None, "prepay_id": "wx"}
    headers, body = fake_wechat.notification(fake_wechat.pay(no))
    assert app.test_client().post("/pay/wechat/wxtest/notify", data=body, headers=headers).status_code == 204
    with app.app_context():
        payment = db.session.scalar(select(Payment).where(Payment.payment_no == no))
        payment.refunded_amount, payment.status = Decimal("8.88"), "refunding"    # as settlement reserves it
        db.session.commit()
        payments.process_refunds()
        refund = payments.refunds_of_order(order_id)[0]
        refund_no = refund.refund_no
    from app.models import Operator

    with app.app_context():
        first_op = db.session.scalar(select(Operator.id).order_by(Operator.id))
    user = "staff_a" if operator_id == first_op else "staff_b"
    client = login(user, STAFF_PASSWORD, lang="zh")
    html = _html(client.get(f"/historyorderview/show/{order_id}"))
    assert refund_no in html and "8.8800" in html and "预付未用退款" in html
