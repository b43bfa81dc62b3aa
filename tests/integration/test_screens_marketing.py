"""Marketing screens: 折 conversion and validation, time windows, coupon rules, lists and exports."""

import io
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from app.models import Campaign, Channel, CouponTemplate, Station
from app.services import campaigns
from app.services.campaigns import CampaignError

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _db():
    from app.extensions import db

    return db


@pytest.fixture(scope="module")
def op(app):
    with app.app_context():
        st = _db().session.query(Station).order_by(Station.id).first()
        ch = _db().session.query(Channel).filter_by(operator_id=st.operator_id, channel_type="interconnect").first()
        return {"operator": str(st.operator_id), "station": str(st.id), "channel": str(ch.id) if ch else None}


def test_zhe_service():
    assert campaigns.zhe_to_rate("9.5") == Decimal("0.9500")
    assert campaigns.zhe_to_rate(10) == Decimal("1.0000")
    assert campaigns.zhe_to_rate(None) == Decimal("1.0000")
    assert campaigns.rate_to_zhe(Decimal("0.95")) == Decimal("9.5")
    for bad in ("0", "-1", "10.5", "abc", "9.1234"):
        with pytest.raises(CampaignError):
            campaigns.zhe_to_rate(bad)


@pytest.mark.parametrize(
    "url",
    [
        "/campaignview/list/",
        "/interconnectcampaignview/list/",
        "/coupontemplateview/list/",
        "/couponcampaignview/list/",
        "/campaignview/add",
        "/interconnectcampaignview/add",
        "/coupontemplateview/add",
        "/couponcampaignview/add",
    ],
)
def test_pages_render(admin_client, url):
    rv = admin_client.get(url)
    assert rv.status_code == 200, rv.get_data(as_text=True)[:500]


def _campaign(op, **kw):
    data = {
        "name": "Spring sale",
        "position": "order_page",
        "start_at": "2024-03-01 00:00:00",
        "end_at": "2024-03-31 23:59:59",
        "discount_mode": "fixed",
        "electricity_rate": "9.5",
        "service_rate": "8",
        "description": "Spring",
        "priority": "0",
        # saved disabled: an enabled campaign would discount other tests' March 2024 orders at settlement
        "enabled": "",
        "operator": op["operator"],
        "stations": [op["station"]],
    }
    data.update(kw)
    return data


def test_campaign_validation_and_conversion(admin_client, app, op):
    html = admin_client.post("/campaignview/add", data=_campaign(op, electricity_rate="12")).get_data(as_text=True)
    assert "The discount must be greater than 0 and at most 10" in html
    html = admin_client.post("/campaignview/add", data=_campaign(op, service_rate="0")).get_data(as_text=True)
    assert "The discount must be greater than 0 and at most 10" in html
    html = admin_client.post("/campaignview/add", data=_campaign(op, end_at="2024-02-01 00:00:00")).get_data(
        as_text=True
    )
    assert "The end time must be after the start time." in html
    rv = admin_client.post("/campaignview/add", data=_campaign(op, name="Spring OK"))
    assert rv.status_code == 302
    with app.app_context():
        c = _db().session.query(Campaign).filter_by(name="Spring OK").one()
        assert (c.kind, c.electricity_rate, c.service_rate) == (
            "operation",
            Decimal("0.9500"),
            Decimal("0.8000"),
        )
        assert [s.id for s in c.stations] == [int(op["station"])]
        tz = ZoneInfo(app.config.get("TIMEZONE", "Asia/Shanghai"))
        local = datetime(2024, 3, 1, tzinfo=tz).astimezone(UTC).replace(tzinfo=None)
        assert c.start_at == local  # typed in local time, stored as naive UTC
        pk = c.id
    html = admin_client.get(f"/campaignview/edit/{pk}").get_data(as_text=True)
    assert 'value="9.5"' in html and 'value="8"' in html
    assert 'value="2024-03-01 00:00:00"' in html
    assert "Spring OK" in admin_client.get("/campaignview/list/").get_data(as_text=True)
    assert "Spring OK" not in admin_client.get("/interconnectcampaignview/list/").get_data(as_text=True)
    rv = admin_client.get("/campaignview/export/")
    assert rv.content_type.startswith(XLSX)
    rows = list(load_workbook(io.BytesIO(rv.data)).worksheets[0].iter_rows(values_only=True))
    assert any("Spring OK" in r for r in rows)


def test_interconnect_campaign(admin_client, app, op):
    assert op["channel"] is not None, "the demo data has interconnect channels"
    rv = admin_client.post(
        "/interconnectcampaignview/add", data=_campaign(op, name="Partner deal", channel=op["channel"])
    )
    assert rv.status_code == 302
    with app.app_context():
        c = _db().session.query(Campaign).filter_by(name="Partner deal").one()
        assert c.kind == "interconnect" and c.channel_id == int(op["channel"])


def _coupon(op, **kw):
    data = {
        "name": "New user",
        "coupon_type": "discount",
        "target": "total",
        "discount_rate": "8.5",
        "threshold": "0",
        "validity_mode": "relative",
        "valid_days": "30",
        "all_stations": "y",
        "enabled": "y",
        "operator": op["operator"],
    }
    data.update(kw)
    return data


def test_coupon_template_rules(admin_client, app, op):
    html = admin_client.post("/coupontemplateview/add", data=_coupon(op, name="A name longer than fifteen")).get_data(
        as_text=True
    )
    assert "A coupon name has at most 15 characters." in html
    html = admin_client.post("/coupontemplateview/add", data=_coupon(op, discount_rate="")).get_data(as_text=True)
    assert "A discount coupon needs a discount" in html
    html = admin_client.post(
        "/coupontemplateview/add", data=_coupon(op, coupon_type="deduction", discount_rate="")
    ).get_data(as_text=True)
    assert "This coupon type needs a face value greater than 0." in html
    html = admin_client.post(
        "/coupontemplateview/add", data=_coupon(op, validity_mode="fixed", valid_days="")
    ).get_data(as_text=True)
    assert "Fixed-date coupons need a start and an end time." in html
    rv = admin_client.post("/coupontemplateview/add", data=_coupon(op, name="Newbie 85"))
    assert rv.status_code == 302
    with app.app_context():
        t = _db().session.query(CouponTemplate).filter_by(name="Newbie 85").one()
        assert t.discount_rate == Decimal("0.8500")


def test_coupon_campaign(admin_client, app, op):
    base = {
        "name": "Gift",
        "start_at": "2024-03-01 00:00:00",
        "trigger": "register",
        "scope": "all",
        "enabled": "y",
        "operator": op["operator"],
    }
    html = admin_client.post("/couponcampaignview/add", data=dict(base, end_at="2024-01-01 00:00:00")).get_data(
        as_text=True
    )
    assert "The end time must be after the start time." in html
    rv = admin_client.post("/couponcampaignview/add", data=dict(base, end_at="2024-04-01 00:00:00"))
    assert rv.status_code == 302
    assert "Gift" in admin_client.get("/couponcampaignview/list/").get_data(as_text=True)
