"""Our T/CEC endpoints, happy paths, through the Flask test client (real database and Redis); one
test goes over real HTTP to the gevent web process."""
from __future__ import annotations

import json
import math
import urllib.request
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.extensions import db, get_redis
from app.gateway.registry import gun_key
from app.interconnect import codec
from app.models import ChargeOrder, Connector, PriceTemplate, PushLog, ReconciliationDispute, Station
from app.security.scope import platform_scope
from app.services import charging, clock, order_state
from tests.interconnect.tcec_support import Caller, flask_post, tcec_partners  # noqa: F401 (fixture)


@pytest.fixture
def caller(app, tcec_partners):  # noqa: F811
    return Caller(flask_post(app.test_client()), tcec_partners["a"]["keys"])


def own_stations(app, operator_id):
    with app.app_context():
        return db.session.scalars(select(Station).where(Station.operator_id == operator_id,
                                                        Station.source == "local").order_by(Station.id)).all()


def test_query_token_issues_a_working_token_and_is_logged_without_secrets(app, caller, tcec_partners):  # noqa: F811
    ret, msg, data = caller.call("query_token", {"OperatorID": caller.keys.operator_id,
                                                 "OperatorSecret": caller.keys.operator_secret})
    assert (ret, msg) == (0, "")
    assert data["SuccStat"] == 0 and data["FailReason"] == 0 and data["OperatorID"] == caller.keys.operator_id
    assert data["TokenAvailableTime"] == app.config["TCEC_TOKEN_SECONDS"] and len(data["AccessToken"]) >= 32
    ret, _, page = caller.call("query_stations_info", {"PageNo": 1, "PageSize": 1}, token=data["AccessToken"])
    assert ret == 0 and page["PageNo"] == 1
    with app.app_context():
        row = db.session.scalar(select(PushLog).where(PushLog.partner_id == tcec_partners["a"]["id"],
                                                      PushLog.direction == "in", PushLog.interface == "query_token")
                                .order_by(PushLog.id.desc()))
        assert row.ret == 0 and row.status == "success" and row.duration_ms is not None
        assert row.request_body["OperatorSecret"] == "******"
        assert row.response_body["AccessToken"] == "******"
        text = json.dumps([row.request_body, row.response_body])
        assert caller.keys.operator_secret not in text and data["AccessToken"] not in text


def test_query_token_wrong_secret_and_operator(caller):
    ret, _, data = caller.call("query_token", {"OperatorID": caller.keys.operator_id, "OperatorSecret": "nope"})
    assert ret == 0 and (data["SuccStat"], data["FailReason"], data["AccessToken"]) == (1, 2, "")
    ret, _, data = caller.call("query_token", {"OperatorID": "ZZZZZZZZZ", "OperatorSecret": "x"})
    assert ret == 0 and (data["SuccStat"], data["FailReason"]) == (1, 1)


def test_stations_info_pages_through_the_operators_own_stations_only(app, caller, tcec_partners):  # noqa: F811
    expected = own_stations(app, tcec_partners["a"]["operator_id"])
    assert len(expected) >= 2
    seen = []
    ret, _, first = caller.call("query_stations_info", {"PageNo": 1, "PageSize": 2})
    assert ret == 0 and first["ItemSize"] == len(expected)
    assert first["PageCount"] == math.ceil(len(expected) / 2)
    for page_no in range(1, first["PageCount"] + 1):
        ret, _, page = caller.call("query_stations_info", {"PageNo": page_no, "PageSize": 2})
        assert ret == 0 and page["PageNo"] == page_no and len(page["StationInfos"]) <= 2
        seen += page["StationInfos"]
    assert [s["StationID"] for s in seen] == [s.code for s in expected]
    info = seen[0]
    station = expected[0]
    assert info["StationName"] == station.name and info["CountryCode"] == "CN"
    assert info["OperatorID"] == tcec_partners["a"]["our_code"]
    with app.app_context():
        piles = db.session.get(Station, station.id).piles
        assert [e["EquipmentID"] for e in info["EquipmentInfos"]] == [p.code for p in piles]
        assert [c["ConnectorID"] for c in info["EquipmentInfos"][0]["ConnectorInfos"]] == [
            c.code for c in piles[0].connectors]
    ret, _, empty = caller.call("query_stations_info", {"PageNo": 9999, "PageSize": 10})
    assert ret == 0 and empty["StationInfos"] == [] and empty["ItemSize"] == len(expected)


def test_stations_info_last_query_time_returns_changed_stations(app, caller, tcec_partners):  # noqa: F811
    later = clock.local_now() + timedelta(minutes=1)
    ret, _, none = caller.call("query_stations_info", {"LastQueryTime": later.strftime("%Y-%m-%d %H:%M:%S")})
    assert ret == 0 and none["ItemSize"] == 0 and none["PageCount"] == 0
    since = clock.local_now() - timedelta(seconds=2)
    station = own_stations(app, tcec_partners["a"]["operator_id"])[1]
    with app.app_context(), platform_scope("test"):
        row = db.session.get(Station, station.id)
        row.remark = f"changed {clock.utcnow().isoformat()}"[:100]
        db.session.commit()
    ret, _, changed = caller.call("query_stations_info", {"LastQueryTime": since.strftime("%Y-%m-%d %H:%M:%S")})
    assert ret == 0 and station.code in [s["StationID"] for s in changed["StationInfos"]]
    assert all(s["StationID"] in {x.code for x in own_stations(app, tcec_partners["a"]["operator_id"])}
               for s in changed["StationInfos"])


def test_station_status_uses_the_live_gun_state(app, caller, tcec_partners):  # noqa: F811
    stations = own_stations(app, tcec_partners["a"]["operator_id"])[:2]
    with app.app_context():
        connectors = db.session.scalars(select(Connector).where(Connector.station_id == stations[0].id)
                                        .order_by(Connector.code)).all()
    live = connectors[0].code
    redis = get_redis_of(app)
    no_dead_owners(app, pile_codes(app, connectors))
    redis.hset(gun_key(live), mapping={"status": "charging"})
    try:
        ret, _, data = caller.call("query_station_status", {"StationIDs": [s.code for s in stations]})
    finally:
        redis.delete(gun_key(live))
    assert ret == 0 and data["Total"] == 2
    assert [s["StationID"] for s in data["StationStatusInfos"]] == [s.code for s in stations]
    infos = {c["ConnectorID"]: c for c in data["StationStatusInfos"][0]["ConnectorStatusInfos"]}
    assert set(infos) == {c.code for c in connectors}
    assert infos[live]["Status"] == 3
    tcec = {"offline": 0, "idle": 1, "occupied": 2, "charging": 3, "reserved": 4, "fault": 255}
    for c in connectors[1:]:
        assert infos[c.code]["Status"] == tcec[c.status]


def pile_codes(app, connectors):
    with app.app_context():
        return sorted({db.session.get(Connector, c.id).pile.code for c in connectors})


def no_dead_owners(app, codes, timeout=120):
    """Piles a gateway node of an earlier test left behind (a killed node) are marked offline by a live
    node's sweep once the dead node's lease runs out: let that happen now, not during the call."""
    from app.gateway.registry import Registry
    from app.services.gateway_nodes import sweep_dead_nodes
    from tests.integration.gateway.conftest import wait_until

    with app.app_context():
        redis = get_redis()
        registry = Registry(redis)

        def settled():
            sweep_dead_nodes(redis)
            owners = [registry.owner(code) for code in codes]
            return all(owner is None or registry.node_alive(owner[0]) for owner in owners)

        wait_until(settled, timeout, 0.5, "piles of dead gateway nodes swept")


def get_redis_of(app):
    with app.app_context():
        return get_redis()


def test_station_stats_sum_finished_orders(app, caller, tcec_partners):  # noqa: F811
    station = own_stations(app, tcec_partners["a"]["operator_id"])[0]
    day = clock.local_today()
    first = day - timedelta(days=400)
    with app.app_context():
        start, end = clock.day_bounds_utc(first)[0], clock.day_bounds_utc(day)[1]
        total = db.session.scalar(select(func.coalesce(func.sum(ChargeOrder.energy), 0)).where(
            ChargeOrder.station_id == station.id, ChargeOrder.status.in_(("finished", "settled")),
            ChargeOrder.ended_at >= start, ChargeOrder.ended_at < end))
    ret, _, data = caller.call("query_station_stats", {"StationID": station.code, "StartTime": first.isoformat(),
                                                       "EndTime": day.isoformat()})
    assert ret == 0
    stats = data["StationStats"]
    assert stats["StationID"] == station.code
    assert Decimal(stats["StationElectricity"]) == Decimal(total).quantize(Decimal("0.01"))
    assert sum(Decimal(e["EquipmentElectricity"]) for e in stats["EquipmentStatsInfos"]) == Decimal(
        stats["StationElectricity"])


def test_equip_auth_follows_the_gun_state(app, caller, tcec_partners):  # noqa: F811
    connector = first_connector(app, tcec_partners["a"]["operator_id"])
    redis = get_redis_of(app)
    try:
        for status, expected in (("occupied", (0, 0)), ("idle", (1, 1)), ("fault", (1, 2)), ("offline", (1, 2))):
            redis.hset(gun_key(connector.code), mapping={"status": status})
            seq = "H1TSTA001" + f"{status:0>18}"[:18]
            ret, _, data = caller.call("query_equip_auth", {"EquipAuthSeq": seq, "ConnectorID": connector.code})
            assert ret == 0 and (data["SuccStat"], data["FailReason"]) == expected, status
            assert data["EquipAuthSeq"] == seq and data["ConnectorID"] == connector.code
    finally:
        redis.delete(gun_key(connector.code))


def first_connector(app, operator_id):
    with app.app_context():
        connector = db.session.scalar(select(Connector).join(Station, Station.id == Connector.station_id).where(
            Connector.operator_id == operator_id, Station.source == "local", Station.price_template_id.isnot(None),
            Connector.enabled.is_(True)).order_by(Connector.id))
        db.session.expunge(connector)
        return connector


def test_business_policy_is_the_station_template_with_4_decimals(app, caller, tcec_partners):  # noqa: F811
    connector = first_connector(app, tcec_partners["a"]["operator_id"])
    seq = "H1TSTA001000000000000000001"
    answer = caller.raw("query_equip_business_policy",
                        caller.envelope({"EquipBizSeq": seq, "ConnectorID": connector.code}), token=caller.login())
    text = codec.decrypt(caller.keys, answer["Data"])
    ret, _, data = caller.open(answer)
    with app.app_context():
        station = db.session.get(Station, connector.station_id)
        periods = sorted(db.session.get(PriceTemplate, station.price_template_id).periods,
                         key=lambda p: p.start_minute)
        expected = [{"StartTime": f"{p.start_minute // 60:02d}{p.start_minute % 60:02d}00",
                     "ElecPrice": str(p.electricity_price.quantize(Decimal("0.0001"))),
                     "SevicePrice": str(p.service_price.quantize(Decimal("0.0001")))} for p in periods]
    assert ret == 0 and data["SuccStat"] == 0 and data["SumPeriod"] == len(expected)
    assert data["PolicyInfos"] == expected
    assert f'"ElecPrice":{expected[0]["ElecPrice"]}' in text      # a JSON number with 4 decimals


def test_base_path_v1_and_service_spelling(app, tcec_partners):  # noqa: F811
    with app.app_context(), platform_scope("test"):
        from app.models import Partner

        partner = db.session.get(Partner, tcec_partners["a"]["id"])
        partner.field_spelling = "service"
        db.session.commit()
    try:
        caller = Caller(flask_post(app.test_client()), tcec_partners["a"]["keys"], base="/evcs/v1/")
        connector = first_connector(app, tcec_partners["a"]["operator_id"])
        ret, _, data = caller.call("query_equip_business_policy",
                                   {"EquipBizSeq": "H1TSTA001000000000000000002", "ConnectorID": connector.code})
        assert ret == 0 and "ServicePrice" in data["PolicyInfos"][0] and "SevicePrice" not in data["PolicyInfos"][0]
    finally:
        with app.app_context(), platform_scope("test"):
            partner = db.session.get(Partner, tcec_partners["a"]["id"])
            partner.field_spelling = "sevice"
            db.session.commit()


def test_start_on_an_offline_pile_is_refused_once_and_repeats_the_first_answer(app, caller, tcec_partners):  # noqa: F811
    connector = first_connector(app, tcec_partners["a"]["operator_id"])
    seq = "H1TSTA001" + f"{clock.utcnow():%Y%m%d%H%M%S}0001"
    with app.app_context():
        before = db.session.scalar(select(func.count()).select_from(ChargeOrder))
    answers = [caller.call("query_start_charge", {"StartChargeSeq": seq, "ConnectorID": connector.code,
                                                  "QRCode": ""}) for _ in range(2)]
    assert answers[0] == answers[1]
    ret, _, data = answers[0]
    assert ret == 0 and data["StartChargeSeq"] == seq and (data["SuccStat"], data["FailReason"]) == (1, 2)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ChargeOrder)) == before


def partner_order(app, partner, status="charging"):
    """A partner order made by the charging service's own order factory, moved to ``status``."""
    connector = first_connector(app, partner["operator_id"])
    seq = "H1TSTA001" + f"{clock.utcnow():%m%d%H%M%S%f}"[:18]
    with app.app_context(), platform_scope("test"):
        conn = db.session.get(Connector, connector.id)
        order = charging.create_order(conn, origin="partner", channel_id=partner["channel_id"],
                                      partner_id=partner["id"], partner_order_no=seq)
        order.started_at = clock.utcnow() - timedelta(minutes=5)
        order_state.transition(order, "charging", "started")
        if status == "finished":
            order.energy, order.electricity_fee, order.service_fee = (Decimal("12.3456"), Decimal("6.1000"),
                                                                      Decimal("3.0049"))
            order.total_amount = order.electricity_fee + order.service_fee
            order.ended_at = clock.utcnow()
            order_state.transition(order, "stopping", "stop_requested")
            order_state.transition(order, "finished", "stopped")
        db.session.commit()
        return order.id, seq


def test_charge_status_and_stop_of_a_partner_order(app, caller, tcec_partners):  # noqa: F811
    order_id, seq = partner_order(app, tcec_partners["a"])
    gun = first_connector(app, tcec_partners["a"]["operator_id"]).code
    redis = get_redis_of(app)
    redis.hset(gun_key(gun), mapping={"status": "charging"})
    try:
        ret, _, data = caller.call("query_equip_charge_status", {"StartChargeSeq": seq})
    finally:
        redis.delete(gun_key(gun))
    assert ret == 0 and data["StartChargeSeq"] == seq and data["StartChargeSeqStat"] == 2
    assert data["ConnectorID"] == gun and data["ConnectorStatus"] == 3
    ret, _, data = caller.call("query_stop_charge", {"StartChargeSeq": seq, "ConnectorID": data["ConnectorID"]})
    assert ret == 0 and data["StartChargeSeq"] == seq
    # no gateway holds the pile: the stop is recorded (order stopping) and answered "offline"
    assert (data["SuccStat"], data["FailReason"], data["StartChargeSeqStat"]) == (1, 2, 3)
    with app.app_context():
        assert db.session.get(ChargeOrder, order_id).status == "stopping"


def test_stop_of_a_finished_order_is_already_stopped(app, caller, tcec_partners):  # noqa: F811
    _, seq = partner_order(app, tcec_partners["a"], status="finished")
    ret, _, data = caller.call("query_stop_charge", {"StartChargeSeq": seq})
    assert ret == 0 and (data["SuccStat"], data["FailReason"], data["StartChargeSeqStat"]) == (1, 3, 4)


def test_check_charge_orders_records_disputes_once(app, caller, tcec_partners):  # noqa: F811
    _, good = partner_order(app, tcec_partners["a"], status="finished")
    order_id, wrong = partner_order(app, tcec_partners["a"], status="finished")
    unknown = "H1TSTA001999999999999999999"
    check_seq = "H1TSTA001" + f"{clock.utcnow():%m%d%H%M%S%f}"[:18]
    now = clock.local_now()
    payload = {"CheckOrderSeq": check_seq, "StartTime": (now - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S"),
               "EndTime": now.strftime("%Y-%m-%d %H:%M:%S"), "OrderCount": 3, "TotalOrderPower": 0,
               "TotalOrderMoney": 0,
               "ChargeOrders": [{"StartChargeSeq": good, "TotalPower": 12.35, "TotalMoney": 9.10},
                                {"StartChargeSeq": wrong, "TotalPower": 12.35, "TotalMoney": 9.99},
                                {"StartChargeSeq": unknown, "TotalPower": 1.00, "TotalMoney": 2.00}]}
    for _ in range(2):
        ret, _, data = caller.call("check_charge_orders", payload)
        assert ret == 0 and data["CheckOrderSeq"] == check_seq and data["TotalDisputeOrder"] == 2
        disputes = {d["StartChargeSeq"]: d for d in data["DisputeOrders"]}
        assert disputes[wrong]["DisputeReason"] == 2 and disputes[wrong]["TotalMoney"] == "9.10"
        assert disputes[unknown]["DisputeReason"] == 1
        assert data["TotalDisputeMoney"] == "11.10"
    with app.app_context():
        rows = db.session.scalars(select(ReconciliationDispute).where(
            ReconciliationDispute.check_order_seq == check_seq).order_by(ReconciliationDispute.id)).all()
        assert [(r.start_charge_seq, r.reason, r.direction) for r in rows] == [(wrong, 2, "in"), (unknown, 1, "in")]
        assert rows[0].order_id == order_id and rows[0].their_money == Decimal("9.99")
        assert rows[0].our_money == Decimal("9.10") and rows[0].our_power == Decimal("12.35")
        assert rows[1].order_id is None and rows[1].operator_id == tcec_partners["a"]["operator_id"]


def test_over_real_http_with_the_gevent_web_process(app, tcec_partners):  # noqa: F811
    from tests.interconnect.e2e_support import WebProcess

    web = WebProcess(app, name="web-h1").wait_ready()
    try:
        def post(path, body, headers, ip):
            req = urllib.request.Request(web.url + path, data=body, headers=headers, method="POST")
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())

        caller = Caller(post, tcec_partners["a"]["keys"])
        ret, _, data = caller.call("query_stations_info", {"PageNo": 1, "PageSize": 3})
        assert ret == 0 and len(data["StationInfos"]) == min(3, data["ItemSize"])
    finally:
        web.stop()


def test_endpoints_are_exempt_from_csrf(app, tcec_partners):  # noqa: F811
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        caller = Caller(flask_post(app.test_client()), tcec_partners["a"]["keys"])
        ret, _, data = caller.call("query_token", {"OperatorID": caller.keys.operator_id,
                                                   "OperatorSecret": caller.keys.operator_secret})
        assert ret == 0 and data["SuccStat"] == 0
        assert app.test_client().post("/partnerview/add", data={}).status_code == 400   # CSRF still on elsewhere
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
