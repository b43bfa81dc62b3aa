"""Daily reconciliation (check_charge_orders) sent to a real HTTP partner: one planted dispute is recorded
with both sides' figures and shown on 对账差异; the daily tick checks the previous local day once."""
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import ChargeOrder, Partner, PushLog
from app.models.interconnect import ReconciliationDispute
from app.services import interconnect_push
from tests.interconnect.push_support import drain, logs, new_partner, partner_order, quiet_others

DAY = date(2024, 3, 11)            # the factory's orders: 2024-03-11 09:30-10:30 Beijing time


def cents(value):
    """2 decimals, half up (the money rule of the whole platform)."""
    return value.quantize(Decimal("0.01"), ROUND_HALF_UP)


@pytest.fixture(autouse=True)
def ctx(app):
    saved = app.config["TCEC_PUSH_RETRY_INTERVAL"]
    app.config["TCEC_PUSH_RETRY_INTERVAL"] = 1
    with app.app_context():
        yield
        db.session.remove()
    app.config["TCEC_PUSH_RETRY_INTERVAL"] = saved


@pytest.fixture
def wired():
    platform, partner_id = new_partner("recon")
    with quiet_others({partner_id}):
        yield platform, partner_id
    platform.stop()
    db.session.get(Partner, partner_id).push_enabled = False
    db.session.commit()


def test_check_charge_orders_records_planted_dispute(app, wired, admin_client):
    platform, partner_id = wired
    orders = [db.session.get(ChargeOrder, partner_order(partner_id)) for _ in range(3)]
    disputed = orders[1]
    platform.plant_dispute(disputed.partner_order_no, Decimal("19.50"), Decimal("28.00"), reason=2)

    interconnect_push.reconcile(db.session.get(Partner, partner_id), DAY)
    drain(app)

    sent = platform.requests_for("check_charge_orders")
    assert len(sent) == 1
    check = sent[0]
    assert check["OrderCount"] == 3 and len(check["CheckOrderSeq"]) == 27
    assert check["StartTime"] == "2024-03-11 00:00:00" and check["EndTime"] == "2024-03-11 23:59:59"
    assert {o["StartChargeSeq"] for o in check["ChargeOrders"]} == {o.partner_order_no for o in orders}
    assert check["TotalOrderMoney"] == sum(cents(o.electricity_fee) + cents(o.service_fee) for o in orders)

    rows = db.session.scalars(select(ReconciliationDispute).where(ReconciliationDispute.partner_id == partner_id)).all()
    assert len(rows) == 1
    row = rows[0]
    assert (row.direction, row.start_charge_seq, row.order_id, row.reason) == (
        "out", disputed.partner_order_no, disputed.id, 2)
    assert row.their_power == Decimal("19.50") and row.their_money == Decimal("28.00")
    assert row.our_power == cents(disputed.energy)
    assert row.our_money == cents(disputed.electricity_fee) + cents(disputed.service_fee)
    assert [r.status for r in logs(partner_id, "check_charge_orders")] == ["success"]

    # the same check again (resend) records no second dispute
    interconnect_push.reconcile(db.session.get(Partner, partner_id), DAY)
    drain(app)
    assert db.session.scalar(select(db.func.count(ReconciliationDispute.id)).where(
        ReconciliationDispute.partner_id == partner_id)) == 1

    # 对账差异 screen: both sides' figures
    html = admin_client.get("/reconciliationdisputeview/list/").get_data(as_text=True)
    assert disputed.partner_order_no in html and disputed.order_no in html
    assert "19.5" in html and "28" in html
    admin_client.get("/lang/zh")
    html = admin_client.get(f"/reconciliationdisputeview/show/{row.id}").get_data(as_text=True)
    assert "对账差异" in html and "金额不符" in html
    admin_client.get("/lang/en")


def test_daily_tick_checks_previous_local_day_once(app, wired):
    platform, partner_id = wired
    # 2024-03-12 00:20 in Beijing = 2024-03-11 16:20 UTC: the check of 2024-03-11 is due
    now = datetime(2024, 3, 11, 16, 20)
    assert partner_id in interconnect_push.reconcile_due(now)
    assert partner_id not in interconnect_push.reconcile_due(now)          # once per day and partner
    early = datetime(2024, 3, 11, 16, 5)                                   # 00:05 local: not yet
    assert interconnect_push.reconcile_due(early) == []
    rows = db.session.scalars(select(PushLog).where(PushLog.partner_id == partner_id,
                                                    PushLog.interface == "check_charge_orders")).all()
    assert [r.business_key for r in rows] == ["2024-03-11"]
    drain(app)
    assert len(platform.requests_for("check_charge_orders")) == 1
