"""Data scope: staff of operator A can neither read nor write operator B's stations, piles,
connectors, price templates or partners — through lists, show, edit, delete, list actions,
Excel export, dropdowns and REST; creating under operator B is refused; the admin sees both."""
import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from app.extensions import db
from app.models import Connector, Operator, Partner, Pile, PriceTemplate, Station
from tests.conftest import ADMIN_PASSWORD, api_token

STAFF = ("staff_a", "staff-pass-1")

# resource: (model, admin view route base, REST resource, label attribute shown in lists)
RESOURCES = {
    "station": (Station, "stationview", "station", "code"),
    "pile": (Pile, "pileview", "pile", "code"),
    "connector": (Connector, "connectorview", "connector", "code"),
    "pricetemplate": (PriceTemplate, "pricetemplateview", "pricetemplate", "code"),
    "partner": (Partner, "partnerview", "partner", "name"),
}


@pytest.fixture(scope="module")
def ops(app):
    with app.app_context():
        a = db.session.scalar(select(Operator).where(Operator.code == "MA1NJ0001"))
        b = db.session.scalar(select(Operator).where(Operator.code == "MA1NJ0002"))
        return a.id, b.id


def pick(app, model, operator_id):
    with app.app_context():
        item = db.session.scalar(select(model).where(model.operator_id == operator_id).order_by(model.id))
        return item.id, getattr(item, "code", None) or item.name


def count(app, model):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def staff(login):
    return login(*STAFF)


@pytest.mark.parametrize("name", RESOURCES)
def test_lists_and_exports_hide_operator_b(app, staff, ops, name):
    model, view, _, attr = RESOURCES[name]
    a_id, a_label = pick(app, model, ops[0])
    b_id, b_label = pick(app, model, ops[1])
    rv = staff.get(f"/{view}/list/")
    assert rv.status_code == 200
    html = rv.get_data(as_text=True)
    assert b_label not in html
    rv = staff.get(f"/{view}/export/")
    assert rv.status_code == 200
    wb = load_workbook(io.BytesIO(rv.data), read_only=True)
    cells = {str(c) for row in wb.active.iter_rows(values_only=True) for c in row if c is not None}
    assert b_label not in cells
    assert a_label in cells


@pytest.mark.parametrize("name", RESOURCES)
def test_show_edit_delete_of_operator_b_are_refused(app, staff, ops, name):
    model, view, _, _ = RESOURCES[name]
    b_id, _ = pick(app, model, ops[1])
    assert staff.get(f"/{view}/show/{b_id}").status_code == 404
    assert staff.get(f"/{view}/edit/{b_id}").status_code == 404
    assert staff.post(f"/{view}/edit/{b_id}", data={"name": "hacked"}).status_code == 404
    before = count(app, model)
    assert staff.post(f"/{view}/delete/{b_id}").status_code == 404
    assert count(app, model) == before


@pytest.mark.parametrize("name", RESOURCES)
def test_list_action_on_operator_b_does_nothing(app, staff, ops, name):
    model, view, _, _ = RESOURCES[name]
    b_id, _ = pick(app, model, ops[1])
    before = count(app, model)
    staff.post(f"/{view}/action_post", data={"action": "muldelete", "rowid": [str(b_id)]})
    staff.get(f"/{view}/action/muldelete/{b_id}")
    assert count(app, model) == before
    with app.app_context():
        assert db.session.get(model, b_id) is not None


def option_values(html, field):
    import re

    m = re.search(rf'<select[^>]*name="{field}"[^>]*>(.*?)</select>', html, re.S)
    assert m, f"no select {field}"
    return set(re.findall(r'<option[^>]*value="([^"]*)"', m.group(1))) - {"", "__None"}


def test_dropdowns_offer_only_own_operator(app, staff, ops):
    with app.app_context():
        a_stations = {str(i) for i in db.session.scalars(select(Station.id).where(Station.operator_id == ops[0]))}
        a_piles = {str(i) for i in db.session.scalars(select(Pile.id).where(Pile.operator_id == ops[0]))}
        a_tpls = {str(i) for i in db.session.scalars(
            select(PriceTemplate.id).where(PriceTemplate.operator_id == ops[0]))}
    html = staff.get("/pileview/add").get_data(as_text=True)
    assert option_values(html, "station") == a_stations
    html = staff.get("/connectorview/add").get_data(as_text=True)
    assert option_values(html, "pile") == a_piles
    html = staff.get("/stationview/add").get_data(as_text=True)
    assert option_values(html, "operator") == {str(ops[0])}
    assert option_values(html, "price_template") == a_tpls
    html = staff.get("/pricetemplateview/add").get_data(as_text=True)
    assert option_values(html, "operator") == {str(ops[0])}
    html = staff.get("/partnerview/add").get_data(as_text=True)
    assert option_values(html, "operator") == {str(ops[0])}
    info = app.test_client().get("/api/v1/pile/_info", headers=api_token(app, *STAFF)).get_json()
    station_ids = {str(v["id"]) for v in info["add_columns"][[c["name"] for c in info["add_columns"]].index(
        "station")]["values"]}
    assert station_ids == a_stations


def station_form(operator_id, name):
    return {"name": name, "station_type": "public", "status": "normal", "site_type": "residential",
            "ownership": "self", "operator": str(operator_id), "address": "江苏省南京市测试路1号",
            "lng": "118.700000", "lat": "32.000000", "park_nums": "4", "occupancy_free_minutes": "0",
            "occupancy_price": "0", "occupancy_unit": "minute"}


def test_creating_under_operator_b_is_refused_in_the_admin(app, staff, ops):
    before = count(app, Station)
    staff.post("/stationview/add", data=station_form(ops[1], "越权电站"))
    assert count(app, Station) == before
    with app.app_context():
        b_station = db.session.scalar(select(Station).where(Station.operator_id == ops[1]))
        b_station_id = b_station.id
    before = count(app, Pile)
    staff.post("/pileview/add", data={"station": str(b_station_id), "name": "越权桩", "pile_type": "dc",
                                      "protocol": "ykc15", "power_kw": "60", "gun_count": "1"})
    assert count(app, Pile) == before


def test_creating_under_own_operator_works(app, staff, ops):
    rv = staff.post("/stationview/add", data=station_form(ops[0], "自有新电站"), follow_redirects=True)
    assert rv.status_code == 200
    with app.app_context():
        st = db.session.scalar(select(Station).where(Station.name == "自有新电站"))
        assert st is not None and st.operator_id == ops[0] and len(st.code) == 6


REST_PAYLOADS = {
    "station": lambda b, ref: {"name": "越权API电站", "address": "x", "operator": b, "lng": "118.7", "lat": "32.0"},
    "pile": lambda b, ref: {"name": "越权API桩", "station": ref["station"], "code": "99999999999999"},
    "connector": lambda b, ref: {"pile": ref["pile"], "gun_no": 9, "name": "越权枪"},
    "pricetemplate": lambda b, ref: {"code": "EVILTPL", "name": "越权模板", "operator": b},
    "partner": lambda b, ref: {"name": "越权伙伴", "operator": b, "partner_operator_code": "EVIL00001",
                               "operator_secret": "x" * 16, "data_secret": "x" * 16, "data_secret_iv": "x" * 16,
                               "sig_secret": "x" * 16, "our_operator_code": "MA1NJ0002",
                               "our_operator_secret": "x" * 16, "our_data_secret": "x" * 16,
                               "our_data_secret_iv": "x" * 16, "our_sig_secret": "x" * 16},
}


@pytest.mark.parametrize("name", RESOURCES)
def test_rest_refuses_operator_b(app, ops, name):
    model, _, resource, _ = RESOURCES[name]
    headers = api_token(app, *STAFF)
    c = app.test_client()
    a_id, _ = pick(app, model, ops[0])
    b_id, _ = pick(app, model, ops[1])
    rv = c.get(f"/api/v1/{resource}/?q=(page_size:100)", headers=headers)
    assert rv.status_code == 200
    ids = {row["id"] for row in rv.get_json()["result"]} if "id" in rv.get_json()["result"][0] else set(
        rv.get_json()["ids"])
    assert a_id in ids and b_id not in ids
    assert c.get(f"/api/v1/{resource}/{b_id}", headers=headers).status_code == 404
    assert c.put(f"/api/v1/{resource}/{b_id}", json={"name": "hacked"}, headers=headers).status_code == 404
    assert c.delete(f"/api/v1/{resource}/{b_id}", headers=headers).status_code == 404
    ref = {"station": pick(app, Station, ops[1])[0], "pile": pick(app, Pile, ops[1])[0]}
    before = count(app, model)
    rv = c.post(f"/api/v1/{resource}/", json=REST_PAYLOADS[name](ops[1], ref), headers=headers)
    assert rv.status_code in (400, 403, 422), rv.get_json()
    assert count(app, model) == before
    # moving an own row to operator B is refused too
    if name in ("station", "pricetemplate", "partner"):
        rv = c.put(f"/api/v1/{resource}/{a_id}", json={"operator": ops[1]}, headers=headers)
        assert rv.status_code in (400, 403, 422)
        with app.app_context():
            assert db.session.get(model, a_id).operator_id == ops[0]


@pytest.mark.parametrize("name", RESOURCES)
def test_platform_admin_sees_both_operators(app, ops, name):
    model, view, resource, _ = RESOURCES[name]
    headers = api_token(app, "admin", ADMIN_PASSWORD)
    rv = app.test_client().get(f"/api/v1/{resource}/?q=(page_size:100)", headers=headers)
    ops_seen = {row["operator_id"] for row in rv.get_json()["result"]}
    assert {ops[0], ops[1]} <= ops_seen
