"""Interconnect end to end (issue 10 "Done when"): two real HTTP servers and a real pile.

- our platform: ``python run.py web`` (gevent WSGI) on a free port, with the gateway, an RQ worker and
  ``rq cron`` as real processes on the test database and Redis;
- a partner platform written from the spec (``partner_platform.py``: its own AES/HMAC, strict checks);
- a simulated YKC pile (``python -m app.gateway.simulator``) over TCP.

The walk: token; stations info with paging; station status; equipment auth; business policy; start
charge (the pile starts charging); ``notification_equip_charge_status`` arriving on schedule
(TCEC_CHARGE_STATUS_INTERVAL = 3 s instead of 50 s); stop; ``notification_charge_order_info`` whose
period details match our order; reconciliation with one planted dispute (both directions); 订单推送 from
the admin (a logged-in operator administrator POSTs the action) resending the order.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import ROUND_HALF_UP, Decimal

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.gateway.registry import Registry
from app.models import (
    Channel,
    ChargeOrder,
    Connector,
    Operator,
    OrderPeriod,
    Partner,
    Pile,
    PricePeriod,
    PriceTemplate,
    PushLog,
    Station,
)
from app.models.interconnect import ReconciliationDispute
from app.security.scope import platform_scope
from app.services import clock
from tests.integration.gateway.conftest import (
    ROOT,
    TOU,
    GatewayProcess,
    WorkerProcess,
    fetch,
    process_env,
    remove_test_station,
    wait_until,
)
from tests.interconnect.e2e_support import AdminSession, WebProcess, keys_for, partner_keys
from tests.interconnect.partner_platform import PartnerPlatform

PILE_CODE = "77100000000001"          # outside the gateway tests' pool (7700000000xxxx)
PARTNER_CODE = "MAE2EPTN1"
STATUS_INTERVAL = 3                   # TCEC_CHARGE_STATUS_INTERVAL (50 s in production)
SNAPSHOT_INTERVALS = 8                # charging snapshots counted over this many intervals
Q2, Q4 = Decimal("0.01"), Decimal("0.0001")
STAFF = ("staff_a", "staff-pass-1")   # demo operator administrator of the first operator
PROCESS_ENV = {
    "CHARGING_HOOKS": "app.services.charging:OrderHooks", "CHARGING_SAMPLE_FLUSH_INTERVAL": "0.2",
    "GATEWAY_COMMAND_TIMEOUT": "5", "TCEC_CHARGE_STATUS_INTERVAL": str(STATUS_INTERVAL),
    "TCEC_PUSH_RETRY_INTERVAL": "1", "TCEC_PUSH_WATCHDOG_SECONDS": "5", "TCEC_PUSH_STALE_SECONDS": "20",
    "TCEC_PARTNER_CACHE_SECONDS": "0", "TCEC_HTTP_TIMEOUT": "5",
}


class CronProcess:
    """``python run.py cron`` (RQ's cron scheduler with app/tasks/cron_config.py)."""

    def __init__(self, app, name, **overrides):
        self.log_path = os.path.join(app.config["INSTANCE_DIR"], f"cron-{name}.log")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "run.py", "cron"], cwd=ROOT, env=process_env(app, **overrides),
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        with open(self.log_path, errors="replace") as fh:
            return fh.read()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


def local(value) -> str:
    return clock.format_local(value, "%Y-%m-%d %H:%M:%S")


@pytest.fixture(scope="module")
def walk_env(app):
    """Station + pile + Partner of the first operator, the partner platform, and every process."""
    with app.app_context(), platform_scope("e2e-setup"):
        operator = db.session.scalar(select(Operator).order_by(Operator.id))
        template = PriceTemplate(operator=operator, code="TCECE2E", name="互联测试模版")
        template.periods = [PricePeriod(start_minute=s, end_minute=e, level=lv, electricity_price=Decimal(ep),
                                        service_price=Decimal(sp)) for s, e, lv, ep, sp in TOU]
        station = Station(operator=operator, code="TCECE2E01", name="互联测试站", address="互联测试地址",
                          price_template=template)
        pile = Pile(operator=operator, station=station, code=PILE_CODE, name="互联测试桩", protocol="ykc15",
                    gun_count=2)
        for gun in (1, 2):
            pile.connectors.append(Connector(operator=operator, station=station, gun_no=gun,
                                             code=f"{PILE_CODE}{gun:02d}", name=f"互联测试枪{gun}"))
        channel = Channel(operator=operator, code="TCEC-E2E", name="互联测试渠道", channel_type="interconnect")
        db.session.add_all([station, channel])
        db.session.flush()
        fields = partner_keys(PARTNER_CODE, operator.code, "E2E")
        ids = {"operator_id": operator.id, "operator_code": operator.code, "station_id": station.id,
               "template_id": template.id, "channel_id": channel.id}
        db.session.commit()
    calling_us, being_called = keys_for(fields)
    partner = PartnerPlatform(PARTNER_CODE, calling_us, being_called).start()
    with app.app_context(), platform_scope("e2e-setup"):
        row = Partner(operator_id=ids["operator_id"], name="互联测试平台", partner_type="platform",
                      base_url=partner.root_url, ip_allowlist="127.0.0.1", channel_id=ids["channel_id"], **fields)
        db.session.add(row)
        db.session.commit()
        ids["partner_id"] = row.id
    redis_conn = None
    procs = []
    try:
        from app.extensions import get_redis

        with app.app_context():
            redis_conn = get_redis()
        gateway = GatewayProcess(app, "gw-tcec", **PROCESS_ENV).wait_ready(redis_conn)
        procs.append(gateway)
        procs.append(WorkerProcess(app, "tcec", **PROCESS_ENV))
        procs.append(CronProcess(app, "tcec", **PROCESS_ENV))
        web = WebProcess(app, "web-tcec", **PROCESS_ENV).wait_ready()
        procs.append(web)
        sim = subprocess.Popen(
            [sys.executable, "-m", "app.gateway.simulator", "--port", str(gateway.port), "--codes", PILE_CODE,
             "--guns", "2", "--heartbeat", "1", "--realtime-charging", "0.3", "--realtime-idle", "5",
             "--bill-retry", "2", "--duration", "600", "--progress", "0"],
            cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: Registry(redis_conn).owner(PILE_CODE), timeout=30, message="simulated pile online")
        yield {**ids, "app": app, "partner": partner, "client": partner.client(f"{web.url}/evcs/v1.0"), "web": web,
               "redis": redis_conn, "procs": procs}
        sim.send_signal(signal.SIGTERM)
        sim.wait(20)
    finally:
        for proc in reversed(procs):
            proc.stop()
        partner.stop()
        with app.app_context():
            remove_test_station(ids["station_id"], ids["template_id"])


def order_of(app, seq):
    with app.app_context(), platform_scope("e2e-read"):
        order = db.session.scalar(select(ChargeOrder).where(ChargeOrder.partner_order_no == seq))
        if order is not None:
            db.session.expunge(order)
        return order


def pushed(partner, interface, **match):
    return [d for d in partner.requests_for(interface) if all(d.get(k) == v for k, v in match.items())]


def diagnose(env) -> str:
    """What the processes and the partner saw, for a failing step."""
    parts = [f"partner rejected: {env['partner'].rejected[-10:]}",
             f"partner received: {[i for i, _, _ in env['partner'].received][-30:]}"]
    try:
        rows = fetch(env["app"], select(PushLog.id, PushLog.interface, PushLog.status, PushLog.attempts,
                                        PushLog.ret, PushLog.msg, PushLog.created_at)
                     .where(PushLog.partner_id == env["partner_id"]).order_by(PushLog.id))
        parts.append("push log:\n" + "\n".join(str(tuple(r)) for r in rows[-40:]))
    except Exception as exc:  # diagnosis only
        parts.append(f"push log unreadable: {exc!r}")
    for proc in env["procs"]:
        try:
            parts.append(f"--- {getattr(proc, 'log_path', proc)}:\n{proc.log()[-1500:]}")
        except Exception:  # a process without a readable log
            pass
    return "\n".join(parts)


def test_partner_walk_end_to_end(app, walk_env):
    env, partner, client = walk_env, walk_env["partner"], walk_env["client"]
    try:
        _walk(app, env, partner, client)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{diagnose(env)}") from exc


def _walk(app, env, partner, client):
    gun_code = f"{PILE_CODE}01"

    # 1. token
    client.token()
    assert client.token_available_time == 7200

    # 2. stations info with paging: every station of the partner's operator, once, nothing of another
    with app.app_context(), platform_scope("e2e-read"):
        own = set(db.session.scalars(select(Station.code).where(Station.operator_id == env["operator_id"],
                                                                 Station.source == "local")))
    seen, page_no, page_count = [], 1, None
    while page_count is None or page_no <= page_count:
        ret, msg, data = client.call("query_stations_info", {"PageNo": page_no, "PageSize": 2})
        assert ret == 0, (ret, msg)
        assert data["PageNo"] == page_no and data["ItemSize"] == len(own)
        assert len(data["StationInfos"]) <= 2
        page_count = data["PageCount"]
        seen += data["StationInfos"]
        page_no += 1
    assert page_count == -(-len(own) // 2) >= 2
    assert sorted(s["StationID"] for s in seen) == sorted(own)
    ours = next(s for s in seen if s["StationID"] == "TCECE2E01")
    assert ours["OperatorID"] == env["operator_code"]
    equipment = ours["EquipmentInfos"]
    assert [e["EquipmentID"] for e in equipment] == [PILE_CODE]
    assert sorted(c["ConnectorID"] for c in equipment[0]["ConnectorInfos"]) == [gun_code, f"{PILE_CODE}02"]

    # 3. station status: both guns idle (the pile is online)
    wait_until(lambda: fetch(app, select(Connector.status).where(Connector.code == gun_code))[0][0] == "idle",
               timeout=20, message="gun idle")
    ret, msg, data = client.call("query_station_status", {"StationIDs": ["TCECE2E01"]})
    assert ret == 0, (ret, msg)
    assert data["Total"] == 1
    statuses = {c["ConnectorID"]: c["Status"] for c in data["StationStatusInfos"][0]["ConnectorStatusInfos"]}
    assert statuses == {gun_code: 1, f"{PILE_CODE}02": 1}

    # 4. equipment auth: the gun is idle, nothing plugged in → SuccStat 1, FailReason 1 (spec)
    auth_seq = PARTNER_CODE + "100000000000000001"
    ret, msg, data = client.call("query_equip_auth", {"EquipAuthSeq": auth_seq, "ConnectorID": gun_code})
    assert ret == 0, (ret, msg)
    assert (data["EquipAuthSeq"], data["ConnectorID"], data["SuccStat"], data["FailReason"]) == (
        auth_seq, gun_code, 1, 1)

    # 5. business policy = the station's template, prices with 4 decimals
    biz_seq = PARTNER_CODE + "200000000000000001"
    ret, msg, data = client.call("query_equip_business_policy", {"EquipBizSeq": biz_seq, "ConnectorID": gun_code})
    assert ret == 0, (ret, msg)
    assert data["SuccStat"] == 0 and data["SumPeriod"] == len(TOU)
    assert [(p["StartTime"], p["ElecPrice"], p["SevicePrice"]) for p in data["PolicyInfos"]] == [
        (f"{s // 60:02d}{s % 60:02d}00", Decimal(ep).quantize(Q4, ROUND_HALF_UP),
         Decimal(sp).quantize(Q4, ROUND_HALF_UP))
        for s, _, _, ep, sp in TOU]

    # 6. start charge: the pile starts; a repeated StartChargeSeq answers the same and starts nothing
    seq = PARTNER_CODE + "300000000000000001"
    ret, msg, first = client.call("query_start_charge", {"StartChargeSeq": seq, "ConnectorID": gun_code,
                                                         "QRCode": ""})
    assert ret == 0, (ret, msg)
    assert (first["StartChargeSeq"], first["ConnectorID"], first["SuccStat"], first["FailReason"]) == (
        seq, gun_code, 0, 0)
    assert first["StartChargeSeqStat"] in (1, 2)
    ret, _, again = client.call("query_start_charge", {"StartChargeSeq": seq, "ConnectorID": gun_code,
                                                       "QRCode": ""})
    assert ret == 0 and again["SuccStat"] == 0 and again["StartChargeSeq"] == seq
    wait_until(lambda: (order_of(app, seq) or ChargeOrder()).status == "charging", timeout=30,
               message="partner order charging")
    with app.app_context(), platform_scope("e2e-read"):
        assert db.session.scalar(select(func.count()).select_from(ChargeOrder).where(
            ChargeOrder.partner_order_no == seq)) == 1
    order = order_of(app, seq)
    assert order.partner_id == env["partner_id"] and order.channel_id == env["channel_id"]
    wait_until(lambda: pushed(partner, "notification_start_charge_result", StartChargeSeq=seq), timeout=20,
               message="notification_start_charge_result")
    result = pushed(partner, "notification_start_charge_result", StartChargeSeq=seq)
    assert len(result) == 1 and result[0]["ConnectorID"] == gun_code and result[0]["StartChargeSeqStat"] in (1, 2)
    wait_until(lambda: any(d["ConnectorStatusInfo"]["Status"] == 3 for d in pushed(
        partner, "notification_stationStatus") if d["ConnectorStatusInfo"]["ConnectorID"] == gun_code),
        timeout=20, message="notification_stationStatus charging (3)")

    # 7. notification_equip_charge_status on schedule (every STATUS_INTERVAL s while charging)
    def snapshots():
        return [(t, d) for t, i, d in list(partner.arrivals)
                if i == "notification_equip_charge_status" and d["StartChargeSeq"] == seq]

    wait_until(snapshots, timeout=3 * STATUS_INTERVAL + 10, message="first charging snapshot")
    # on schedule: one per interval. Counted after two intervals: right after the start the single
    # worker has a queue (start result, status pushes, their retries) and cron ticks queued meanwhile
    # run back to back
    time.sleep(2 * STATUS_INTERVAL)
    window_start = time.monotonic()
    time.sleep(SNAPSHOT_INTERVALS * STATUS_INTERVAL)
    snaps = [(t, d) for t, d in snapshots() if window_start <= t <= window_start + SNAPSHOT_INTERVALS * STATUS_INTERVAL]
    assert SNAPSHOT_INTERVALS * 0.7 <= len(snaps) <= SNAPSHOT_INTERVALS * 1.3 + 1, (
        len(snaps), [(round(t - window_start, 2), d["EndTime"]) for t, d in snapshots()])
    gaps = [b[0] - a[0] for a, b in zip(snaps, snaps[1:], strict=False)]
    assert max(gaps) < STATUS_INTERVAL * 3, gaps

    def snapshot_logs():
        return [r[0] for r in fetch(app, select(PushLog).where(
            PushLog.partner_id == env["partner_id"], PushLog.interface == "notification_equip_charge_status",
            PushLog.business_key == seq).order_by(PushLog.created_at))]

    powers = [d["TotalPower"] for _, d in snaps]
    assert powers == sorted(powers) and powers[-1] > 0, powers
    assert all(d["StartChargeSeqStat"] == 2 and d["ConnectorStatus"] == 3 for _, d in snaps)
    ret, _, status = client.call("query_equip_charge_status", {"StartChargeSeq": seq})
    assert ret == 0 and status["StartChargeSeqStat"] == 2 and status["TotalPower"] >= powers[0]

    # 8. stop
    ret, msg, data = client.call("query_stop_charge", {"StartChargeSeq": seq, "ConnectorID": gun_code})
    assert ret == 0, (ret, msg)
    assert data["SuccStat"] == 0 and data["FailReason"] == 0 and data["StartChargeSeqStat"] in (3, 4)
    # notification_stop_charge_result is checked at the end (it must have come before the order info), so
    # that a missing one does not hide the later steps
    wait_until(lambda: order_of(app, seq).status == "settled", timeout=60, message="order settled")
    wait_until(lambda: all(log.status == "success" for log in snapshot_logs()), timeout=30,
               message="every charging snapshot delivered")
    assert len(snapshot_logs()) == len(snapshots())

    # 9. notification_charge_order_info: the figures and periods of our order
    wait_until(lambda: pushed(partner, "notification_charge_order_info", StartChargeSeq=seq), timeout=30,
               message="notification_charge_order_info")
    info = pushed(partner, "notification_charge_order_info", StartChargeSeq=seq)
    assert len(info) == 1
    info = info[0]
    order = order_of(app, seq)
    with app.app_context():
        periods = db.session.scalars(select(OrderPeriod).where(OrderPeriod.order_id == order.id)
                                     .order_by(OrderPeriod.seq)).all()
        db.session.expunge_all()
    assert order.energy > 0 and periods
    assert info["ConnectorID"] == gun_code
    assert info["StartTime"] == local(order.started_at) and info["EndTime"] == local(order.ended_at)
    assert info["TotalPower"] == order.energy.quantize(Q2, ROUND_HALF_UP)
    assert info["TotalElecMoney"] == order.electricity_fee.quantize(Q2, ROUND_HALF_UP)
    assert info["TotalSeviceMoney"] == order.service_fee.quantize(Q2, ROUND_HALF_UP)
    assert info["TotalMoney"] == info["TotalElecMoney"] + info["TotalSeviceMoney"]
    assert info["SumPeriod"] == len(periods) == len(info["ChargeDetails"])
    for detail, period in zip(info["ChargeDetails"], periods, strict=True):
        assert detail["DetailStartTime"] == local(period.start_at)
        assert detail["DetailEndTime"] == local(period.end_at)
        assert detail["ElecPrice"] == period.electricity_price.quantize(Q4, ROUND_HALF_UP)
        assert detail["SevicePrice"] == period.service_price.quantize(Q4, ROUND_HALF_UP)
        assert detail["DetailPower"] == period.energy.quantize(Q2, ROUND_HALF_UP)
    for detail, period in zip(info["ChargeDetails"][:-1], periods[:-1], strict=True):
        assert detail["DetailElecMoney"] == period.electricity_fee.quantize(Q2, ROUND_HALF_UP)
        assert detail["DetailSeviceMoney"] == period.service_fee.quantize(Q2, ROUND_HALF_UP)
    assert sum(d["DetailElecMoney"] for d in info["ChargeDetails"]) == info["TotalElecMoney"]
    assert sum(d["DetailSeviceMoney"] for d in info["ChargeDetails"]) == info["TotalSeviceMoney"]
    wait_until(lambda: order_of(app, seq).partner_confirm_result == 0, timeout=20, message="ConfirmResult 0 kept")

    # 10. reconciliation, one planted dispute each way
    their_money = info["TotalMoney"] + Decimal("1.00")
    partner.plant_dispute(seq, info["TotalPower"], their_money, reason=2)
    from app.services import interconnect_push

    day = clock.local_now().date()
    with app.app_context(), platform_scope("e2e-reconcile"):
        interconnect_push.reconcile(db.session.get(Partner, env["partner_id"]), day)
    def checks_of_the_day():   # the cron process may check the previous local day meanwhile (after 00:xx)
        return [c for c in pushed(partner, "check_charge_orders") if c["StartTime"].startswith(day.isoformat())]

    wait_until(checks_of_the_day, timeout=30, message="check_charge_orders pushed")
    check = checks_of_the_day()[-1]
    assert [o["StartChargeSeq"] for o in check["ChargeOrders"]] == [seq]
    assert check["TotalOrderMoney"] == info["TotalMoney"] and check["TotalOrderPower"] == info["TotalPower"]

    def dispute(direction):
        rows = fetch(app, select(ReconciliationDispute).where(ReconciliationDispute.partner_id == env["partner_id"],
                                                               ReconciliationDispute.direction == direction))
        return [r[0] for r in rows]

    wait_until(lambda: dispute("out"), timeout=20, message="dispute recorded (we checked)")
    (out,) = dispute("out")
    assert (out.start_charge_seq, out.order_id, out.reason) == (seq, order.id, 2)
    assert out.their_money == their_money and out.our_money == info["TotalMoney"]
    ret, msg, answer = client.call("check_charge_orders", {
        "CheckOrderSeq": PARTNER_CODE + "400000000000000001", "StartTime": f"{day} 00:00:00",
        "EndTime": f"{day} 23:59:59", "OrderCount": 1, "TotalOrderPower": info["TotalPower"],
        "TotalOrderMoney": their_money,
        "ChargeOrders": [{"StartChargeSeq": seq, "TotalPower": info["TotalPower"], "TotalMoney": their_money}]})
    assert ret == 0, (ret, msg)
    assert answer["TotalDisputeOrder"] == 1
    assert answer["DisputeOrders"] == [{"StartChargeSeq": seq, "TotalPower": info["TotalPower"],
                                        "TotalMoney": info["TotalMoney"], "DisputeReason": 2}]
    (inbound,) = dispute("in")
    assert inbound.their_money == their_money and inbound.our_money == info["TotalMoney"]

    # 11. 订单推送 from the admin: an operator administrator POSTs the action; the partner disputes it now,
    # and has dropped our token meanwhile (Ret 4002: we take a new one and deliver)
    partner.dispute(seq)
    partner.expire_tokens()
    admin = AdminSession(env["web"].url).login(*STAFF)
    token = admin.csrf(f"/historyorderview/show/{order.id}")
    status, body, headers = admin.post(f"/historyorderview/push/{order.id}", {"csrf_token": token} if token else {})
    assert status == 302, (status, body[:300])
    wait_until(lambda: len(pushed(partner, "notification_charge_order_info", StartChargeSeq=seq)) == 2,
               timeout=30, message="order pushed again")
    again = pushed(partner, "notification_charge_order_info", StartChargeSeq=seq)[1]
    assert again == info
    wait_until(lambda: order_of(app, seq).partner_confirm_result == 1, timeout=20, message="ConfirmResult 1 kept")
    with app.app_context(), platform_scope("e2e-read"):
        logs = db.session.scalars(select(PushLog).where(PushLog.partner_id == env["partner_id"],
                                                        PushLog.interface == "notification_charge_order_info",
                                                        PushLog.direction == "out")).all()
        assert [log.status for log in logs] == ["success", "success"]
    assert ("notification_charge_order_info", 4002) in [r[:2] for r in partner.rejected]

    # (8.) the stop result reached the partner, once, before the order info
    arrivals = [(t, i) for t, i, d in partner.arrivals if d.get("StartChargeSeq") == seq]
    stop_results = [t for t, i in arrivals if i == "notification_stop_charge_result"]
    assert len(stop_results) == 1, f"notification_stop_charge_result received {len(stop_results)} times"
    assert stop_results[0] < min(t for t, i in arrivals if i == "notification_charge_order_info")
    (stop_result,) = pushed(partner, "notification_stop_charge_result", StartChargeSeq=seq)
    assert (stop_result["ConnectorID"], stop_result["SuccStat"], stop_result["FailReason"]) == (gun_code, 0, 0)
    assert stop_result["StartChargeSeqStat"] in (3, 4)
    assert not [r for r in partner.rejected if r[1] != 4002], partner.rejected
