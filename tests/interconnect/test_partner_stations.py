"""获取充电站: the admin pulls a partner's stations from its query_stations_info (real HTTP partner, paging
until PageCount), they are upserted with their equipment and connectors, listed with filters and shown."""
import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Partner, PushLog
from app.models.interconnect import PartnerStation
from tests.conftest import csrf_token
from tests.interconnect.push_support import new_partner, quiet_others

COUNT = 120                       # 3 pages of 50


def station(n, name=None):
    return {
        "StationID": f"ST{n:05d}", "OperatorID": "MA25CNM38", "EquipmentOwnerID": "MA25CNM38",
        "StationName": name or f"互联测试站{n}", "CountryCode": "CN", "AreaCode": "320115",
        "Address": f"南京市江宁区测试路{n}号", "ServiceTel": "025-12345678", "StationType": 1, "StationStatus": 50,
        "ParkNums": 10, "StationLng": 118.123456, "StationLat": 31.654321, "Construction": 255,
        "EquipmentInfos": [{
            "EquipmentID": f"EQ{n:05d}{e}", "EquipmentType": 1, "Power": 120.0, "EquipmentName": f"{n}号桩{e}",
            "ConnectorInfos": [{"ConnectorID": f"EQ{n:05d}{e}0{g}", "ConnectorName": f"{g}号枪", "ConnectorType": 4,
                                "VoltageUpperLimits": 750, "VoltageLowerLimits": 200, "Current": 250,
                                "Power": 60.0, "NationalStandard": 2} for g in (1, 2)],
        } for e in (1, 2)],
        "_UpdatedAt": "2026-11-01 00:00:00",
    }


@pytest.fixture(autouse=True)
def ctx(app):
    with app.app_context():
        yield
        db.session.remove()


def test_fetch_pages_upserts_and_shows(app, admin_client):
    platform, partner_id = new_partner("stations")
    try:
        with quiet_others({partner_id}):
            platform.stations = [station(n) for n in range(COUNT)]
            html = admin_client.get("/partnerstationview/fetch/").get_data(as_text=True)
            assert f"/partnerstationview/fetch/{partner_id}" in html
            form = {"csrf_token": csrf_token(html) or ""}
            rv = admin_client.post(f"/partnerstationview/fetch/{partner_id}", data=form)
            assert rv.status_code == 302, rv.get_data(as_text=True)[:300]
            pages = platform.requests_for("query_stations_info")
            assert [p["PageNo"] for p in pages] == [1, 2, 3]
            count = db.session.scalar(select(func.count(PartnerStation.id))
                                      .where(PartnerStation.partner_id == partner_id))
            assert count == COUNT
            row = db.session.scalar(select(PartnerStation).where(PartnerStation.partner_id == partner_id,
                                                                 PartnerStation.station_code == "ST00007"))
            assert (row.equipment_count, row.connector_count, row.station_status) == (2, 4, 50)
            page_logs = db.session.scalars(select(PushLog).where(PushLog.partner_id == partner_id,
                                                                 PushLog.interface == "query_stations_info")).all()
            assert len(page_logs) == 3 and all(p.status == "success" for p in page_logs)

            # a second pull updates in place (no duplicates)
            platform.stations[7] = station(7, name="改名后的站")
            admin_client.post(f"/partnerstationview/fetch/{partner_id}", data={"csrf_token": csrf_token(html) or ""})
            db.session.expire_all()
            assert db.session.scalar(select(func.count(PartnerStation.id)).where(
                PartnerStation.partner_id == partner_id)) == COUNT
            assert db.session.get(PartnerStation, row.id).name == "改名后的站"

            # list with a filter, detail page with equipment and connectors
            html = admin_client.get("/partnerstationview/list/?_flt_0_station_code=ST00007").get_data(as_text=True)
            assert "改名后的站" in html and "ST00008" not in html
            admin_client.get("/lang/zh")
            html = admin_client.get(f"/partnerstationview/show/{row.id}").get_data(as_text=True)
            assert "EQ000071" in html and "EQ00007102" in html and "设备及充电接口" in html
            assert "直流接口枪头" in html
            admin_client.get("/lang/en")
    finally:
        platform.stop()
        db.session.get(Partner, partner_id).push_enabled = False
        db.session.commit()


def test_fetch_failure_is_reported(app, admin_client):
    platform, partner_id = new_partner("stations-down")
    try:
        platform.down = True
        html = admin_client.get("/partnerstationview/fetch/").get_data(as_text=True)
        rv = admin_client.post(f"/partnerstationview/fetch/{partner_id}", data={"csrf_token": csrf_token(html) or ""},
                               follow_redirects=True)
        assert "Fetching stations failed" in rv.get_data(as_text=True)
        assert db.session.scalar(select(func.count(PartnerStation.id)).where(
            PartnerStation.partner_id == partner_id)) == 0
    finally:
        platform.stop()
        db.session.get(Partner, partner_id).push_enabled = False
        db.session.commit()
