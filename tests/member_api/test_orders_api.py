"""Member API: my charging orders (list with filters, detail with the period breakdown) and my
occupancy orders, as members of two operators. The orders are made by the real services: priced from
meter samples, settled on the wallet, the occupation after the charge ended and settled too.

Worked example (the test template: valley 0.30000 + 0.40000 yuan/kWh before local noon, peak
1.00000 + 0.80000 after), a charge 11:00-13:00 Beijing time (03:00-05:00 UTC) with the meter at
0 / 10.1234 / 25.4321 kWh on the hour:
- valley 11:00-12:00: 10.1234 kWh; amount 10.1234 × 0.70000 = 7.08638 → 7.0864; electricity
  10.1234 × 0.30000 = 3.03702 → 3.0370; service 7.0864 − 3.0370 = 4.0494;
- peak 12:00-13:00: 15.3087 kWh; amount 15.3087 × 1.80000 = 27.55566 → 27.5557; electricity
  15.3087 × 1.00000 = 15.3087; service 27.5557 − 15.3087 = 12.2470;
- order: 25.4321 kWh, electricity 18.3457, service 16.2964, total 34.6421.
Occupation: 15 free minutes, 0.50000 yuan a minute; the gun unplugged 40 minutes after the end of
charging: 25 billable minutes × 0.50000 = 12.5000."""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import ChargeOrder, Member, WalletEntry
from app.services import clock
from tests.integration.gateway.conftest import fetch
from tests.member_api.station_support import (
    conforms,
    failed_order,
    make_member,
    make_station,
    operator_ids,
    settled_order,
)
from tests.member_api.support import headers_for

API = "/api/app/v1"
START = datetime(2026, 11, 20, 3, 0)           # 11:00 Beijing time
READINGS = [(0, "0.0000"), (60, "10.1234"), (120, "25.4321")]


@pytest.fixture(scope="module")
def history(app):
    from app.security.scope import platform_scope
    from app.services import occupancy

    op_a, op_b = operator_ids(app)
    a = make_station(app, op_a, lng="95.000000", lat="35.000000", piles=(1,), occupancy=True)
    b = make_station(app, op_b, lng="95.000000", lat="35.100000", piles=(1,))
    gun_a, gun_b = a["piles"][0]["guns"][0], b["piles"][0]["guns"][0]
    member, neighbour, member_b = (make_member(app, op_a, Decimal("200")), make_member(app, op_a, Decimal("50")),
                                   make_member(app, op_b, Decimal("200")))
    charged = settled_order(app, gun_a, member, START, READINGS, "34.6421")
    failed = failed_order(app, gun_a, member)
    other = settled_order(app, gun_b, member_b, START, READINGS, "34.6421")
    with app.app_context(), platform_scope("test-member-occupancy"):
        from app.extensions import get_redis

        # a connector id SQLite handed out again after an earlier test deleted its row may still have
        # live plug state in Redis from that gun
        get_redis().delete(occupancy.state_key(gun_a), occupancy.seen_key(gun_a))
        order = db.session.get(ChargeOrder, charged)
        ended = order.ended_at
        assert occupancy.on_session_finished(order) is True
        occupied = occupancy.on_connector_state(gun_a, plugged=False, parked=None,
                                                at_utc=ended + timedelta(minutes=40))
        assert occupied is not None
        occupancy_id = occupied.id
    return {"member": member, "neighbour": neighbour, "member_b": member_b, "charged": charged, "failed": failed,
            "other": other, "occupancy": occupancy_id, "gun_a": gun_a}


def get(client, app, member, path, **query):
    """GET ``path`` as ``member``; the answer is checked against the OpenAPI document."""
    rv = client.get(API + path, query_string=query, headers=headers_for(app, member))
    documented = path
    for prefix in ("/orders/", "/occupancy-orders/"):
        if path.startswith(prefix):
            documented = prefix + ("{order_id}" if prefix == "/orders/" else "{occupancy_id}")
    conforms(app, rv, "get", documented)
    return rv


def test_every_endpoint_needs_a_token(client):
    for path in ("/orders", "/orders/1", "/occupancy-orders", "/occupancy-orders/1"):
        rv = client.get(API + path)
        assert rv.status_code == 401 and rv.get_json()["code"] == "token_missing", path


def test_my_orders_newest_first_with_filters(app, client, history):
    member = history["member"]
    body = get(client, app, member, "/orders").get_json()
    assert body["total"] == 2 and [o["id"] for o in body["items"]] == [history["failed"], history["charged"]]
    failed, charged = body["items"]
    assert (failed["status"], failed["status_label"], failed["failure_reason"]) == ("failed", "失败", "充电枪未插好")
    assert (charged["status"], charged["status_label"], charged["total_amount"]) == ("settled", "已结算", "34.6421")
    assert charged["started_at"] == "2026-11-20T03:00:00Z" and charged["started_local"] == "2026-11-20 11:00:00"
    assert charged["ended_local"] == "2026-11-20 13:00:00" and charged["duration_seconds"] == 7200
    assert (charged["start_method"], charged["start_method_label"]) == ("app", "app远程启动")
    settled = get(client, app, member, "/orders", status="settled").get_json()
    assert [o["id"] for o in settled["items"]] == [history["charged"]]
    page2 = get(client, app, member, "/orders", page=2, page_size=1).get_json()
    assert page2["total"] == 2 and [o["id"] for o in page2["items"]] == [history["charged"]]
    today = clock.local_today()
    assert get(client, app, member, "/orders", date_from=today.isoformat(), date_to=today.isoformat()
               ).get_json()["total"] == 2
    yesterday = (today - timedelta(days=1)).isoformat()
    assert get(client, app, member, "/orders", date_to=yesterday).get_json() == {
        "items": [], "total": 0, "page": 1, "page_size": 20}
    # the other members see only their own
    assert get(client, app, history["neighbour"], "/orders").get_json()["total"] == 0
    assert [o["id"] for o in get(client, app, history["member_b"], "/orders").get_json()["items"]] == [history["other"]]


@pytest.mark.parametrize("query", [{"status": "done"}, {"date_from": "2026-13-01"}, {"page": "x"},
                                   {"date_from": "2026-11-02", "date_to": "2026-11-01"}, {"member_id": "1"}])
def test_order_list_refuses_bad_filters(app, client, history, query):
    for path in ("/orders", "/occupancy-orders"):
        rv = get(client, app, history["member"], path, **query)
        assert rv.status_code == 400 and rv.get_json()["code"] == "invalid_request", (path, query)


def test_order_detail_has_the_period_breakdown(app, client, history):
    rv = get(client, app, history["member"], f"/orders/{history['charged']}")
    assert rv.status_code == 200, rv.get_json()
    body = rv.get_json()
    assert (body["energy"], body["electricity_fee"], body["service_fee"], body["total_amount"]) == (
        "25.4321", "18.3457", "16.2964", "34.6421")
    valley, peak = body["periods"]
    assert valley == {
        "seq": valley["seq"], "start_at": "2026-11-20T03:00:00Z", "end_at": "2026-11-20T04:00:00Z",
        "start_local": "2026-11-20 11:00:00", "end_local": "2026-11-20 12:00:00", "level": "valley",
        "level_label": "谷", "energy": "10.1234", "electricity_price": "0.30000", "service_price": "0.40000",
        "electricity_fee": "3.0370", "service_fee": "4.0494", "amount": "7.0864",
        "discount_electricity": valley["discount_electricity"], "discount_service": valley["discount_service"]}
    assert (peak["start_local"], peak["end_local"], peak["level_label"]) == ("2026-11-20 12:00:00",
                                                                              "2026-11-20 13:00:00", "峰")
    assert (peak["energy"], peak["electricity_price"], peak["service_price"]) == ("15.3087", "1.00000", "0.80000")
    assert (peak["electricity_fee"], peak["service_fee"], peak["amount"]) == ("15.3087", "12.2470", "27.5557")
    assert valley["seq"] < peak["seq"]
    # the periods add up to the order; discounts (a campaign of the operator, if one ran) too
    periods = body["periods"]
    assert sum(Decimal(p["amount"]) for p in periods) == Decimal(body["total_amount"])
    for key in ("discount_electricity", "discount_service"):
        assert sum(Decimal(p[key]) for p in periods) == Decimal(body[key])
    assert Decimal(body["discount_total"]) == Decimal(body["discount_electricity"]) + Decimal(body["discount_service"])
    assert Decimal(body["payable_amount"]) == Decimal("34.6421") - Decimal(body["discount_total"])
    assert body["paid_amount"] == body["payable_amount"] and body["pay_status"] == "paid"
    assert body["pay_status_label"] == "已支付" and body["refunded_amount"] == "0.0000"
    debit = fetch(app, select(WalletEntry.amount).where(WalletEntry.order_id == history["charged"]))
    assert [d[0] for d in debit] == [-Decimal(body["payable_amount"])]


def test_an_order_of_someone_else_is_not_found(app, client, history):
    for member, order_id in ((history["member_b"], history["charged"]), (history["neighbour"], history["charged"]),
                             (history["member"], history["other"]), (history["member"], 99999999),
                             (history["member"], 2**31 - 1)):
        rv = get(client, app, member, f"/orders/{order_id}")
        assert rv.status_code == 404 and rv.get_json() == {"code": "not_found", "message": "未找到"}


def test_my_occupancy_orders(app, client, history):
    body = get(client, app, history["member"], "/occupancy-orders").get_json()
    assert body["total"] == 1
    [occ] = body["items"]
    with app.app_context():
        order_no = db.session.get(ChargeOrder, history["charged"]).order_no
    assert occ["id"] == history["occupancy"] and occ["charge_order_id"] == history["charged"]
    assert occ["charge_order_no"] == order_no and occ["connector_id"] == history["gun_a"]
    assert (occ["duration_minutes"], occ["free_minutes"], occ["price"], occ["unit"], occ["unit_label"]) == (
        40, 15, "0.50000", "minute", "按分钟")
    assert (occ["amount"], occ["paid_amount"], occ["cap"]) == ("12.5000", "12.5000", None)
    assert (occ["status"], occ["status_label"], occ["pay_status"]) == ("settled", "已结算", "paid")
    assert occ["started_at"] == "2026-11-20T05:00:00Z" and occ["ended_local"] == "2026-11-20 13:40:00"
    detail = get(client, app, history["member"], f"/occupancy-orders/{history['occupancy']}")
    assert detail.status_code == 200 and detail.get_json() == occ
    assert get(client, app, history["member"], "/occupancy-orders", status="waived").get_json()["total"] == 0
    assert get(client, app, history["member"], "/occupancy-orders", date_from="2026-11-20",
               date_to="2026-11-20").get_json()["total"] == 1
    assert get(client, app, history["member"], "/occupancy-orders", date_from="2026-11-21").get_json()["total"] == 0
    # the wallet paid the charge and the occupation, nothing else
    with app.app_context():
        balance = db.session.get(Member, history["member"]).balance
        payable = db.session.get(ChargeOrder, history["charged"]).payable_amount
    assert balance == Decimal("200") - payable - Decimal("12.5000")


def test_an_occupancy_order_of_someone_else_is_not_found(app, client, history):
    for member, path in ((history["member_b"], f"/occupancy-orders/{history['occupancy']}"),
                         (history["neighbour"], f"/occupancy-orders/{history['occupancy']}"),
                         (history["member"], "/occupancy-orders/99999999")):
        rv = get(client, app, member, path)
        assert rv.status_code == 404 and rv.get_json()["code"] == "not_found"
    assert get(client, app, history["member_b"], "/occupancy-orders").get_json()["total"] == 0
