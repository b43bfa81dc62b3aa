"""Pushes triggered by partner order events and schedules: notification_start_charge_result when the order
starts charging, notification_equip_charge_status (the 50-second cron), notification_stop_charge_result when
it stops — each after the commit, once per order — and the regulators' scheduled station info, status and
order pushes (only what changed since their last run)."""
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db, get_redis
from app.models import ChargeOrder, Connector, Partner, Station
from app.services import clock, interconnect_push, order_state
from tests.interconnect.partner_platform import Invalid, PartnerPlatform
from tests.interconnect.push_support import drain, logs, new_partner, partner_order, quiet_others


@pytest.fixture(autouse=True)
def ctx(app):
    saved = app.config["TCEC_PUSH_RETRY_INTERVAL"]
    app.config["TCEC_PUSH_RETRY_INTERVAL"] = 1
    with app.app_context():
        yield
        db.session.remove()
    app.config["TCEC_PUSH_RETRY_INTERVAL"] = saved


class RegulatorPlatform(PartnerPlatform):
    """A provincial regulator: also takes notification_stationInfo (regional variant of the standard)."""

    def _serve_notification_stationInfo(self, data):
        info = data.get("StationInfo")
        if not isinstance(info, dict) or not isinstance(info.get("StationID"), str):
            raise Invalid(4004, "StationInfo missing")
        if not isinstance(info.get("EquipmentInfos"), list):
            raise Invalid(4004, "EquipmentInfos missing")
        return {"Status": 0}


def _done(partner_id):
    partner = db.session.get(Partner, partner_id)
    partner.push_enabled = False
    db.session.commit()


def test_start_charging_stop_pushes(app):
    platform, partner_id = new_partner("events")
    try:
        with quiet_others({partner_id}):
            order_id = partner_order(partner_id, status="starting", price=False, bill=False)
            order = db.session.get(ChargeOrder, order_id)
            order_state.transition(order, "charging", "started")
            db.session.commit()                                  # after the commit: the push job
            drain(app)
            started = platform.requests_for("notification_start_charge_result")
            assert [(d["StartChargeSeq"], d["StartChargeSeqStat"]) for d in started] == [(order.partner_order_no, 2)]

            assert interconnect_push.push_charging_snapshots() >= 1    # the 50-second cron tick
            drain(app)
            snaps = [d for d in platform.requests_for("notification_equip_charge_status")
                     if d["StartChargeSeq"] == order.partner_order_no]
            assert len(snaps) == 1 and snaps[0]["StartChargeSeqStat"] == 2 and snaps[0]["ConnectorStatus"] == 3
            if order.channel_id:
                assert snaps[0]["ChannelID"] == str(order.channel_id)

            order = db.session.get(ChargeOrder, order_id)
            order_state.transition(order, "stopping", "stopped")
            db.session.commit()
            drain(app)
            stopped = platform.requests_for("notification_stop_charge_result")
            assert [(d["StartChargeSeq"], d["StartChargeSeqStat"]) for d in stopped] == [(order.partner_order_no, 3)]
            # once per order: a repeated event queues nothing new
            assert interconnect_push.push_order_event("notification_stop_charge_result", order_id) == 0
            assert all(r.status == "success" for r in logs(partner_id) if r.interface != "query_token")
            order = db.session.get(ChargeOrder, order_id)
            order_state.transition(order, "abnormal", "marked_abnormal", reason="test cleanup")
            db.session.commit()
    finally:
        platform.stop()
        _done(partner_id)


def test_regulator_schedule_pushes_changes_since_last_run(app):
    from tests.integration.orders.test_settlement import make_order, new_member

    platform, partner_id = new_partner("regulator", platform_cls=RegulatorPlatform, partner_type="regulator")
    try:
        with quiet_others({partner_id}):
            partner = db.session.get(Partner, partner_id)
            redis = get_redis()
            since = clock.utcnow() - timedelta(seconds=5)
            redis.set(interconnect_push.REGULATOR_CURSOR.format(partner_id), since.isoformat())
            station = db.session.scalars(select(Station).where(Station.operator_id == partner.operator_id,
                                                               Station.source == "local").order_by(Station.id)).first()
            station.remark = "监管推送测试"
            station.updated_at = clock.utcnow()
            conn = db.session.scalars(select(Connector).where(Connector.station_id == station.id)).first()
            conn.status_changed_at = clock.utcnow()
            db.session.commit()
            order_id = make_order(new_member("100"))
            from app.services.settlement import settle_order

            settle_order(order_id)
            order = db.session.get(ChargeOrder, order_id)

            report = interconnect_push.push_regulators()[partner_id]
            # ours, and whatever else of the operator changed in the same seconds (a gateway test's piles
            # going offline, another settlement): each pushed once
            assert report["connectors"] >= 1 and report["orders"] >= 1 and report["stations"] >= 1
            drain(app)
            pushed = [d["StationInfo"]["StationID"] for d in platform.requests_for("notification_stationInfo")]
            assert station.code in pushed and len(pushed) == report["stations"]
            assert all(db.session.scalar(select(Station.operator_id).where(Station.code == code))
                       == partner.operator_id for code in pushed)
            guns = [d["ConnectorStatusInfo"]["ConnectorID"]
                    for d in platform.requests_for("notification_stationStatus")]
            assert conn.code in guns and len(guns) == len(set(guns)) == report["connectors"]
            infos = platform.requests_for("notification_charge_order_info")
            assert len(infos) == report["orders"]
            assert f"{partner.our_operator_code}{order.order_no:0>18}" in [i["StartChargeSeq"] for i in infos]
            assert all(r.status == "success" for r in logs(partner_id) if r.interface != "query_token")
            # next run: nothing changed
            # next run: ours is not pushed again (other tests' orders and guns may have changed meanwhile)
            interconnect_push.push_regulators()
            drain(app)
            ours = f"{partner.our_operator_code}{order.order_no:0>18}"
            assert [i["StartChargeSeq"] for i in platform.requests_for("notification_charge_order_info")
                    ].count(ours) == 1
            assert [d["StationInfo"]["StationID"] for d in platform.requests_for("notification_stationInfo")
                    ].count(station.code) == 1
    finally:
        platform.stop()
        _done(partner_id)
