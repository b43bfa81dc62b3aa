"""Member API coupons (issue 13 §6): my coupons by status, coupons usable at a gun with their savings, the
campaigns of a station; a member of operator B never sees operator A's rows.

Savings (20 kWh estimate at the gun's current prices, after the campaigns; see app/services/discounts.py):
a 5-yuan deduction on the total saves 5.0000; a 4-yuan deduction on the service fee saves 4.0000; a 9 折
discount capped at 1 yuan saves 1.0000; a spend-1000-save-50 coupon saves 0.0000 — whatever the prices are,
since 20 kWh cost more than 10 yuan in total and more than 4 yuan of service fee at every demo price."""
from datetime import datetime, timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Connector, Coupon, CouponTemplate, Member, Station
from app.security.scope import platform_scope
from app.services import clock, coupons
from tests.integration.coupon_support import (
    new_channel,
    new_member,
    new_operation_campaign,
    new_template,
    no_lasting_marketing,
    op_id,
    other_op_id,
    tou_connector,
)
from tests.member_api.support import headers_for

API = "/api/app/v1"


@pytest.fixture(autouse=True)
def _marketing_ends_with_the_test(app):
    with no_lasting_marketing(app):
        yield


def give(template_id, member_id, quantity=1, now=None):
    with platform_scope("test-coupons"):
        out = coupons.issue(db.session.get(CouponTemplate, template_id), db.session.get(Member, member_id),
                            source="manual", quantity=quantity, now=now)
        db.session.commit()
    return [c.id for c in out]


def test_my_coupons_by_status_and_only_mine(app, client):
    with app.app_context():
        a, b = new_member(), new_member(operator_id=other_op_id())
        tid = new_template(name="API list", face_value=D("5.0000"), valid_days=7)
        unused, voided = give(tid, a, quantity=2)
        [old] = give(tid, a, now=clock.utcnow() - timedelta(days=30))     # ended 3 weeks ago, still "unused"
        with platform_scope("test"):
            coupons.void(db.session.get(Coupon, voided))
            db.session.commit()
        tb = new_template(operator_id=other_op_id(), name="B coupon")
        [b_coupon] = give(tb, b)
    ha, hb = headers_for(app, a), headers_for(app, b)
    body = client.get(f"{API}/coupons", headers=ha).get_json()
    assert body["total"] == 3 and {c["id"] for c in body["items"]} == {unused, voided, old}
    by_id = {c["id"]: c for c in body["items"]}
    assert (by_id[unused]["status"], by_id[voided]["status"], by_id[old]["status"]) == ("unused", "void", "expired")
    assert by_id[unused]["status_label"] == "未使用" and by_id[unused]["source_label"] == "后台发放"
    assert by_id[unused]["face_value"] == "5.0000" and by_id[unused]["name"] == "API list"
    assert by_id[unused]["valid_to"].endswith("Z") and by_id[unused]["code"].startswith("CP")
    for status, ids in (("unused", [unused]), ("expired", [old]), ("void", [voided]), ("used", [])):
        rv = client.get(f"{API}/coupons?status={status}", headers=ha).get_json()
        assert [c["id"] for c in rv["items"]] == ids, status
    assert client.get(f"{API}/coupons?status=lost", headers=ha).get_json()["code"] == "invalid_request"
    page = client.get(f"{API}/coupons?page=2&page_size=2", headers=ha).get_json()
    assert (page["total"], len(page["items"])) == (3, 1)
    assert [c["id"] for c in client.get(f"{API}/coupons", headers=hb).get_json()["items"]] == [b_coupon]
    assert client.get(f"{API}/coupons").status_code == 401


def test_usable_coupons_at_a_gun_with_their_savings(app, client):
    with app.app_context():
        a = new_member()
        conn = tou_connector()
        other_station = db.session.scalar(select(Station).where(Station.operator_id == op_id(),
                                                                Station.id != conn.station_id).order_by(Station.id))
        t_deduct = new_template(name="5 off", coupon_type="deduction", target="total", face_value=D("5.0000"))
        t_service = new_template(name="4 off service", coupon_type="deduction", target="service",
                                 face_value=D("4.0000"))
        t_disc = new_template(name="9 zhe max 1", coupon_type="discount", discount_rate=D("0.9000"), face_value=None,
                              max_discount=D("1.0000"))
        t_high = new_template(name="1000-50", coupon_type="full_reduction", threshold=D("1000.0000"),
                              face_value=D("50.0000"))
        t_elsewhere = new_template(name="elsewhere", all_stations=False)
        t = db.session.get(CouponTemplate, t_elsewhere)
        t.stations = [other_station]
        db.session.commit()
        [deduct] = give(t_deduct, a)
        [service] = give(t_service, a)
        [disc] = give(t_disc, a)
        [high] = give(t_high, a)
        give(t_elsewhere, a)
        give(t_deduct, a, now=clock.utcnow() - timedelta(days=30))            # expired: not offered
        conn_id, b_conn = conn.id, db.session.scalar(select(Connector.id).where(Connector.operator_id == other_op_id()))
    body = client.get(f"{API}/coupons/usable?connector_id={conn_id}", headers=headers_for(app, a)).get_json()
    assert body["connector_id"] == conn_id and body["estimate_kwh"] == "20"
    assert [(c["id"], c["saving"]) for c in body["items"]] == [
        (deduct, "5.0000"), (service, "4.0000"), (disc, "1.0000"), (high, "0.0000")]
    assert body["best_coupon_id"] == deduct
    # a gun of another operator, an unknown gun, a missing parameter
    for q in (f"connector_id={b_conn}", "connector_id=999999999"):
        rv = client.get(f"{API}/coupons/usable?{q}", headers=headers_for(app, a))
        assert (rv.status_code, rv.get_json()["code"]) == (404, "connector_not_found")
    assert client.get(f"{API}/coupons/usable", headers=headers_for(app, a)).status_code == 400


def test_station_campaigns_are_the_running_ones_of_the_members_operator(app, client):
    with app.app_context():
        channel = new_channel()
        a = new_member(channel_id=channel)
        b = new_member(operator_id=other_op_id())
        station_id = tou_connector().station_id
        running = new_operation_campaign(channel, name="Running 9/8")
        ended = new_operation_campaign(channel, name="Ended", end_at=datetime(2024, 2, 1))
        new_operation_campaign(new_channel(), name="Other channel")          # not the member's channel
        b_station = db.session.scalar(select(Station.id).where(Station.operator_id == other_op_id()))
    body = client.get(f"{API}/stations/{station_id}/campaigns", headers=headers_for(app, a)).get_json()
    names = [c["name"] for c in body["items"]]
    assert body["station_id"] == station_id and "Running 9/8" in names
    assert "Ended" not in names and "Other channel" not in names
    [c] = [c for c in body["items"] if c["id"] == running]
    assert (c["electricity_rate"], c["service_rate"], c["discount_mode"]) == ("0.9000", "0.8000", "fixed")
    assert ended not in [c["id"] for c in body["items"]]
    # operator B's member: A's station is not found; B's own station answers
    rv = client.get(f"{API}/stations/{station_id}/campaigns", headers=headers_for(app, b))
    assert (rv.status_code, rv.get_json()["code"]) == (404, "not_found")
    assert client.get(f"{API}/stations/{b_station}/campaigns", headers=headers_for(app, b)).status_code == 200


def test_the_coupon_endpoints_are_documented(app, client):
    doc = client.get(f"{API}/_openapi").get_json()
    for path in ("/coupons", "/coupons/usable", "/stations/{station_id}/campaigns"):
        op = doc["paths"][API + path]["get"]
        assert op["security"] == [{"bearerAuth": []}] and "200" in op["responses"]
    assert "404" in doc["paths"][API + "/coupons/usable"]["get"]["responses"]
    assert "CouponPage" in doc["components"]["schemas"] and "UsableCoupons" in doc["components"]["schemas"]
