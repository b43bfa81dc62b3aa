"""Member API: nearby stations, station detail (prices of today, live guns) and guns by QR code, as
members of two operators; live gun states written by a real gateway from a scripted pile over TCP."""
from __future__ import annotations

from decimal import Decimal

import pytest

from app.extensions import db
from app.gateway.ykc import RealtimeData
from app.services import clock
from tests.integration.gateway.conftest import wait_until
from tests.integration.gateway.ykc_client import PileClient
from tests.member_api.station_support import conforms, make_member, make_station, operator_ids
from tests.member_api.support import headers_for

API = "/api/app/v1"
HERE = (Decimal("87.600000"), Decimal("43.800000"))       # far from the demo stations (Nanjing)


@pytest.fixture(scope="module")
def world(app):
    """Operator A: A1 (here, piles of 2 and 1 guns), A2 (0.018° north), A3 (0.3° north, outside 10 km),
    a closed one beside A1; operator B: B1 0.0009° north of here. A member of each."""
    op_a, op_b = operator_ids(app)
    lng, lat = HERE
    w = {
        "a1": make_station(app, op_a, lng=lng, lat=lat, piles=(2, 1), name="会员站A1"),
        "a2": make_station(app, op_a, lng=lng, lat=lat + Decimal("0.018"), piles=(1,)),
        "a3": make_station(app, op_a, lng=lng, lat=lat + Decimal("0.3"), piles=(1,)),
        "closed": make_station(app, op_a, lng=lng + Decimal("0.0005"), lat=lat, status="closed", piles=(1,)),
        "b1": make_station(app, op_b, lng=lng, lat=lat + Decimal("0.0009"), piles=(2,)),
        "member_a": make_member(app, op_a), "member_b": make_member(app, op_b),
        "op_a": op_a, "op_b": op_b,
    }
    return w


VALLEY = {"start": "00:00", "end": "12:00", "level": "valley", "level_label": "谷", "electricity_price": "0.30000",
          "service_price": "0.40000", "price": "0.70000"}
PEAK = {"start": "12:00", "end": "24:00", "level": "peak", "level_label": "峰", "electricity_price": "1.00000",
        "service_price": "0.80000", "price": "1.80000"}


def expected_price_now():
    return {**(VALLEY if clock.local_now().hour < 12 else PEAK), "current": True}


def nearby(client, app, member_id, **params):
    query = {"lng": str(HERE[0]), "lat": str(HERE[1]), **params}
    return client.get(f"{API}/stations/nearby", query_string=query, headers=headers_for(app, member_id))


def test_every_endpoint_needs_a_token(client):
    for path in ("/stations/nearby?lng=1&lat=1", "/stations/1", "/guns/by-qr?content=1"):
        rv = client.get(API + path)
        assert rv.status_code == 401 and rv.get_json()["code"] == "token_missing", path


def test_nearby_lists_my_operators_open_stations_nearest_first(app, client, world):
    rv = nearby(client, app, world["member_a"])
    assert rv.status_code == 200, rv.get_json()
    body = conforms(app, rv, "get", "/stations/nearby")
    assert body["total"] == 2 and body["page"] == 1 and body["page_size"] == 20
    ids = [s["id"] for s in body["items"]]
    assert ids == [world["a1"]["id"], world["a2"]["id"]]     # not A3 (33 km), not the closed one, not B's
    first, second = body["items"]
    # 0.018° of latitude on a sphere of 6371.0088 km: 6371.0088 × 0.018 × π / 180 = 2.0015 km
    assert first["distance_km"] == "0.00" and second["distance_km"] == "2.00"
    assert first["name"] == "会员站A1" and first["address"].startswith("测试路")
    assert first["lng"] == "87.600000" and first["lat"] == "43.800000"
    assert first["status"] == "normal" and first["status_label"] == "正常使用"
    # no gateway holds these piles: every gun is offline, none free
    assert (first["total_guns"], first["free_guns"]) == (3, 0)
    assert (second["total_guns"], second["free_guns"]) == (1, 0)
    assert first["price_now"] == expected_price_now()


def test_nearby_radius_paging_and_the_other_operator(app, client, world):
    wide = nearby(client, app, world["member_a"], radius_km="40").get_json()
    assert [s["id"] for s in wide["items"]] == [world["a1"]["id"], world["a2"]["id"], world["a3"]["id"]]
    # 0.3° = 33.3585 km
    assert wide["items"][2]["distance_km"] == "33.36"
    page2 = nearby(client, app, world["member_a"], radius_km="40", page="2", page_size="1").get_json()
    assert page2["total"] == 3 and [s["id"] for s in page2["items"]] == [world["a2"]["id"]]
    assert nearby(client, app, world["member_a"], page="3").get_json()["items"] == []
    mine = nearby(client, app, world["member_b"]).get_json()
    assert [s["id"] for s in mine["items"]] == [world["b1"]["id"]]
    # 0.0009° = 0.1001 km
    assert mine["items"][0]["distance_km"] == "0.10" and mine["items"][0]["total_guns"] == 2


@pytest.mark.parametrize("params", [{"lng": None}, {"lat": "91"}, {"radius_km": "1000"}, {"radius_km": "x"},
                                    {"page": "0"}, {"page_size": "101"}, {"extra": "1"}])
def test_nearby_refuses_bad_input(app, client, world, params):
    query = {"lng": "87.6", "lat": "43.8", **params}
    query = {k: v for k, v in query.items() if v is not None}
    rv = client.get(f"{API}/stations/nearby", query_string=query, headers=headers_for(app, world["member_a"]))
    assert rv.status_code == 400
    body = conforms(app, rv, "get", "/stations/nearby")
    assert body["code"] == "invalid_request" and body["message"] == "请求参数有误" and body["fields"]


def test_station_detail_has_todays_prices_and_guns(app, client, world):
    a1 = world["a1"]
    rv = client.get(f"{API}/stations/{a1['id']}", headers=headers_for(app, world["member_a"]))
    assert rv.status_code == 200, rv.get_json()
    body = conforms(app, rv, "get", "/stations/{station_id}")
    assert body["id"] == a1["id"] and body["name"] == "会员站A1" and body["business_hours"] == "00:00-24:00"
    now = expected_price_now()
    assert body["prices_today"] == [{**VALLEY, "current": now["level"] == "valley"},
                                    {**PEAK, "current": now["level"] == "peak"}]
    assert body["price_now"] == now
    assert [g["id"] for g in body["guns"]] == a1["piles"][0]["guns"] + a1["piles"][1]["guns"]
    gun = body["guns"][0]
    assert gun["code"] == a1["piles"][0]["code"] + "01" and gun["gun_no"] == 1 and gun["name"] == "1号枪"
    assert gun["pile_code"] == a1["piles"][0]["code"] and gun["power_kw"] == "60.00"
    assert (gun["status"], gun["status_label"], gun["available"], gun["enabled"]) == ("offline", "离线", False, True)
    assert (body["total_guns"], body["free_guns"]) == (3, 0)
    assert body["services"] == [] and body["occupancy_enabled"] is False
    english = client.get(f"{API}/stations/{a1['id']}", headers=headers_for(app, world["member_a"], lang="en"))
    assert english.get_json()["guns"][0]["status_label"] == "Offline"


def test_station_of_another_operator_or_unknown_is_not_found(app, client, world):
    for member, station in ((world["member_b"], world["a1"]["id"]), (world["member_a"], world["b1"]["id"]),
                            (world["member_a"], 999999)):
        rv = client.get(f"{API}/stations/{station}", headers=headers_for(app, member))
        assert rv.status_code == 404 and rv.get_json() == {"code": "not_found", "message": "未找到"}
        conforms(app, rv, "get", "/stations/{station_id}")


def test_live_gun_status_comes_from_the_gateway(app, client, world, gateway):
    """A pile logs in to a real gateway and reports gun 1 idle and gun 2 faulty: the station shows it
    at once (the gateway's live state in Redis), and the nearby list counts one free gun."""
    station = make_station(app, world["op_a"], lng="100.000000", lat="30.000000", piles=(2,))
    code = station["piles"][0]["code"]
    headers = headers_for(app, world["member_a"])

    def guns():
        rv = client.get(f"{API}/stations/{station['id']}", headers=headers)
        return conforms(app, rv, "get", "/stations/{station_id}")["guns"]

    with PileClient(gateway.port, code) as pile:
        assert pile.login().result == 0
        pile.send(RealtimeData(transaction_serial="0" * 32, pile_code=code, gun="01", status=2))
        pile.send(RealtimeData(transaction_serial="0" * 32, pile_code=code, gun="02", status=1))
        wait_until(lambda: [g["status"] for g in guns()] == ["idle", "fault"], timeout=10,
                   message="gun 1 idle, gun 2 fault")
        one, two = guns()
        assert (one["status_label"], one["available"]) == ("空闲", True)
        assert (two["status_label"], two["available"]) == ("故障", False)
        assert one["updated_at"].endswith("Z")
        near = client.get(f"{API}/stations/nearby", query_string={"lng": "100", "lat": "30", "radius_km": "1"},
                          headers=headers).get_json()
        assert [(s["id"], s["free_guns"], s["total_guns"]) for s in near["items"]] == [(station["id"], 1, 2)]
    # the pile went away: offline again
    wait_until(lambda: [g["status"] for g in guns()] == ["offline", "offline"], timeout=10, message="offline")


@pytest.fixture(scope="module")
def qr_prefix(app, world):
    from app.models import Channel

    prefix = "https://mb.example/q?c="
    with app.app_context():
        db.session.add(Channel(operator_id=world["op_a"], code=f"MBQR{world['a1']['id']}", name="会员测试二维码渠道",
                               channel_type="mini_program", qr_prefix=prefix))
        db.session.commit()
    return prefix


def by_qr(client, app, member_id, content):
    return client.get(f"{API}/guns/by-qr", query_string={"content": content}, headers=headers_for(app, member_id))


def test_qr_code_of_a_gun_selects_it(app, client, world, qr_prefix):
    pile = world["a1"]["piles"][0]
    rv = by_qr(client, app, world["member_a"], f"{qr_prefix}{pile['code']}02")
    assert rv.status_code == 200, rv.get_json()
    body = conforms(app, rv, "get", "/guns/by-qr")
    assert body["selected_connector_id"] == pile["guns"][1]
    assert body["station"]["id"] == world["a1"]["id"] and body["station"]["total_guns"] == 3
    assert body["station"]["price_now"] == expected_price_now() and len(body["station"]["prices_today"]) == 2
    assert body["pile"]["code"] == pile["code"] and body["pile"]["gun_count"] == 2
    assert [g["id"] for g in body["guns"]] == pile["guns"]
    assert body["guns"][1]["status"] == "offline"


def test_qr_code_of_a_pile(app, client, world, qr_prefix):
    two, one = world["a1"]["piles"]
    # prefix + pile code of a two-gun pile: the member chooses
    body = by_qr(client, app, world["member_a"], f"{qr_prefix}{two['code']}").get_json()
    assert body["selected_connector_id"] is None and [g["id"] for g in body["guns"]] == two["guns"]
    # a bare pile code of a one-gun pile: its only gun
    body = by_qr(client, app, world["member_a"], one["code"]).get_json()
    assert body["selected_connector_id"] == one["guns"][0]


def test_qr_code_unknown_or_of_another_operator(app, client, world, qr_prefix):
    for member, content in ((world["member_a"], "https://elsewhere.example/x"),
                            (world["member_a"], f"{qr_prefix}99999999999999"),
                            (world["member_b"], f"{qr_prefix}{world['a1']['piles'][0]['code']}01"),
                            (world["member_b"], world["a1"]["piles"][0]["code"])):
        rv = by_qr(client, app, member, content)
        assert rv.status_code == 404
        conforms(app, rv, "get", "/guns/by-qr")
        assert rv.get_json() == {"code": "qr_not_recognized", "message": "该二维码不是本平台的充电枪"}
    rv = client.get(f"{API}/guns/by-qr", headers=headers_for(app, world["member_a"]))
    assert rv.status_code == 400 and "content" in rv.get_json()["fields"]
