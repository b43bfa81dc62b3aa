"""Excel export follows the list's search filters; the REST resources answer with JWT."""
import io

from openpyxl import load_workbook
from sqlalchemy import select

from app.extensions import db
from app.models import Member, Operator
from tests.conftest import ADMIN_PASSWORD, api_token


def sheet_rows(data):
    wb = load_workbook(io.BytesIO(data), read_only=True)
    return list(wb.active.iter_rows(values_only=True))


def test_export_follows_search_filter(admin_client):
    everything = sheet_rows(admin_client.get("/stationview/export/").data)
    assert len(everything) >= 10  # header + 9 demo stations
    rv = admin_client.get("/stationview/export/?_flt_2_name=地铁")
    assert rv.headers["Content-Type"].startswith("application/vnd.openxmlformats")
    rows = sheet_rows(rv.data)
    header, body = rows[0], rows[1:]
    assert "Station name" in header or "充电站名称" in header
    names = sorted(r[1] for r in body)
    assert names == ["天隆寺地铁站", "安德门地铁站"]


def test_member_and_card_resources(app):
    headers = api_token(app, "admin", ADMIN_PASSWORD)
    c = app.test_client()
    with app.app_context():
        op = db.session.scalar(select(Operator.id).where(Operator.code == "MA1NJ0001"))
    rv = c.post("/api/v1/member/", json={"member_no": "API001", "phone": "13900000001", "operator": op},
                headers=headers)
    assert rv.status_code == 201, rv.get_json()
    member_id = rv.get_json()["id"]
    rv = c.post("/api/v1/card/", json={"logical_no": "9900000000000001", "physical_no": "00000000DEADBEEF",
                                       "member": member_id, "operator": op}, headers=headers)
    assert rv.status_code == 201, rv.get_json()
    card = c.get(f"/api/v1/card/{rv.get_json()['id']}", headers=headers).get_json()["result"]
    assert card["member_id"] == member_id and card["operator_id"] == op
    member = c.get(f"/api/v1/member/{member_id}", headers=headers).get_json()["result"]
    assert member["balance"] in ("0.0000", 0, 0.0, "0")
    # the balance is the ledger's: it cannot be written through the API
    rv = c.put(f"/api/v1/member/{member_id}", json={"balance": "999"}, headers=headers)
    assert rv.status_code == 422
    with app.app_context():
        assert db.session.get(Member, member_id).balance == 0
