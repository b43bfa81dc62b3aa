"""WeChat Pay payment notifications over real HTTP (Flask test client -> /pay/wechat/<code>/notify), signed by
the fake WeChat Pay server's platform key and decrypted by the wechatpayv3 library."""
import base64
import threading
import time
from decimal import Decimal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from tests.payments.support import balance_and_ledger, count_entries, payment_row, topup

URL = "/pay/wechat/wxtest/notify"


def _post(app, headers, body):
    return app.test_client().post(URL, data=body, headers=headers)


def test_top_up_prepay_then_notification_credits_the_wallet(app, fake_wechat, wechat_gateway, new_member):
    member_id = new_member()
    payment_no, params = topup(app, member_id, "50.00")
    # the prepay reached WeChat with the amount in fen, our notify URL and the member's openid
    order = fake_wechat.orders[payment_no]["request"]
    assert order["amount"] == {"total": 5000, "currency": "CNY"}
    assert order["notify_url"].endswith("/pay/wechat/wxtest/notify")
    assert order["payer"]["openid"].startswith("o")
    # wx.requestPayment parameters, paySign by the merchant key over appId, timeStamp, nonceStr, package
    assert params["package"] == "prepay_id=" + fake_wechat.orders[payment_no]["prepay_id"]
    assert params["signType"] == "RSA" and params["appId"] == fake_wechat.appid
    text = f"{params['appId']}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n"
    fake_wechat.merchant_key.public_key().verify(base64.b64decode(params["paySign"]), text.encode(),
                                                 padding.PKCS1v15(), hashes.SHA256())
    assert payment_row(app, payment_no)["status"] == "pending"

    headers, body = fake_wechat.notification(fake_wechat.pay(payment_no))
    rv = _post(app, headers, body)
    assert rv.status_code == 204, rv.get_data(as_text=True)
    row = payment_row(app, payment_no)
    assert row["status"] == "succeeded"
    assert row["gateway_trade_no"] == fake_wechat.orders[payment_no]["transaction_id"]
    assert row["paid_at"] is not None
    balance, ledger = balance_and_ledger(app, member_id)
    assert balance == Decimal("50.0000")
    assert ledger == [("recharge", Decimal("50.0000"), f"pay:{payment_no}")]

    # the same notification again (WeChat retries): acknowledged, nothing more credited
    rv = _post(app, headers, body)
    assert rv.status_code == 204
    headers2, body2 = fake_wechat.notification(fake_wechat.transaction(payment_no))   # re-sent, new signature
    assert _post(app, headers2, body2).status_code == 204
    assert balance_and_ledger(app, member_id)[0] == Decimal("50.0000")
    assert count_entries(app, f"pay:{payment_no}") == 1


def test_bad_signatures_credit_nothing(app, fake_wechat, wechat_gateway, new_member):
    member_id = new_member()
    payment_no, _ = topup(app, member_id, "20.00")
    txn = fake_wechat.pay(payment_no)
    forged = [
        fake_wechat.notification(txn, key=fake_wechat.other_key),                      # signed by someone else
        fake_wechat.notification(txn, serial="PUB_KEY_ID_UNKNOWN"),                    # unknown key id
        fake_wechat.notification(txn, api_v3_key="0" * 32),                            # not encrypted with our key
        fake_wechat.notification(txn, timestamp=int(time.time()) - 3600),              # an old one replayed
    ]
    headers, body = fake_wechat.notification(txn)
    forged.append((headers, body.replace('"TRANSACTION.SUCCESS"', '"TRANSACTION.SUCCESS" ')))   # body altered
    forged.append(({k: v for k, v in headers.items() if k != "Wechatpay-Signature"}, body))      # unsigned
    for bad_headers, bad_body in forged:
        rv = _post(app, bad_headers, bad_body)
        assert rv.status_code == 401, rv.get_data(as_text=True)
        assert rv.get_json()["code"] == "FAIL"
    assert payment_row(app, payment_no)["status"] == "pending"
    assert balance_and_ledger(app, member_id) == (Decimal("0"), [])
    # the genuine one still credits
    assert _post(app, headers, body).status_code == 204
    assert balance_and_ledger(app, member_id)[0] == Decimal("20.0000")


def test_unknown_gateway_is_404(app, fake_wechat, wechat_gateway):
    headers, body = fake_wechat.notification({"out_trade_no": "P1"})
    assert app.test_client().post("/pay/wechat/nosuch/notify", data=body, headers=headers).status_code == 404
    # the demo wallet gateway is no WeChat gateway either
    assert app.test_client().post("/pay/wechat/wallet/notify", data=body, headers=headers).status_code == 404


def test_amount_other_than_the_payment_is_not_credited(app, fake_wechat, wechat_gateway, new_member):
    member_id = new_member()
    payment_no, _ = topup(app, member_id, "30.00")
    headers, body = fake_wechat.notification(fake_wechat.pay(payment_no, total=1))    # 0.01 yuan paid
    assert _post(app, headers, body).status_code == 204                               # acknowledged, not credited
    row = payment_row(app, payment_no)
    assert row["status"] == "review"
    assert "1 fen" in row["remark"]
    assert balance_and_ledger(app, member_id) == (Decimal("0"), [])


def test_notification_of_an_unpaid_trade_credits_nothing(app, fake_wechat, wechat_gateway, new_member):
    member_id = new_member()
    payment_no, _ = topup(app, member_id, "10.00")
    txn = fake_wechat.transaction(payment_no)      # NOTPAY
    headers, body = fake_wechat.notification(txn)
    assert _post(app, headers, body).status_code == 204
    assert payment_row(app, payment_no)["status"] == "pending"
    assert balance_and_ledger(app, member_id)[0] == Decimal("0")


def test_the_same_notification_concurrently_credits_once(app, fake_wechat, wechat_gateway, new_member):
    """Eight threads post the same notification at once; each request runs in its own app context with its
    own database connection (on PostgreSQL: row locks; on SQLite: the write lock)."""
    member_id = new_member()
    payment_no, _ = topup(app, member_id, "88.88")
    headers, body = fake_wechat.notification(fake_wechat.pay(payment_no))
    barrier = threading.Barrier(8)
    statuses = []

    def post():
        client = app.test_client()
        barrier.wait()
        statuses.append(client.post(URL, data=body, headers=headers).status_code)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert statuses == [204] * 8
    balance, ledger = balance_and_ledger(app, member_id)
    assert balance == Decimal("88.8800")
    assert ledger == [("recharge", Decimal("88.8800"), f"pay:{payment_no}")]
    assert payment_row(app, payment_no)["status"] == "succeeded"
