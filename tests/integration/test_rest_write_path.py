"""One write path (issue 9 §1): every REST write runs the service command its admin screen runs,
with the same outcome and the same messages.

Each test writes a resource over REST (JWT) and the same through the admin form, and compares:
a pile gets its guns with their codes, a connector its generated code, a template's periods the
same validation messages, members and cards the same rules. The last test changes a station's
template over REST and the new billing model (0x58) reaches a pile connected over TCP to a real
gateway process."""
from __future__ import annotations

import html as html_lib
import json
import re
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.extensions import db, get_redis
from app.models import Card, Connector, Member, Operator, Organization, Partner, Pile, PriceTemplate, Station
from app.services.ykc_pricing import assign_model_id
from tests.conftest import ADMIN_PASSWORD, api_token
from tests.integration.gateway.conftest import GatewayProcess
from tests.integration.gateway.ykc_client import PileClient

TOU = [("00:00", "08:00", "valley", "0.31", "0.5"), ("08:00", "12:00", "flat", "0.62", "0.6"),
       ("12:00", "17:00", "peak", "1.05", "0.7"), ("17:00", "24:00", "sharp", "1.25", "0.8")]
BAD = [("00:00", "08:00", "valley", "0.3", "0.5"), ("09:00", "13:00", "flat", "0.6", "0.6"),
       ("12:00", "23:00", "peak", "1.0", "0.7")]


def rows(periods):
    return [{"start": s, "end": e, "level": lv, "electricity_price": ep, "service_price": sp}
            for s, e, lv, ep, sp in periods]


def uniq(n=8, digits=False):
    raw = str(uuid.uuid4().int) if digits else uuid.uuid4().hex.upper()
    return raw[:n]


def page_text(rv):
    return html_lib.unescape(rv.get_data(as_text=True))


@pytest.fixture(scope="module")
def api(app):
    """A JWT client of the platform admin. REST has no session: it answers in the default
    language (zh), so the admin below reads Chinese too and the messages compare one to one."""
    headers = api_token(app, "admin", ADMIN_PASSWORD)
    client = app.test_client()

    class Api:
        def post(self, resource, body):
            return client.post(f"/api/v1/{resource}/", json=body, headers=headers)

        def put(self, resource, pk, body):
            return client.put(f"/api/v1/{resource}/{pk}", json=body, headers=headers)

        def get(self, resource, pk):
            return client.get(f"/api/v1/{resource}/{pk}", headers=headers)

    return Api()


@pytest.fixture
def admin_zh(login):
    return login("admin", ADMIN_PASSWORD, lang="zh")


@pytest.fixture(scope="module")
def op_a(app):
    with app.app_context():
        return db.session.scalar(select(Operator.id).where(Operator.code == "MA1NJ0001"))


@pytest.fixture(scope="module")
def station_a(app, op_a):
    with app.app_context():
        return db.session.scalar(select(Station.id).where(Station.operator_id == op_a).order_by(Station.id))


def count(app, model, *where):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def pile_shape(app, pile_id):
    """What the pile rules produce, independent of the generated code."""
    with app.app_context():
        pile = db.session.get(Pile, pile_id)
        guns = [(c.gun_no, c.code[:14] == pile.code, c.code[14:], c.name.endswith(f" {c.gun_no}#"),
                 c.interface_type, Decimal(c.power_kw), c.operator_id, c.station_id)
                for c in sorted(pile.connectors, key=lambda c: c.gun_no)]
        return {"code_ok": bool(re.fullmatch(r"\d{14}", pile.code)), "operator_id": pile.operator_id,
                "station_id": pile.station_id, "gun_count": pile.gun_count, "guns": guns}


# ----- piles and connectors -----------------------------------------------------------------------
def test_rest_pile_gets_its_guns_with_codes_like_the_admin(app, api, admin_zh, station_a):
    """The issue's reproduction: POST /api/v1/pile/ used to create a pile with no guns."""
    rv = api.post("pile", {"name": "接口桩", "station": station_a, "pile_type": "dc", "protocol": "ykc15",
                           "power_kw": "120", "gun_count": 2})
    assert rv.status_code == 201, rv.get_json()
    rest_id = rv.get_json()["id"]
    rv = admin_zh.post("/pileview/add", data={"station": str(station_a), "name": "后台桩", "pile_type": "dc",
                                              "protocol": "ykc15", "power_kw": "120", "gun_count": "2",
                                              "enabled": "y"})
    assert rv.status_code == 302, page_text(rv)[:800]
    with app.app_context():
        admin_id = db.session.scalar(select(Pile.id).where(Pile.name == "后台桩"))
        station_operator = db.session.get(Station, station_a).operator_id
    rest, admin = pile_shape(app, rest_id), pile_shape(app, admin_id)
    assert rest == admin
    assert rest["code_ok"] and rest["operator_id"] == station_operator and rest["station_id"] == station_a
    assert rest["guns"] == [(1, True, "01", True, "dc_gun", Decimal("60"), station_operator, station_a),
                            (2, True, "02", True, "dc_gun", Decimal("60"), station_operator, station_a)]
    shown = api.get("pile", rest_id).get_json()["result"]
    assert shown["gun_count"] == 2 and shown["operator_id"] == station_operator


def test_rest_pile_rules_refuse_with_the_admin_messages(app, api, admin_zh, station_a):
    before = count(app, Pile)
    rv = api.post("pile", {"name": "坏编号桩", "station": station_a, "code": "123", "gun_count": 1})
    assert rv.status_code == 422, rv.get_json()
    message = rv.get_json()["message"]["code"]
    # the admin form refuses the same code with the same words
    rv = admin_zh.post("/pileview/add", data={"station": str(station_a), "name": "坏编号桩", "code": "123",
                                              "gun_count": "1", "pile_type": "dc", "protocol": "ykc15"})
    assert message in page_text(rv)
    rv = api.post("pile", {"name": "无枪桩", "station": station_a, "gun_count": 0})
    assert rv.status_code == 422 and "gun_count" in rv.get_json()["message"], rv.get_json()
    assert count(app, Pile) == before


def test_rest_pile_update_moves_its_guns_along(app, api, op_a):
    with app.app_context():
        stations = list(db.session.scalars(select(Station.id).where(Station.operator_id == op_a)
                                           .order_by(Station.id).limit(2)))
    rv = api.post("pile", {"name": "搬迁桩", "station": stations[0], "gun_count": 2, "pile_type": "ac",
                           "protocol": "ykc15"})
    assert rv.status_code == 201, rv.get_json()
    pk = rv.get_json()["id"]
    new_code = uniq(14, digits=True)
    rv = api.put("pile", pk, {"station": stations[1], "code": new_code})
    assert rv.status_code == 200, rv.get_json()
    with app.app_context():
        pile = db.session.get(Pile, pk)
        assert pile.code == new_code
        assert [(c.code, c.station_id, c.interface_type) for c in sorted(pile.connectors, key=lambda c: c.gun_no)] == [
            (f"{new_code}01", stations[1], "ac_socket"), (f"{new_code}02", stations[1], "ac_socket")]


def test_deleting_a_connector_drops_its_live_plug_and_occupation_state(app, api, admin_zh, station_a):
    """A connector's plug/occupation state lives in Redis under its id; deleted (REST, admin, or with its
    pile) it goes too, so a new connector given the same id (SQLite reuses ids) starts clean."""
    from app.services import occupancy

    rv = api.post("pile", {"name": "删枪桩", "station": station_a, "gun_count": 2, "pile_type": "dc",
                           "protocol": "ykc15", "power_kw": "60"})
    assert rv.status_code == 201, rv.get_json()
    pile_id = rv.get_json()["id"]
    with app.app_context():
        guns = sorted(db.session.scalars(select(Connector.id).where(Connector.pile_id == pile_id)))
        redis = get_redis()
        for gun in guns:
            redis.hset(occupancy.seen_key(gun), mapping={"plugged": "1", "at": "2026-01-01T00:00:00"})
            redis.hset(occupancy.state_key(gun), mapping={"charge_order_id": "1", "plugged": "1"})
            redis.sadd(occupancy.PENDING_KEY, str(gun))

    def state(gun):
        with app.app_context():
            redis = get_redis()
            return (redis.exists(occupancy.seen_key(gun), occupancy.state_key(gun)),
                    redis.sismember(occupancy.PENDING_KEY, str(gun)))

    headers = api_token(app, "admin", ADMIN_PASSWORD)
    rv = app.test_client().delete(f"/api/v1/connector/{guns[0]}", headers=headers)
    assert rv.status_code == 200, rv.get_json()
    assert state(guns[0]) == (0, False)
    assert state(guns[1]) == (2, True)                  # the other gun keeps its state
    rv = admin_zh.post(f"/pileview/delete/{pile_id}", follow_redirects=True)
    assert rv.status_code == 200
    assert count(app, Pile, Pile.id == pile_id) == 0
    assert state(guns[1]) == (0, False)                 # deleted with its pile


def test_rest_connector_code_is_generated_like_the_admin(app, api, admin_zh, station_a):
    """The issue's reproduction: POST /api/v1/connector/ answered 500 (code is NOT NULL)."""
    rv = api.post("pile", {"name": "加枪桩", "station": station_a, "gun_count": 1, "pile_type": "dc",
                           "protocol": "ykc15", "power_kw": "60"})
    pile_id = rv.get_json()["id"]
    rv = api.post("connector", {"pile": pile_id, "gun_no": 2, "interface_type": "dc_gun"})
    assert rv.status_code == 201, rv.get_json()
    rest_id = rv.get_json()["id"]
    rv = admin_zh.post("/connectorview/add", data={"pile": str(pile_id), "gun_no": "3", "interface_type": "dc_gun",
                                                   "national_standard": "2015", "name": "加枪桩 3#",
                                                   "enabled": "y"})
    assert rv.status_code == 302, re.findall(r'(?:help-block|alert)[^>]*>\s*([^<]+)', page_text(rv))
    with app.app_context():
        pile = db.session.get(Pile, pile_id)
        by_gun = {c.gun_no: c for c in pile.connectors}
        assert by_gun[2].id == rest_id
        for gun in (2, 3):
            conn = by_gun[gun]
            assert conn.code == f"{pile.code}{gun:02d}"
            assert (conn.operator_id, conn.station_id, conn.name) == (pile.operator_id, pile.station_id,
                                                                      f"加枪桩 {gun}#")
    # a gun number taken on the pile: the same refusal from both
    before = count(app, Connector)
    rv = api.post("connector", {"pile": pile_id, "gun_no": 3})
    assert rv.status_code == 422, rv.get_json()
    message = rv.get_json()["message"]["gun_no"]
    rv = admin_zh.post("/connectorview/add", data={"pile": str(pile_id), "gun_no": "3", "name": "重复枪",
                                                   "interface_type": "dc_gun", "national_standard": "2015"},
                      follow_redirects=True)
    assert message in page_text(rv)
    rv = api.post("connector", {"pile": pile_id, "gun_no": 0})
    assert rv.status_code == 422 and "gun_no" in rv.get_json()["message"]
    assert count(app, Connector) == before
    # an update keeps the generated code
    rv = api.put("connector", rest_id, {"name": "改名枪"})
    assert rv.status_code == 200, rv.get_json()
    with app.app_context():
        conn = db.session.get(Connector, rest_id)
        assert (conn.name, conn.code) == ("改名枪", f"{pile.code}02")


# ----- stations -----------------------------------------------------------------------------------
def test_rest_station_rules(app, api, admin_zh, op_a):
    body = {"name": f"接口站{uniq(4)}", "address": "南京市接口路1号", "operator": op_a, "lng": "118.7",
            "lat": "32.0"}
    rv = api.post("station", body)
    assert rv.status_code == 201, rv.get_json()
    with app.app_context():
        assert re.fullmatch(r"\d{6}", db.session.get(Station, rv.get_json()["id"]).code)
    before = count(app, Station)
    rv = api.post("station", dict(body, name="坐标外站", lng="200"))
    assert rv.status_code == 422, rv.get_json()
    message = rv.get_json()["message"]["lng"]
    rv = admin_zh.post("/stationview/add", data={"name": "坐标外站", "address": "x", "operator": str(op_a),
                                                 "lng": "200", "lat": "32.0", "station_type": "public",
                                                 "status": "normal"})
    assert message in page_text(rv)
    assert count(app, Station) == before


# ----- price templates ------------------------------------------------------------------------------
def test_rest_template_periods_saved_and_validated_like_the_admin(app, api, admin_zh, op_a):
    code = f"R{uniq(7)}"
    rv = api.post("pricetemplate", {"code": code, "name": "接口模板", "operator": op_a, "periods": rows(TOU)})
    assert rv.status_code == 201, rv.get_json()
    pk = rv.get_json()["id"]
    with app.app_context():
        tpl = db.session.get(PriceTemplate, pk)
        assert [(p.start_minute, p.end_minute, p.level, p.electricity_price, p.service_price)
                for p in tpl.periods] == [(0, 480, "valley", Decimal("0.31"), Decimal("0.5")),
                                          (480, 720, "flat", Decimal("0.62"), Decimal("0.6")),
                                          (720, 1020, "peak", Decimal("1.05"), Decimal("0.7")),
                                          (1020, 1440, "sharp", Decimal("1.25"), Decimal("0.8"))]
        assert tpl.version == 1

    # gap, overlap and a short day: 422 with each message, and the admin shows the same messages
    before = count(app, PriceTemplate)
    rv = api.post("pricetemplate", {"code": f"R{uniq(7)}", "name": "坏模板", "operator": op_a, "periods": rows(BAD)})
    assert rv.status_code == 422, rv.get_json()
    messages = rv.get_json()["message"]["periods"]
    assert len(messages) == 3, messages
    page = page_text(admin_zh.post("/pricetemplateview/add", data={
        "code": f"A{uniq(7)}", "name": "坏模板", "operator": str(op_a), "enabled": "y",
        "periods_editor": json.dumps(rows(BAD))}))
    for message in messages:
        assert message in page, message
    assert "08:00" in messages[0] + messages[1] + messages[2]
    # no periods at all: the admin's "add at least one period"
    rv = api.post("pricetemplate", {"code": f"R{uniq(7)}", "name": "空模板", "operator": op_a})
    assert rv.status_code == 422, rv.get_json()
    empty = rv.get_json()["message"]["periods"]
    page = page_text(admin_zh.post("/pricetemplateview/add", data={
        "code": f"A{uniq(7)}", "name": "空模板", "operator": str(op_a), "enabled": "y", "periods_editor": "[]"}))
    assert empty[0] in page
    assert count(app, PriceTemplate) == before

    # an update with periods replaces them (new version); without them keeps them
    cheaper = [(s, e, lv, ep, "0.3") for s, e, lv, ep, _ in TOU]
    rv = api.put("pricetemplate", pk, {"periods": rows(cheaper)})
    assert rv.status_code == 200, rv.get_json()
    rv = api.put("pricetemplate", pk, {"name": "接口模板改名"})
    assert rv.status_code == 200, rv.get_json()
    with app.app_context():
        tpl = db.session.get(PriceTemplate, pk)
        assert tpl.name == "接口模板改名" and tpl.version == 2
        assert [p.service_price for p in tpl.periods] == [Decimal("0.3")] * 4
    rv = api.put("pricetemplate", pk, {"periods": rows(BAD)})
    assert rv.status_code == 422 and rv.get_json()["message"]["periods"] == messages
    with app.app_context():
        assert db.session.get(PriceTemplate, pk).version == 2


def test_rest_template_of_ykc_piles_gets_the_ykc_rules(app, api, admin_zh, op_a):
    rv = api.post("pricetemplate", {"code": f"R{uniq(7)}", "name": "接口YKC模板", "operator": op_a,
                                    "periods": rows(TOU)})
    pk = rv.get_json()["id"]
    rv = api.post("station", {"name": f"YKC站{uniq(4)}", "address": "南京", "operator": op_a, "lng": "118.7",
                              "lat": "32.0", "price_template": pk})
    assert rv.status_code == 201, rv.get_json()
    rv = api.post("pile", {"name": "YKC桩", "station": rv.get_json()["id"], "protocol": "ykc15", "gun_count": 1})
    assert rv.status_code == 201, rv.get_json()
    five = TOU[:3] + [("17:00", "20:00", "sharp", "1.25", "0.8"), ("20:00", "24:00", "flat", "0.7", "0.6")]
    rv = api.put("pricetemplate", pk, {"periods": rows(five)})
    assert rv.status_code == 422, rv.get_json()
    (message,) = rv.get_json()["message"]["periods"]
    with app.app_context():
        tpl = db.session.get(PriceTemplate, pk)
        form = {"code": tpl.code, "name": tpl.name, "operator": str(op_a), "enabled": "y",
                "periods_editor": json.dumps(rows(five))}
    assert message in page_text(admin_zh.post(f"/pricetemplateview/edit/{pk}", data=form))
    with app.app_context():
        assert db.session.get(PriceTemplate, pk).version == 1


# ----- members and cards ------------------------------------------------------------------------------
def test_rest_member_rules_like_the_admin(app, api, admin_zh, op_a):
    rv = api.post("member", {"member_no": f"RM{uniq(10, digits=True)}", "phone": "12345", "operator": op_a})
    assert rv.status_code == 422, rv.get_json()
    phone_message = rv.get_json()["message"]["phone"]
    rv = api.post("member", {"member_no": f"RM{uniq(10, digits=True)}", "phone": "13912345678", "operator": op_a})
    assert rv.status_code == 201, rv.get_json()
    pk = rv.get_json()["id"]
    rv = api.put("member", pk, {"vin": "LSVAM4187C2I84847"})  # an I is no VIN character
    assert rv.status_code == 422, rv.get_json()
    vin_message = rv.get_json()["message"]["vin"]
    page = page_text(admin_zh.post(f"/memberview/edit/{pk}", data={"phone": "12345", "status": "active",
                                                                    "vin": "LSVAM4187C2I84847"}))
    assert phone_message in page and vin_message in page
    rv = api.put("member", pk, {"vin": "LSVAM4187C2184847", "plate_no": " 苏A12345 ", "phone": ""})
    assert rv.status_code == 200, rv.get_json()
    with app.app_context():
        member = db.session.get(Member, pk)
        assert (member.vin, member.plate_no, member.phone, member.balance) == (
            "LSVAM4187C2184847", "苏A12345", None, 0)


def test_rest_card_rules_like_the_admin(app, api, admin_zh, op_a):
    with app.app_context():
        org = db.session.scalar(select(Organization.id).where(Organization.operator_id == op_a)
                                .order_by(Organization.id))
    rv = api.post("member", {"member_no": f"RC{uniq(10, digits=True)}", "operator": op_a, "organization": org})
    member_id = rv.get_json()["id"]
    physical = uniq(16).lower()
    rv = api.post("card", {"logical_no": uniq(16, digits=True), "physical_no": physical, "member": member_id,
                           "operator": op_a})
    assert rv.status_code == 201, rv.get_json()
    with app.app_context():
        card = db.session.get(Card, rv.get_json()["id"])
        # the number is normalised, the member's organization is the card's (as in the admin)
        assert (card.physical_no, card.organization_id) == (physical.upper(), org)
        logical = card.logical_no
    before = count(app, Card)
    rv = api.post("card", {"logical_no": "123", "physical_no": uniq(16), "operator": op_a})
    assert rv.status_code == 422, rv.get_json()
    format_message = rv.get_json()["message"]["logical_no"]
    rv = api.post("card", {"logical_no": logical, "physical_no": physical, "operator": op_a})
    assert rv.status_code == 422, rv.get_json()
    taken = rv.get_json()["message"]
    assert taken["logical_no"] == taken["physical_no"]
    page = page_text(admin_zh.post("/cardview/add", data={"logical_no": "123", "physical_no": physical,
                                                          "card_type": "online", "status": "active",
                                                          "operator": str(op_a)}))
    assert format_message in page and taken["physical_no"] in page
    assert count(app, Card) == before


# ----- partners and orders -----------------------------------------------------------------------
def test_rest_partner_and_order_writes(app, api, op_a):
    keys = {f: "K" * 16 for f in ("operator_secret", "data_secret", "data_secret_iv", "sig_secret",
                                   "our_operator_secret", "our_data_secret", "our_data_secret_iv", "our_sig_secret")}
    body = dict(keys, name="接口伙伴", partner_operator_code=uniq(9), our_operator_code="MA1NJ0001", operator=op_a)
    rv = api.post("partner", dict(body, ip_allowlist="10.0.0.1, 10.0.0.0/8"))
    assert rv.status_code == 201, rv.get_json()
    pk = rv.get_json()["id"]
    with app.app_context():
        assert db.session.get(Partner, pk).ip_allowlist == "10.0.0.1\n10.0.0.0/8"  # normalised
    rv = api.put("partner", pk, {"ip_allowlist": "not-an-ip", "our_operator_code": "short"})
    assert rv.status_code == 422 and set(rv.get_json()["message"]) == {"ip_allowlist", "our_operator_code"}
    # orders are the platform's: read-only over REST
    assert api.post("order", {"order_no": "X"}).status_code in (404, 405)


# ----- the price push over REST ----------------------------------------------------------------------
def test_station_template_changed_over_rest_pushes_the_new_price_to_the_pile(app, api, op_a):
    """The issue's reproduction: a station's template changed over REST never pushed the price."""
    first = api.post("pricetemplate", {"code": f"P{uniq(7)}", "name": "推送模板一", "operator": op_a,
                                       "periods": rows(TOU)}).get_json()["id"]
    cheaper = [(s, e, lv, ep, "0.43" if lv == "valley" else sp) for s, e, lv, ep, sp in TOU]
    second = api.post("pricetemplate", {"code": f"P{uniq(7)}", "name": "推送模板二", "operator": op_a,
                                        "periods": rows(cheaper)}).get_json()["id"]
    rv = api.post("station", {"name": f"推送站{uniq(4)}", "address": "南京市推送路1号", "operator": op_a,
                              "lng": "118.7", "lat": "32.0", "price_template": first})
    assert rv.status_code == 201, rv.get_json()
    station_id = rv.get_json()["id"]
    rv = api.post("pile", {"name": "推送桩", "station": station_id, "protocol": "ykc15", "pile_type": "dc",
                           "power_kw": "60", "gun_count": 2})
    assert rv.status_code == 201, rv.get_json()
    with app.app_context():
        code = db.session.get(Pile, rv.get_json()["id"]).code
        redis = get_redis()
    gateway = GatewayProcess(app, "gw-rest-write", GATEWAY_COMMAND_TIMEOUT=3).wait_ready(redis)
    try:
        with PileClient(gateway.port, code) as pile:
            assert pile.login().result == 0
            # an edit that keeps the template pushes nothing
            assert api.put("station", station_id, {"name": "推送站改名"}).status_code == 200
            with pytest.raises(AssertionError):
                pile.expect(0x58, timeout=1.5)
            # another template: the pile gets its billing model
            rv = api.put("station", station_id, {"price_template": second})
            assert rv.status_code == 200, rv.get_json()
            _, model = pile.expect(0x58, timeout=10)
            with app.app_context():
                tpl = db.session.get(PriceTemplate, second)
                assert model.billing_model_id == assign_model_id(tpl.id, tpl.version)
            assert model.valley_service_rate == Decimal("0.43")
            assert model.valley_electricity_rate == Decimal("0.31") and model.peak_service_rate == Decimal("0.7")
            # new periods of that template over REST: pushed too
            dearer = [(s, e, lv, ep, "0.9" if lv == "sharp" else sp) for s, e, lv, ep, sp in cheaper]
            assert api.put("pricetemplate", second, {"periods": rows(dearer)}).status_code == 200
            _, model = pile.expect(0x58, timeout=10)
            assert model.sharp_service_rate == Decimal("0.9") and model.valley_service_rate == Decimal("0.43")
    finally:
        gateway.stop()
