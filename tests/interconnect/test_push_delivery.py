"""Pushes to a partner platform (T/CEC 102): a real HTTP partner (tests/interconnect/partner_platform.py,
written from the spec), real Redis/RQ, real database.

- token cached, renewed on Ret 4002, push delivered;
- 订单推送 from the admin (历史订单) queues ChargeOrderInfo again; ConfirmResult recorded on the order;
- settlement of a partner order pushes ChargeOrderInfo (after commit) with the channel and period details;
- gun status bursts are coalesced per gun (20 changes -> at most 2 pushes, the last status);
- 推送日志 shows the exchange decrypted with personal data masked; 重新推送 sends it again.
"""
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import pytest
from sqlalchemy import select

from app.extensions import db, get_redis
from app.models import ChargeOrder, Connector, Partner, PushLog
from app.services import interconnect_push
from tests.conftest import csrf_token
from tests.interconnect.push_support import drain, logs, new_partner, partner_order, quiet_others


@pytest.fixture(autouse=True)
def ctx(app):
    saved = {k: app.config[k] for k in ("TCEC_PUSH_RETRY_INTERVAL", "TCEC_PUSH_RETRY_MAX",
                                        "TCEC_PARTNER_CACHE_SECONDS")}
    app.config.update(TCEC_PUSH_RETRY_INTERVAL=1, TCEC_PUSH_RETRY_MAX=3, TCEC_PARTNER_CACHE_SECONDS=0)
    with app.app_context():
        yield
        db.session.remove()
    app.config.update(saved)


@pytest.fixture
def wired():
    platform, partner_id = new_partner("push")
    with quiet_others({partner_id}):
        yield platform, partner_id
    platform.stop()
    partner = db.session.get(Partner, partner_id)
    partner.push_enabled = False
    db.session.commit()


def test_token_renewed_on_4002_and_push_delivered(app, wired):
    platform, partner_id = wired
    order_id = partner_order(partner_id)
    interconnect_push.push_order(order_id)
    drain(app)
    assert len(platform.requests_for("query_token")) == 1
    assert len(platform.requests_for("notification_charge_order_info")) == 1

    platform.expire_tokens()                          # our cached token is now refused with 4002
    interconnect_push.push_order(order_id)
    drain(app)
    assert len(platform.requests_for("query_token")) == 2, "a new token after 4002"
    assert len(platform.requests_for("notification_charge_order_info")) == 2
    assert ("notification_charge_order_info", 4002) in [(i, r) for i, r, _ in platform.rejected]
    rows = logs(partner_id, "notification_charge_order_info")
    assert [r.status for r in rows] == ["success", "success"]
    assert rows[1].attempts == 1 and rows[1].ret == 0 and rows[1].http_status == 200
    token_rows = logs(partner_id, "query_token")
    assert len(token_rows) == 2 and all(r.status == "success" for r in token_rows)
    # secrets and personal data are masked in the log
    assert token_rows[0].request_body["OperatorSecret"].endswith("****") or "****" in token_rows[0].request_body[
        "OperatorSecret"]
    assert "****" in token_rows[0].response_body["AccessToken"]


def test_settlement_pushes_order_info_with_details_and_channel(app, wired):
    from app.services.settlement import settle_order

    platform, partner_id = wired
    order_id = partner_order(partner_id)
    order = db.session.get(ChargeOrder, order_id)
    platform.dispute(order.partner_order_no)          # their ConfirmResult: 1 (disputed)
    settle_order(order_id)
    drain(app)
    sent = platform.requests_for("notification_charge_order_info")
    assert len(sent) == 1
    info = sent[0]
    order = db.session.get(ChargeOrder, order_id)
    assert info["StartChargeSeq"] == order.partner_order_no
    assert info["ConnectorID"] == order.connector.code
    assert info["TotalElecMoney"] == order.electricity_fee.quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert info["TotalSeviceMoney"] == order.service_fee.quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert info["TotalPower"] == order.energy.quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert info["SumPeriod"] == len(info["ChargeDetails"]) >= 2          # flat + peak of the factory order
    if order.channel_id:
        assert info["ChannelID"] == str(order.channel_id)
    assert order.partner_confirm_result == 1
    assert order.pushed_at is not None


def test_order_push_from_admin_resends(app, wired, admin_client):
    platform, partner_id = wired
    order_id = partner_order(partner_id)
    order = db.session.get(ChargeOrder, order_id)
    html = admin_client.get(f"/historyorderview/show/{order_id}").get_data(as_text=True)
    assert "/historyorderview/push/" in html
    for _ in range(2):
        rv = admin_client.post(f"/historyorderview/push/{order_id}", data={"csrf_token": csrf_token(html) or ""})
        assert rv.status_code == 302
    drain(app)
    sent = [d for d in platform.requests_for("notification_charge_order_info")
            if d["StartChargeSeq"] == order.partner_order_no]
    assert len(sent) == 2
    rows = logs(partner_id, "notification_charge_order_info")
    assert [r.status for r in rows] == ["success", "success"]
    db.session.expire_all()
    assert db.session.get(ChargeOrder, order_id).partner_confirm_result == 0

    # a non-partner order is refused with a Chinese message
    admin_client.get("/lang/zh")
    other = db.session.scalar(select(ChargeOrder.id).where(ChargeOrder.partner_id.is_(None),
                                                           ChargeOrder.status == "settled"))
    if other:
        rv = admin_client.post(f"/historyorderview/push/{other}", follow_redirects=True)
        assert "互联" in rv.get_data(as_text=True) or "推送" in rv.get_data(as_text=True)
    admin_client.get("/lang/en")

    # 推送日志: the row, decrypted and masked, and 重新推送
    row = rows[0]
    page = admin_client.get(f"/pushlogview/show/{row.id}").get_data(as_text=True)
    assert order.partner_order_no in page and "TotalMoney" in page
    rv = admin_client.post("/pushlogview/action_post", data={"action": "resend", "rowid": [str(row.id)]})
    assert rv.status_code == 302
    drain(app)
    assert len([d for d in platform.requests_for("notification_charge_order_info")
                if d["StartChargeSeq"] == order.partner_order_no]) == 3


@dataclass
class Change:
    connector_id: int
    operator_id: int
    status: str


def test_gun_status_burst_is_coalesced(app, wired):
    platform, partner_id = wired
    partner = db.session.get(Partner, partner_id)
    conn = db.session.scalars(select(Connector).where(Connector.operator_id == partner.operator_id)
                              .order_by(Connector.id)).first()
    original = conn.status
    statuses = ["idle", "occupied", "charging", "fault"] * 5       # 20 changes, the last one: fault
    for status in statuses:
        conn.status = status                         # what the gateway commits before calling the hook
        db.session.commit()
        interconnect_push.gun_status_changed([Change(conn.id, conn.operator_id, status)])
    assert get_redis().exists(f"cpms:tcec:gun_job:{conn.id}")
    drain(app)
    sent = [d["ConnectorStatusInfo"] for d in platform.requests_for("notification_stationStatus")
            if d["ConnectorStatusInfo"]["ConnectorID"] == conn.code]
    assert 1 <= len(sent) <= 2
    assert sent[-1]["Status"] == 255                 # fault
    assert not get_redis().exists(f"cpms:tcec:gun_job:{conn.id}")
    rows = logs(partner_id, "notification_stationStatus")
    assert rows and all(r.status == "success" for r in rows)
    conn.status = original
    db.session.commit()


def test_disabled_partner_gets_nothing(app, wired):
    platform, partner_id = wired
    order_id = partner_order(partner_id)
    partner = db.session.get(Partner, partner_id)
    partner.push_enabled = False
    db.session.commit()
    with pytest.raises(interconnect_push.PushRefused):
        interconnect_push.push_order(order_id)
    partner.push_enabled = True
    db.session.commit()
    assert db.session.scalar(select(PushLog.id).where(PushLog.order_id == order_id)) is None


def test_gun_status_push_failing_is_retried_by_its_push_job(app, wired):
    platform, partner_id = wired
    partner = db.session.get(Partner, partner_id)
    conn = db.session.scalars(select(Connector).where(Connector.operator_id == partner.operator_id)
                              .order_by(Connector.id.desc())).first()
    platform.down = True
    interconnect_push.gun_status_changed([Change(conn.id, conn.operator_id, conn.status)])
    drain(app, until=lambda: any(r.status == "retrying" for r in logs(partner_id, "notification_stationStatus")))
    platform.down = False
    drain(app)
    rows = [r for r in logs(partner_id, "notification_stationStatus") if r.business_key == conn.code]
    assert len(rows) == 1 and rows[0].status == "success" and rows[0].attempts == 2
    assert [d["ConnectorStatusInfo"]["ConnectorID"] for d in platform.requests_for("notification_stationStatus")] \
        == [conn.code]
