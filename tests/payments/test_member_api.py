"""Member API of payments: top-ups, their status, wallet refunds and the payment list; two operators' members
never see each other's payments."""
from decimal import Decimal

from app.extensions import db
from tests.member_api.support import headers_for

D = Decimal


def _pay(app, fake, payment_no):
    headers, body = fake.notification(fake.pay(payment_no))
    assert app.test_client().post("/pay/wechat/wxtest/notify", data=body, headers=headers).status_code == 204


def test_top_up_pay_and_read_back(app, client, fake_wechat, wechat_gateway, new_member):
    member_id = new_member(0)
    other_id = new_member(1)
    h = headers_for(app, member_id)
    rv = client.post("/api/app/v1/wallet/top-ups", json={"amount": "66.60"}, headers=h)
    assert rv.status_code == 201, rv.get_data(as_text=True)
    body = rv.get_json()
    payment_no = body["payment"]["payment_no"]
    assert body["payment"]["status"] == "pending" and body["payment"]["amount"] == "66.6000"
    assert body["payment"]["status_label"] == "待支付" or body["payment"]["status_label"]
    assert body["pay_params"]["package"].startswith("prepay_id=")
    assert fake_wechat.orders[payment_no]["request"]["amount"]["total"] == 6660

    _pay(app, fake_wechat, payment_no)
    rv = client.get(f"/api/app/v1/wallet/top-ups/{payment_no}", headers=h)
    assert rv.status_code == 200
    assert rv.get_json()["status"] == "succeeded"
    assert rv.get_json()["transaction_id"] == fake_wechat.orders[payment_no]["transaction_id"]
    assert client.get("/api/app/v1/wallet", headers=h).get_json()["balance"] == "66.6000"

    # another operator's member: not found, and not in their list
    ho = headers_for(app, other_id)
    rv = client.get(f"/api/app/v1/wallet/top-ups/{payment_no}", headers=ho)
    assert rv.status_code == 404 and rv.get_json()["code"] == "not_found"
    assert client.get("/api/app/v1/payments", headers=ho).get_json()["items"] == []
    items = client.get("/api/app/v1/payments", headers=h).get_json()["items"]
    assert [p["payment_no"] for p in items] == [payment_no]


def test_top_up_errors(app, client, fake_wechat, wechat_gateway, new_member):
    from app.models import Member

    member_id = new_member()
    h = headers_for(app, member_id, lang="zh")
    for amount, code in (("1.005", "payment_amount_invalid"), ("0.5", "payment_amount_invalid"),
                         ("100000", "payment_amount_invalid"), ("-1", "payment_amount_invalid"),
                         ("0", "payment_amount_invalid"), ("abc", "invalid_request")):
        rv = client.post("/api/app/v1/wallet/top-ups", json={"amount": amount}, headers=h)
        assert rv.get_json()["code"] == code, (amount, rv.get_json())
        assert rv.status_code == 400
    with app.app_context():
        db.session.get(Member, member_id).openid = None
        db.session.commit()
    rv = client.post("/api/app/v1/wallet/top-ups", json={"amount": "10"}, headers=h)
    assert rv.status_code == 409 and rv.get_json()["code"] == "wechat_not_bound"
    assert rv.get_json()["message"] == "请先使用微信登录再使用微信支付。"
    # WeChat Pay down: the payment is marked failed, the member told to try later
    with app.app_context():
        db.session.get(Member, member_id).openid = "o" + "x" * 27
        db.session.commit()
    fake_wechat.fail_next = 1
    rv = client.post("/api/app/v1/wallet/top-ups", json={"amount": "10"}, headers=h)
    assert rv.status_code == 503 and rv.get_json()["code"] == "payment_unavailable"
    items = client.get("/api/app/v1/payments", headers=h).get_json()["items"]
    assert items[0]["status"] == "failed"


def test_wallet_refund_through_the_api(app, client, fake_wechat, wechat_gateway, new_member):
    member_id = new_member()
    h = headers_for(app, member_id)
    payment_no = client.post("/api/app/v1/wallet/top-ups", json={"amount": "30"}, headers=h).get_json()[
        "payment"]["payment_no"]
    _pay(app, fake_wechat, payment_no)
    rv = client.post("/api/app/v1/wallet/refunds", json={"amount": "31", "reason": "x"}, headers=h)
    assert rv.status_code == 409 and rv.get_json()["code"] == "refund_exceeds_balance"
    rv = client.post("/api/app/v1/wallet/refunds", json={"amount": "12.34", "reason": "不用了",
                                                         "request_key": "abcdefgh1"}, headers=h)
    assert rv.status_code == 201, rv.get_data(as_text=True)
    body = rv.get_json()
    assert body["balance"] == "17.6600"
    assert [(r["amount"], r["status"], r["kind"]) for r in body["refunds"]] == [("12.3400", "pending", "wallet")]
    again = client.post("/api/app/v1/wallet/refunds", json={"amount": "12.34", "reason": "不用了",
                                                            "request_key": "abcdefgh1"}, headers=h)
    assert again.status_code == 201 and again.get_json()["balance"] == "17.6600"
    payment = client.get(f"/api/app/v1/wallet/top-ups/{payment_no}", headers=h).get_json()
    assert payment["refunded_amount"] == "12.3400" and payment["status"] == "refunding"
    assert [r["refund_no"] for r in payment["refunds"]] == [body["refunds"][0]["refund_no"]]
    # no balance from top-ups: nothing to refund
    poor = new_member(balance=D("5"))
    rv = client.post("/api/app/v1/wallet/refunds", json={"reason": "all"}, headers=headers_for(app, poor))
    assert rv.status_code == 409 and rv.get_json()["code"] == "refund_not_possible"


def test_out_of_range_amounts_are_documented_errors(app, client, fake_wechat, wechat_gateway, new_member):
    member_id = new_member(balance=D("10"))
    h = headers_for(app, member_id)
    for amount in ("1e400", "1e20", "NaN"):
        rv = client.post("/api/app/v1/wallet/top-ups", json={"amount": amount}, headers=h)
        assert rv.status_code == 400 and rv.get_json()["code"] in ("payment_amount_invalid", "invalid_request")
        rv = client.post("/api/app/v1/wallet/refunds", json={"amount": amount, "reason": "x"}, headers=h)
        assert rv.status_code in (400, 409), rv.get_data(as_text=True)
        assert rv.get_json()["code"] in ("payment_amount_invalid", "invalid_request", "refund_exceeds_balance")
    rv = client.post("/api/app/v1/wallet/refunds", json={"reason": ""}, headers=h)
    assert rv.status_code == 400 and rv.get_json()["code"] == "invalid_request"
    assert client.get("/api/app/v1/wallet/top-ups/P0000", headers=h).status_code == 404
    assert client.post("/api/app/v1/wallet/top-ups", json={"amount": "5"}).status_code == 401
    doc = client.get("/api/app/v1/_openapi").get_json()
    for path in ("/wallet/top-ups", "/wallet/top-ups/{payment_no}", "/wallet/refunds", "/payments"):
        assert any(p.endswith(path) for p in doc["paths"]), path
