"""The member's journey end to end over real sockets (issue 11 "Done when").

Real processes on the test database and Redis: ``python run.py web`` (gevent WSGI, its PUBLIC_BASE_URL is
its own address), the gateway, an RQ worker; a simulated YKC pile (``python -m app.gateway.simulator``)
over TCP; a fake WeChat Pay v3 server over HTTP (tests/payments/wechatpay_fake.py: merchant and platform
RSA keys and the API v3 key generated for the test).

The walk, all over HTTP: SMS code (read from the logging sender's outbox) -> login -> top-up (prepay at
the fake; WeChat's notification signed with the platform key POSTed to our notify URL) -> the wallet is
credited -> the gun's QR content -> by-qr -> start -> live figures grow while the pile charges -> stop ->
the order settles from the wallet (balance = top-up - payable; ledger: recharge + consume) -> invoice
request over the order -> an operator administrator issues it in the admin with an invoice number -> the
member sees it issued. A member of the other operator sees none of it.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from decimal import ROUND_HALF_UP, Decimal

import pytest
from sqlalchemy import select

from app.extensions import db
from app.gateway.registry import Registry
from app.models import (
    Channel,
    ChargeOrder,
    Connector,
    Member,
    Operator,
    OrderPeriod,
    PaymentGateway,
    Pile,
    PricePeriod,
    PriceTemplate,
    Station,
    WalletEntry,
)
from app.security.scope import platform_scope
from tests.integration.gateway.conftest import (
    ROOT,
    TOU,
    GatewayProcess,
    WorkerProcess,
    remove_test_station,
    wait_until,
)
from tests.interconnect.e2e_support import AdminSession
from tests.member_api.e2e_support import MemberClient, PublicWebProcess, wechat_pays
from tests.member_api.support import demo_member_ids, headers_for
from tests.payments.wechatpay_fake import FakeWeChatPay

PILE_CODE = "77200000000001"          # outside the gateway tests' pool (7700000000xxxx) and the T/CEC walk's
GUN_CODE = f"{PILE_CODE}01"
STAFF = ("staff_a", "staff-pass-1")   # demo operator administrator of the first operator
TOP_UP = Decimal("50.00")
Q4 = Decimal("0.0001")
STARTUP_SECONDS = 90                  # a process ready (generous: CI machines run several test sessions)
PROCESS_ENV = {"CHARGING_HOOKS": "app.services.charging:OrderHooks", "CHARGING_SAMPLE_FLUSH_INTERVAL": "0.2",
               "GATEWAY_COMMAND_TIMEOUT": "5"}


@pytest.fixture(scope="module")
def journey(app):
    """Station, pile, login channel, WeChat Pay gateway and member of the first operator; every process."""
    fake = FakeWeChatPay().start()
    tag = uuid.uuid4().hex[:6].upper()
    phone = f"137{uuid.uuid4().int % 10 ** 8:08d}"
    with app.app_context(), platform_scope("e2e-member-setup"):
        from app.services import payments

        operator = db.session.scalar(select(Operator).order_by(Operator.id))
        template = PriceTemplate(operator=operator, code=f"MJ{tag}", name="会员旅程模版")
        template.periods = [PricePeriod(start_minute=s, end_minute=e, level=lv, electricity_price=Decimal(ep),
                                        service_price=Decimal(sp)) for s, e, lv, ep, sp in TOU]
        station = Station(operator=operator, code=f"MJ{tag}", name="会员旅程测试站", address="会员旅程测试地址",
                          price_template=template)
        pile = Pile(operator=operator, station=station, code=PILE_CODE, name="会员旅程测试桩", protocol="ykc15",
                    gun_count=2)
        for gun in (1, 2):
            pile.connectors.append(Connector(operator=operator, station=station, gun_no=gun,
                                             code=f"{PILE_CODE}{gun:02d}", name=f"会员旅程枪{gun}"))
        channel = Channel(operator=operator, code=f"MJAPP{tag}", name="会员旅程小程序", channel_type="mini_program",
                          identifier=f"wxmj{tag.lower()}", enabled=True)
        # the member used the mini program before (WeChat openid known) and now logs in by SMS
        member = Member(operator=operator, member_no=f"MJ{tag}", nickname="旅程会员", status="active", phone=phone,
                        openid=f"o{uuid.uuid4().hex[:27]}", balance=Decimal("0"))
        gateway = PaymentGateway(code=f"wxmj{tag.lower()}", gateway_type="wechat", name="微信支付旅程测试",
                                 sort=-1000, enabled=True, api_base_url=fake.base_url)
        payments.set_credentials(gateway, mchid=fake.mchid, appid=fake.appid,
                                 merchant_serial_no=fake.merchant_serial_no, api_v3_key=fake.api_v3_key,
                                 private_key=fake.merchant_private_pem, platform_public_key=fake.platform_public_pem,
                                 platform_public_key_id=fake.public_key_id)
        db.session.add_all([station, channel, member, gateway])
        db.session.commit()
        ids = {"operator_id": operator.id, "station_id": station.id, "template_id": template.id,
               "member_id": member.id, "channel_code": channel.code, "phone": phone, "gateway_id": gateway.id}
    procs, sim = [], None
    try:
        from app.extensions import get_redis

        with app.app_context():
            redis_conn = get_redis()
        # started together (each imports the app for seconds on a busy machine), then waited for
        gw = GatewayProcess(app, "gw-member-e2e", **PROCESS_ENV)
        procs.append(gw)
        procs.append(WorkerProcess(app, "member-e2e", **PROCESS_ENV))
        web = PublicWebProcess(app, "web-member-e2e", **PROCESS_ENV)
        procs.append(web)
        _started(gw, lambda: gw.wait_ready(redis_conn, timeout=STARTUP_SECONDS))
        _started(web, lambda: web.wait_ready(timeout=STARTUP_SECONDS))
        sim = subprocess.Popen(
            [sys.executable, "-m", "app.gateway.simulator", "--port", str(gw.port), "--codes", PILE_CODE,
             "--guns", "2", "--heartbeat", "1", "--realtime-charging", "0.3", "--realtime-idle", "5",
             "--bill-retry", "2", "--speed", "20", "--duration", "300", "--progress", "0"],
            cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: Registry(redis_conn).owner(PILE_CODE), timeout=30, message="simulated pile online")
        yield {**ids, "app": app, "fake": fake, "web": web, "procs": procs}
    finally:
        if sim is not None:
            sim.send_signal(signal.SIGTERM)
            try:
                sim.wait(20)
            except subprocess.TimeoutExpired:
                sim.kill()
        for proc in reversed(procs):
            proc.stop()
        fake.stop()
        with app.app_context(), platform_scope("e2e-member-teardown"):
            gateway = db.session.get(PaymentGateway, ids["gateway_id"])
            gateway.enabled = False           # keep later top-ups off the stopped fake server
            db.session.commit()
            remove_test_station(ids["station_id"], ids["template_id"])


def _started(proc, wait):
    try:
        wait()
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- {proc.log_path}:\n{proc.log()[-3000:]}") from exc


def diagnose(env) -> str:
    parts = [f"wechat pay requests: {[(m, p) for m, p, _ in env['fake'].requests][-10:]}"]
    for proc in env["procs"]:
        try:
            text = proc.log()
            errors = [line for line in text.splitlines() if re.match(r"^[\w.]*(Error|Exception)\b", line)]
            parts.append(f"--- {proc.log_path} (errors: {errors[-5:]}):\n{text[-2000:]}")
        except Exception:  # a process without a readable log
            pass
    return "\n".join(parts)


def test_member_journey_end_to_end(app, journey):
    try:
        _journey(app, journey)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{diagnose(journey)}") from exc


def _journey(app, env):
    web = env["web"]
    member = MemberClient(web.url)

    # 1. login by SMS code: the code is read where the logging sender keeps it
    sent = member.ok("POST", "/auth/sms-code", {"phone": env["phone"], "channel": env["channel_code"]})
    assert sent["expires_in"] > 0
    with app.app_context():
        from app.services import sms

        texts = sms.last_messages(env["phone"])
    code = re.search(r"\d{6}", texts[0]).group(0)
    login = member.ok("POST", "/auth/sms-login", {"phone": env["phone"], "code": code,
                                                   "channel": env["channel_code"]})
    assert login["member"]["id"] == env["member_id"] and login["new_member"] is False
    member.token = login["access_token"]
    assert Decimal(member.ok("GET", "/wallet")["balance"]) == Decimal("0")

    # 2. top-up through WeChat Pay: prepay at the fake server, WeChat's signed notification credits the wallet
    topup = member.ok("POST", "/wallet/top-ups", {"amount": str(TOP_UP)}, expect=201)
    payment_no = topup["payment"]["payment_no"]
    assert topup["payment"]["status"] == "pending"
    assert topup["pay_params"]["package"] == f"prepay_id={env['fake'].orders[payment_no]['prepay_id']}"
    assert env["fake"].orders[payment_no]["request"]["amount"]["total"] == 5000
    assert wechat_pays(env["fake"], payment_no) == 204
    paid = member.ok("GET", f"/wallet/top-ups/{payment_no}")
    assert paid["status"] == "succeeded" and Decimal(paid["amount"]) == TOP_UP
    assert Decimal(member.ok("GET", "/wallet")["balance"]) == TOP_UP
    assert wechat_pays(env["fake"], payment_no) == 204          # WeChat repeats: credited once
    assert Decimal(member.ok("GET", "/wallet")["balance"]) == TOP_UP

    # 3. the gun's QR code -> by-qr
    with app.app_context(), platform_scope("e2e-member-read"):
        from app.services import qrcodes

        connector = db.session.scalar(select(Connector).where(Connector.code == GUN_CODE))
        content = qrcodes.content_for(connector)
        connector_id = connector.id
    wait_until(lambda: _gun_status(member, content, connector_id) == "idle", timeout=20, interval=0.3,
               message="gun idle in by-qr")
    target = member.ok("GET", "/guns/by-qr", content=content)
    assert target["selected_connector_id"] == connector_id
    assert target["station"]["id"] == env["station_id"] and target["pile"]["code"] == PILE_CODE

    # a member of the other operator: the code names nothing of theirs
    a_id, b_id = demo_member_ids(app)
    with app.app_context():
        # whichever of the two belongs to an operator other than the station's
        other_id = a_id if db.session.get(Member, a_id).operator_id != env["operator_id"] else b_id
        assert db.session.get(Member, other_id).operator_id != env["operator_id"]
    other = MemberClient(web.url, headers_for(app, other_id)["Authorization"].split(" ", 1)[1])
    status, body = other.get("/guns/by-qr", content=content)
    assert (status, body["code"]) == (404, "qr_not_recognized")

    # 4. start by the QR content; the live order's figures grow while the pile charges
    order = member.ok("POST", "/charging/start", {"qr_content": content})
    order_id = order["id"]
    assert order["connector_id"] == connector_id and order["status"] in ("pending", "starting", "charging")
    first = wait_until(lambda: _live_with_energy(member, order_id), timeout=30, interval=0.3,
                       message="live order charging with energy")
    assert first["status"] == "charging" and first["connector_id"] == connector_id
    second = wait_until(lambda: _grown(member, order_id, first), timeout=20, interval=0.3,
                        message="live figures growing")
    assert Decimal(second["amount"]) >= Decimal(first["amount"]) and Decimal(second["amount"]) > 0
    assert second["power"] is not None and Decimal(second["power"]) > 0
    current = member.ok("GET", "/charging/current")
    assert [i["order_id"] for i in current["items"]] == [order_id]
    assert other.get(f"/charging/{order_id}/live")[0] == 404
    assert other.post(f"/charging/{order_id}/stop")[0] == 404

    # 5. stop; the pile's bill finishes the order; the worker settles it from the wallet
    stopped = member.ok("POST", f"/charging/{order_id}/stop")
    assert stopped["order"]["id"] == order_id
    wait_until(lambda: _settled(member, order_id, stopped), timeout=60, interval=0.5, message="order settled")
    detail = member.ok("GET", f"/orders/{order_id}")
    energy, payable = Decimal(detail["energy"]), Decimal(detail["payable_amount"])
    electricity, service = Decimal(detail["electricity_fee"]), Decimal(detail["service_fee"])
    assert energy > 0 and payable > 0
    assert Decimal(detail["total_amount"]) == electricity + service
    assert payable == electricity + service - Decimal(detail["discount_total"])
    assert Decimal(detail["paid_amount"]) == payable
    assert detail["periods"] and sum(Decimal(p["energy"]) for p in detail["periods"]) == energy
    assert sum(Decimal(p["electricity_fee"]) for p in detail["periods"]) == electricity
    assert sum(Decimal(p["service_fee"]) for p in detail["periods"]) == service
    # each period priced from the station's template (app/services/pricing.py rounding): amount =
    # energy x (electricity + service price) half up to 4 dp, electricity fee likewise, service = the rest
    prices = {level: (Decimal(ep), Decimal(sp)) for _, _, level, ep, sp in TOU}
    for period in detail["periods"]:
        ep, sp = prices[period["level"]]
        assert (Decimal(period["electricity_price"]), Decimal(period["service_price"])) == (ep, sp)
        kwh = Decimal(period["energy"])
        amount, elec = (kwh * (ep + sp)).quantize(Q4, ROUND_HALF_UP), (kwh * ep).quantize(Q4, ROUND_HALF_UP)
        assert (Decimal(period["electricity_fee"]), Decimal(period["service_fee"])) == (elec, amount - elec)
    balance = Decimal(member.ok("GET", "/wallet")["balance"])
    assert balance == TOP_UP - payable
    entries = member.ok("GET", "/wallet/entries")["items"]
    assert [(e["kind"], Decimal(e["amount"])) for e in entries] == [("consume", -payable), ("recharge", TOP_UP)]
    assert Decimal(entries[0]["balance_after"]) == balance and entries[0]["order_no"] == detail["order_no"]
    with app.app_context(), platform_scope("e2e-member-read"):
        rows = db.session.scalars(select(WalletEntry).where(WalletEntry.member_id == env["member_id"])
                                  .order_by(WalletEntry.id)).all()
        assert [(r.kind, r.amount, r.order_id) for r in rows] == [("recharge", TOP_UP, None),
                                                                  ("consume", -payable, order_id)]
        assert db.session.get(Member, env["member_id"]).balance == TOP_UP - payable
        row = db.session.get(ChargeOrder, order_id)
        assert (row.status, row.pay_status, row.energy, row.payable_amount) == ("settled", "paid", energy, payable)
        periods = db.session.scalars(select(OrderPeriod).where(OrderPeriod.order_id == order_id)).all()
        assert sum(p.electricity_fee for p in periods) == row.electricity_fee
    assert other.get(f"/orders/{order_id}")[0] == 404

    # 6. invoice request over that order
    invoiceable = member.ok("GET", "/invoices/orders")["items"]
    assert [o["id"] for o in invoiceable] == [order_id]
    assert Decimal(invoiceable[0]["payable_amount"]) == payable
    invoice = member.ok("POST", "/invoices", {"order_ids": [order_id], "title_type": "person", "title": "旅程会员",
                                              "email": "journey@example.com"}, expect=201)
    invoice_id = invoice["id"]
    assert invoice["status"] == "applied" and Decimal(invoice["amount"]) == payable
    assert Decimal(invoice["electricity_amount"]) + Decimal(invoice["service_amount"]) == payable
    assert [o["id"] for o in invoice["orders"]] == [order_id]
    assert member.ok("GET", "/invoices/orders")["items"] == []
    assert other.get(f"/invoices/{invoice_id}")[0] == 404

    # 7. staff (operator administrator, logged into the admin over HTTP) issue it with an invoice number
    admin = AdminSession(web.url).login(*STAFF)
    token = admin.csrf(f"/invoiceview/issue/{invoice_id}")
    number = f"0441{uuid.uuid4().int % 10 ** 8:08d}"
    form = {"invoice_no": number, **({"csrf_token": token} if token else {})}
    status, body, headers = admin.post(f"/invoiceview/issue/{invoice_id}", form)
    assert status == 302, (status, body[:500])
    assert f"/invoiceview/show/{invoice_id}" in headers.get("Location", "")

    # 8. the member sees it issued
    issued = member.ok("GET", f"/invoices/{invoice_id}")
    assert (issued["status"], issued["invoice_no"]) == ("issued", number)
    assert issued["handled_at"] is not None
    assert [i["status"] for i in member.ok("GET", "/invoices")["items"]] == ["issued"]


def _gun_status(member, content, connector_id):
    status, target = member.get("/guns/by-qr", content=content)
    if status != 200:
        return None
    return next((g.get("status") for g in target["guns"] if g.get("id") == connector_id), None)


def _settled(member, order_id, stopped):
    order = member.ok("GET", f"/orders/{order_id}")
    if order["status"] in ("failed", "abnormal"):
        raise AssertionError(f"order {order['status']} after the stop {stopped}: {order}")
    return order["status"] == "settled"


def _live_with_energy(member, order_id):
    live = member.ok("GET", f"/charging/{order_id}/live")
    if live["status"] in ("failed", "abnormal"):
        raise AssertionError(f"order {live['status']}: {live}")
    return live if live["status"] == "charging" and Decimal(live["energy"]) > 0 else None


def _grown(member, order_id, before):
    live = member.ok("GET", f"/charging/{order_id}/live")
    return live if Decimal(live["energy"]) > Decimal(before["energy"]) else None

