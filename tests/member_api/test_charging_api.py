"""Member API: start, stop, current and live charges, as members of two operators.

The piles are real TCP clients of a real gateway process (``gateway``): a scripted YKC pile for the
refusals (offline, disabled, fault, busy, balance, the pile's own refusal, a coupon), and the YKC
simulator for a whole charge — start by QR code, live figures that move, stop, the pile's bill,
settlement in a real RQ worker, the order's period breakdown adding up to its total."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from decimal import Decimal

import pytest
from flask import current_app
from sqlalchemy import func, select

from app.extensions import db
from app.gateway.registry import Registry
from app.gateway.ykc import RealtimeData, RemoteStartReply, encode_reply
from app.models import ChargeOrder, Connector, Member, WalletEntry
from app.services import clock
from app.services.wallet import ledger_balance
from tests.integration.gateway.conftest import ROOT, WorkerProcess, fetch, wait_until
from tests.integration.gateway.ykc_client import PileClient
from tests.member_api.station_support import conforms, failed_order, make_member, make_station, operator_ids
from tests.member_api.support import headers_for

API = "/api/app/v1"
IDLE, FAULT, CHARGING = 2, 1, 3


@pytest.fixture(scope="module")
def site(app):
    """Operator A: a two-gun pile (scripted), a one-gun pile (simulator), a one-gun pile whose gun is
    disabled; operator B: a one-gun pile. Members: A rich (100 yuan), A poor (3 yuan), B rich."""
    op_a, op_b = operator_ids(app)
    a = make_station(app, op_a, lng="91.100000", lat="29.650000", piles=(2, 1, 1))
    b = make_station(app, op_b, lng="91.100000", lat="29.660000", piles=(1,))
    disabled = a["piles"][2]["guns"][0]
    with app.app_context():
        db.session.get(Connector, disabled).enabled = False
        db.session.commit()
    return {"a": a, "b": b, "op_a": op_a, "op_b": op_b, "scripted": a["piles"][0], "simulated": a["piles"][1],
            "disabled": disabled, "b_gun": b["piles"][0]["guns"][0],
            "rich": make_member(app, op_a, Decimal("100")), "poor": make_member(app, op_a, Decimal("3")),
            "b_member": make_member(app, op_b, Decimal("100"))}


def start(client, app, member_id, **body):
    return client.post(f"{API}/charging/start", json=body, headers=headers_for(app, member_id))


def orders_of(app, member_id):
    return fetch(app, select(func.count()).select_from(ChargeOrder).where(ChargeOrder.member_id == member_id))[0][0]


def assert_error(rv, status, code, message=None, path="/charging/start", method="post"):
    body = conforms(current_app, rv, method, path)
    assert rv.status_code == status and body["code"] == code, body
    if message is not None:
        assert body["message"] == message, body


def test_every_endpoint_needs_a_token(client):
    for method, path in (("post", "/charging/start"), ("post", "/charging/1/stop"), ("get", "/charging/current"),
                         ("get", "/charging/1/live")):
        rv = getattr(client, method)(API + path, json={})
        assert rv.status_code == 401 and rv.get_json()["code"] == "token_missing", path


@pytest.mark.parametrize("body", [{}, {"connector_id": 1, "qr_content": "x"}, {"connector_id": 0},
                                  {"connector_id": 1, "prepaid_amount": "0"},
                                  {"connector_id": 1, "prepaid_amount": "-5"},
                                  {"connector_id": 1, "prepaid_amount": "10.12345"},
                                  {"connector_id": 1, "prepaid_amount": "abc"},
                                  {"connector_id": 1, "coupon_id": 2**40}, {"connector_id": 1, "other": 1}])
def test_start_refuses_bad_input(app, client, site, body):
    rv = start(client, app, site["rich"], **body)
    assert_error(rv, 400, "invalid_request")
    assert rv.get_json()["fields"]


def test_start_on_a_gun_of_another_operator_or_unknown_is_not_found(app, client, site):
    gun_a = site["scripted"]["guns"][0]
    for member, gun in ((site["b_member"], gun_a), (site["rich"], site["b_gun"]), (site["rich"], 99999999)):
        assert_error(start(client, app, member, connector_id=gun), 404, "not_found", "未找到")
    assert orders_of(app, site["rich"]) == 0


def test_start_by_qr_code(app, client, site):
    pile = site["scripted"]
    assert_error(start(client, app, site["rich"], qr_content=pile["code"]), 400, "gun_not_selected",
                 "该电桩有多把充电枪，请选择一把")
    assert_error(start(client, app, site["rich"], qr_content="https://elsewhere.example/1"), 404, "qr_not_recognized")
    # another operator's gun code names nothing of B's
    assert_error(start(client, app, site["b_member"], qr_content=f"{pile['code']}01"), 404, "qr_not_recognized")
    # a gun named by its code reaches the charging checks (no gateway holds this pile: offline)
    assert_error(start(client, app, site["rich"], qr_content=f"{pile['code']}02"), 409, "pile_offline", "充电桩离线")


def test_start_on_an_offline_pile_or_a_disabled_gun(app, client, site):
    assert_error(start(client, app, site["rich"], connector_id=site["scripted"]["guns"][0]), 409, "pile_offline")
    assert_error(start(client, app, site["rich"], connector_id=site["disabled"]), 409, "gun_disabled", "该充电枪已停用")
    assert orders_of(app, site["rich"]) == 0


def test_stop_and_live_of_an_unknown_or_foreign_order(app, client, site):
    foreign = failed_order(app, site["b_gun"], site["b_member"])        # an order of operator B's member
    for order_id in (foreign, 99999999, 2**31 - 1):
        for method, path in (("post", f"/charging/{order_id}/stop"), ("get", f"/charging/{order_id}/live")):
            rv = getattr(client, method)(API + path, headers=headers_for(app, site["rich"]))
            assert_error(rv, 404, "not_found", path=path.replace(str(order_id), "{order_id}"), method=method)


def status(pile, code, gun, value, serial="0" * 32):
    """A 0x13 of the gun in status ``value`` (idle: unplugged, else plugged in)."""
    pile.send(RealtimeData(transaction_serial=serial, pile_code=code, gun=gun, status=value,
                           gun_plugged=0 if value == IDLE else 1))


def live_status(client, app, site, connector_id):
    """The gun's live status as the member app's station page shows it."""
    guns = client.get(f"{API}/stations/{site['a']['id']}", headers=headers_for(app, site["rich"])).get_json()["guns"]
    return next(g["status"] for g in guns if g["id"] == connector_id)


def test_refusals_of_a_live_pile(app, client, site, gateway):
    """A pile online on a real gateway: fault, busy, balance, coupon and the pile's own refusal."""
    pile_info = site["scripted"]
    code, (gun1, gun2) = pile_info["code"], pile_info["guns"]
    with PileClient(gateway.port, code) as pile:
        assert pile.login().result == 0
        status(pile, code, "01", IDLE)
        status(pile, code, "02", FAULT)
        wait_until(lambda: [live_status(client, app, site, g) for g in (gun1, gun2)] == ["idle", "fault"],
                   timeout=10, message="gun 1 idle, gun 2 fault")
        assert_error(start(client, app, site["rich"], connector_id=gun2), 409, "gun_fault",
                     "该充电枪故障，请选择其他充电枪")
        assert_error(start(client, app, site["poor"], connector_id=gun1), 409, "balance_too_low",
                     "余额不足，无法启动充电，请先充值")
        assert_error(start(client, app, site["rich"], connector_id=gun1, prepaid_amount="100.0001"), 409,
                     "balance_too_low")
        assert_error(start(client, app, site["rich"], connector_id=gun1, coupon_id=99999999), 409,
                     "coupon_not_usable")
        assert orders_of(app, site["rich"]) == 0 and orders_of(app, site["poor"]) == 0

        status(pile, code, "02", CHARGING)           # charging without a session of ours (a card at the pile)
        wait_until(lambda: live_status(client, app, site, gun2) == "charging", timeout=10, message="gun 2 charging")
        assert_error(start(client, app, site["rich"], connector_id=gun2), 409, "gun_busy",
                     "该充电枪正在使用中，请选择其他充电枪")

        # the pile refuses the start (gun not plugged in, 0x33 reason 5): the order fails
        outcome = {}

        def call():
            outcome["rv"] = app.test_client().post(f"{API}/charging/start", json={"connector_id": gun1},
                                                   headers=headers_for(app, site["rich"]))

        thread = threading.Thread(target=call)
        thread.start()
        header, command = pile.expect(0x34, timeout=10)
        assert command.balance == Decimal("100.00")       # the whole balance: no prepaid amount
        pile.send_bytes(encode_reply(RemoteStartReply(transaction_serial=command.transaction_serial, pile_code=code,
                                                      gun="01", result=0, failure_reason=5), header))
        thread.join(15)
        assert_error(outcome["rv"], 409, "start_failed", "启动充电失败：充电枪未插好")
    failed = client.get(f"{API}/orders", query_string={"status": "failed"},
                        headers=headers_for(app, site["rich"])).get_json()
    assert failed["total"] == 1
    order = failed["items"][0]
    assert (order["connector_id"], order["start_method"], order["failure_reason"]) == (gun1, "app", "充电枪未插好")
    assert order["status_label"] == "失败"
    # a failed order cannot be stopped
    rv = client.post(f"{API}/charging/{order['id']}/stop", headers=headers_for(app, site["rich"]))
    assert_error(rv, 409, "order_not_active", "该订单不在充电中", path="/charging/{order_id}/stop")
    live = conforms(app, client.get(f"{API}/charging/{order['id']}/live", headers=headers_for(app, site["rich"])),
                    "get", "/charging/{order_id}/live")
    assert live["status"] == "failed" and live["energy"] == "0.0000" and live["amount"] == "0.0000"
    assert client.get(f"{API}/charging/current", headers=headers_for(app, site["rich"])).get_json() == {"items": []}


def test_a_stop_the_pile_does_not_get_is_repeated_later(app, client, site, gateway):
    """Start on the scripted pile (it accepts and reports charging), the pile drops off, the member
    stops: the order is 'stopping' and the answer says the pile has not acknowledged the stop yet."""
    code, gun1 = site["scripted"]["code"], site["scripted"]["guns"][0]
    member = make_member(app, site["op_a"], Decimal("80"))
    headers = headers_for(app, member)
    outcome = {}
    try:
        with PileClient(gateway.port, code) as pile:
            assert pile.login().result == 0
            status(pile, code, "01", IDLE)
            wait_until(lambda: live_status(client, app, site, gun1) == "idle", timeout=10, message="gun 1 idle")

            def call():
                outcome["rv"] = app.test_client().post(f"{API}/charging/start",
                                                       json={"connector_id": gun1, "prepaid_amount": "30.5"},
                                                       headers=headers)

            thread = threading.Thread(target=call)
            thread.start()
            header, command = pile.expect(0x34, timeout=10)
            assert command.balance == Decimal("30.50")          # the prepaid amount, not the balance
            serial = command.transaction_serial
            pile.send_bytes(encode_reply(RemoteStartReply(transaction_serial=serial, pile_code=code, gun="01",
                                                          result=1, failure_reason=0), header))
            thread.join(15)
            rv = outcome["rv"]
            assert rv.status_code == 200, rv.get_json()
            order = conforms(app, rv, "post", "/charging/start")
            outcome["order_id"] = order_id = order["id"]
            assert order["status"] == "starting" and order["prepaid_amount"] == "30.5000"
            pile.send(RealtimeData(transaction_serial=serial, pile_code=code, gun="01", status=CHARGING, gun_plugged=1,
                                   output_voltage=Decimal("400.0"), output_current=Decimal("50.0"), soc=42,
                                   energy=Decimal("0.5000"), amount=Decimal("0.6100")))

            def live():
                return conforms(app, client.get(f"{API}/charging/{order_id}/live", headers=headers), "get",
                                "/charging/{order_id}/live")

            wait_until(lambda: live()["status"] == "charging" and live()["energy"] == "0.5000", timeout=10,
                       message="charging, 0.5 kWh")
            now = live()
            assert (now["amount"], now["soc"], now["power"], now["voltage"], now["current"]) == (
                "0.6100", 42, "20.00", "400.00", "50.00")        # 400 V × 50 A = 20 kW
        wait_until(lambda: not Registry(app.extensions["redis"]).owner(code), timeout=10, message="pile offline")
        rv = client.post(f"{API}/charging/{order_id}/stop", headers=headers)
        body = conforms(app, rv, "post", "/charging/{order_id}/stop")
        assert rv.status_code == 200 and body["stop_confirmed"] is False
        assert body["order"]["status"] == "stopping" and body["order"]["status_label"] == "停止中"
        # stopping again is allowed (the stop is repeated); another member cannot
        assert client.post(f"{API}/charging/{order_id}/stop", headers=headers).status_code == 200
        assert client.post(f"{API}/charging/{order_id}/stop",
                           headers=headers_for(app, site["rich"])).status_code == 404
        current = client.get(f"{API}/charging/current", headers=headers).get_json()["items"]
        assert [(c["order_id"], c["status"]) for c in current] == [(order_id, "stopping")]
    finally:
        with app.app_context():
            from app.services import charging
            from app.services.order_admin import mark_abnormal

            row = db.session.get(ChargeOrder, outcome["order_id"]) if "order_id" in outcome else None
            if row is not None and row.status in ("starting", "charging", "stopping"):
                mark_abnormal(row, "test pile went away")
                db.session.commit()
                charging._forget(row)


@pytest.fixture(scope="module")
def worker(app):
    proc = WorkerProcess(app, "member-api-charging")
    yield proc
    proc.stop()


@pytest.mark.usefixtures("money_invariants")
def test_a_whole_charge_over_the_simulator(app, client, site, gateway, worker, redis):
    """Start by QR code on a simulated pile, watch the live figures move, stop, and read the settled
    order: its periods add up to its totals and the wallet paid exactly the payable amount."""
    code = site["simulated"]["code"]
    gun = site["simulated"]["guns"][0]
    member = site["rich"]
    headers = headers_for(app, member)
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.gateway.simulator", "--port", str(gateway.port), "--codes", code,
         "--guns", "1", "--heartbeat", "1", "--realtime-charging", "0.3", "--realtime-idle", "5",
         "--bill-retry", "2", "--duration", "120", "--progress", "0"],
        cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: Registry(redis).owner(code), timeout=20, message="simulated pile online")
        wait_until(lambda: live_status(client, app, site, gun) == "idle", timeout=15, message="gun idle")
        rv = client.post(f"{API}/charging/start", json={"qr_content": code, "prepaid_amount": "50"}, headers=headers)
        assert rv.status_code == 200, rv.get_json()
        order = conforms(app, rv, "post", "/charging/start")
        order_id = order["id"]
        assert order["status"] in ("starting", "charging") and order["connector_id"] == gun
        assert order["start_method"] == "app" and order["prepaid_amount"] == "50.0000"
        with app.app_context():
            row = db.session.get(ChargeOrder, order_id)
            assert row.member_id == member and row.channel_id == db.session.get(Member, member).channel_id

        def live():
            rv = client.get(f"{API}/charging/{order_id}/live", headers=headers)
            assert rv.status_code == 200, rv.get_json()
            return conforms(app, rv, "get", "/charging/{order_id}/live")

        wait_until(lambda: live()["status"] == "charging" and Decimal(live()["energy"]) > 0, timeout=30,
                   message="charging with energy")
        first = live()
        wait_until(lambda: Decimal(live()["energy"]) > Decimal(first["energy"]), timeout=20,
                   message="the live energy moves")
        now = live()
        assert Decimal(now["amount"]) > 0 and Decimal(now["power"]) > 0 and now["updated_at"].endswith("Z")
        assert now["duration_seconds"] >= 0 and now["prepaid_amount"] == "50.0000"
        current = conforms(app, client.get(f"{API}/charging/current", headers=headers), "get",
                           "/charging/current")["items"]
        assert [c["order_id"] for c in current] == [order_id]
        # nobody else sees or stops it
        other = headers_for(app, site["b_member"])
        assert client.get(f"{API}/charging/{order_id}/live", headers=other).status_code == 404
        assert client.post(f"{API}/charging/{order_id}/stop", headers=other).status_code == 404
        assert client.get(f"{API}/orders/{order_id}", headers=other).status_code == 404
        assert client.get(f"{API}/charging/current", headers=other).get_json() == {"items": []}

        rv = client.post(f"{API}/charging/{order_id}/stop", headers=headers)
        assert rv.status_code == 200, rv.get_json()
        stopped = conforms(app, rv, "post", "/charging/{order_id}/stop")
        assert stopped["stop_confirmed"] is True and stopped["order"]["status"] in ("stopping", "finished", "settled")

        def detail():
            return conforms(app, client.get(f"{API}/orders/{order_id}", headers=headers), "get", "/orders/{order_id}")

        wait_until(lambda: detail()["status"] == "settled", timeout=60, message="settled")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    body = detail()
    periods = body["periods"]
    assert periods and body["status_label"] == "已结算"
    total = sum(Decimal(p["amount"]) for p in periods)
    assert total == Decimal(body["total_amount"]) > 0
    assert sum(Decimal(p["energy"]) for p in periods) == Decimal(body["energy"]) > 0
    assert sum(Decimal(p["electricity_fee"]) for p in periods) == Decimal(body["electricity_fee"])
    assert sum(Decimal(p["service_fee"]) for p in periods) == Decimal(body["service_fee"])
    assert Decimal(body["total_amount"]) == Decimal(body["electricity_fee"]) + Decimal(body["service_fee"])
    for p in periods:
        # the test template: valley 0.30000 + 0.40000 before local noon, peak 1.00000 + 0.80000 after
        assert (p["electricity_price"], p["service_price"]) in (("0.30000", "0.40000"), ("1.00000", "0.80000"))
        assert p["start_at"] <= p["end_at"] and p["start_local"] and p["level_label"] in ("谷", "峰")
    assert body["payable_amount"] == body["paid_amount"]
    assert Decimal(body["payable_amount"]) == Decimal(body["total_amount"]) - Decimal(body["discount_total"])
    assert body["pay_status"] == "paid" and body["pay_status_label"] == "已支付"
    entries = fetch(app, select(WalletEntry.amount).where(WalletEntry.order_id == order_id))
    assert [e[0] for e in entries] == [-Decimal(body["payable_amount"])]
    with app.app_context():
        assert db.session.get(Member, member).balance == ledger_balance(member) == \
            Decimal("100") - Decimal(body["payable_amount"])
    # the ended order's live view shows its final figures; the lists show it
    final = client.get(f"{API}/charging/{order_id}/live", headers=headers).get_json()
    assert final["status"] == "settled" and final["energy"] == body["energy"]
    assert final["amount"] == body["total_amount"] and final["power"] is None
    assert client.get(f"{API}/charging/current", headers=headers).get_json() == {"items": []}
    today = clock.local_today().isoformat()
    listed = client.get(f"{API}/orders", query_string={"status": "settled", "date_from": today, "date_to": today},
                        headers=headers).get_json()
    assert [o["id"] for o in listed["items"]] == [order_id]


def test_the_endpoints_and_their_errors_are_documented(app, client):
    doc = client.get(f"{API}/_openapi").get_json()
    start_op = doc["paths"][f"{API}/charging/start"]["post"]
    assert start_op["security"] == [{"bearerAuth": []}]
    assert {"200", "400", "401", "403", "404", "409", "429"} <= set(start_op["responses"])
    for code in ("gun_disabled", "pile_offline", "gun_busy", "gun_fault", "balance_too_low", "coupon_not_usable",
                 "start_failed"):
        assert code in start_op["responses"]["409"]["description"]
    assert "gun_not_selected" in start_op["responses"]["400"]["description"]
    assert "qr_not_recognized" in start_op["responses"]["404"]["description"]
    assert "order_not_active" in doc["paths"][f"{API}/charging/{{order_id}}/stop"]["post"]["responses"]["409"][
        "description"]
    for path in ("/stations/nearby", "/stations/{station_id}", "/guns/by-qr", "/charging/current",
                 "/charging/{order_id}/live", "/orders", "/orders/{order_id}", "/occupancy-orders",
                 "/occupancy-orders/{occupancy_id}"):
        op = doc["paths"][API + path]["get"]
        assert op["security"] == [{"bearerAuth": []}] and "200" in op["responses"], path
    # every error code of the area has a Chinese message in the document's description
    for text in ("`pile_offline` (HTTP 409): 充电桩离线", "`qr_not_recognized` (HTTP 404): 该二维码不是本平台的充电枪"):
        assert text in doc["info"]["description"]
