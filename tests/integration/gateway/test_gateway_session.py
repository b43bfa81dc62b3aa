"""A pile session over a real socket against ``python run.py gateway``: login, heartbeat, pricing,
status and alarms, remote start/stop from another thread's command bus call, the bill and its ack,
refusals, timeouts, the price push and the metrics endpoint."""

from __future__ import annotations

import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from app.extensions import db
from app.gateway.registry import Registry
from app.gateway.ykc import (
    BillingModelRequest,
    BillingModelSetReply,
    BillingModelVerify,
    Heartbeat,
    PileStartRequest,
    RealtimeData,
    RemoteStartReply,
    RemoteStopReply,
    TransactionRecord,
    encode_reply,
    utcnow,
)
from app.models import Alarm, Connector, ConnectorStatusLog, Pile, PileBill, PricePeriod, PriceTemplate
from app.services import pile_commands
from app.services.live_state import live_guns, live_pile
from app.services.ykc_pricing import billing_model_id
from tests.integration.gateway.conftest import fetch, wait_until
from tests.integration.gateway.ykc_client import PileClient

pool = ThreadPoolExecutor(4)


def in_thread(app, fn, *args, **kwargs):
    """Run a pile command the way a web or worker process would: another thread, its own app context."""

    def run():
        with app.app_context():
            return fn(*args, **kwargs)

    return pool.submit(run)


def realtime(code, gun="01", status=2, serial="0" * 32, **fields):
    return RealtimeData(transaction_serial=serial, pile_code=code, gun=gun, status=status, **fields)


def pile_row(app, code):
    return fetch(app, select(Pile).where(Pile.code == code))[0][0]


def connector_status(app, code, gun=1):
    return fetch(app, select(Connector.status).where(Connector.code == f"{code}{gun:02d}"))[0][0]


def test_unknown_pile_is_refused_and_closed(gateway):
    with PileClient(gateway.port, "99999999999999") as pile:
        assert pile.login().result == 1
        assert pile.closed_within(3)


def test_disabled_pile_is_refused(app, gateway, piles):
    code = piles()
    with app.app_context():
        db.session.execute(update(Pile).where(Pile.code == code).values(enabled=False))
        db.session.commit()
    try:
        with PileClient(gateway.port, code) as pile:
            assert pile.login().result == 1
            assert pile.closed_within(3)
    finally:
        with app.app_context():
            db.session.execute(update(Pile).where(Pile.code == code).values(enabled=True))
            db.session.commit()


def test_login_heartbeat_pricing_status_alarms_offline(app, gateway, piles, redis, gw_station):
    code = piles()
    pile = PileClient(gateway.port, code)
    assert pile.login().result == 0
    _, sync = pile.expect(0x56)                                   # time sync right after login
    assert abs(sync.current_time - utcnow()) < timedelta(seconds=5)
    assert Registry(redis).owner(code)[0] == "gw-test-a"

    seq = pile.send(Heartbeat(pile_code=code, gun="01"), seq=0x1234)
    header, ack = pile.expect(0x04)
    assert header.seq == seq and ack.gun == "01"                  # the ack echoes the sequence number

    row = wait_until(lambda: (r := pile_row(app, code)).online and r, message="pile online in the DB")
    assert (row.firmware, row.iccid, row.protocol_version) == ("TEST1.00", "898604D11722D0348606", "1.5")
    assert (row.network_type, row.carrier) == ("lan", "cucc")
    assert row.last_login_at is not None and row.last_heartbeat_at is not None

    # billing model: verify (differs) -> request -> the station's template -> verify (same)
    pile.send(BillingModelVerify(pile_code=code, billing_model_id="0000"))
    assert pile.expect(0x06)[1].result == 1
    pile.send(BillingModelRequest(pile_code=code))
    _, model = pile.expect(0x0A)
    with app.app_context():
        template = db.session.get(PriceTemplate, gw_station["template_id"])
        expected_id = billing_model_id(template)
    assert model.billing_model_id == expected_id
    assert (model.sharp_electricity_rate, model.sharp_service_rate) == (Decimal("1.25"), Decimal("0.8"))
    assert (model.valley_electricity_rate, model.valley_service_rate) == (Decimal("0.31"), Decimal("0.5"))
    assert model.rate_indexes[:16] == [3] * 16 and model.rate_indexes[34:38] == [0] * 4
    pile.send(BillingModelVerify(pile_code=code, billing_model_id=expected_id))
    assert pile.expect(0x06)[1].result == 0
    wait_until(lambda: pile_row(app, code).billing_model_id == int(expected_id), message="model recorded")

    # realtime data -> live state in Redis, status change in the DB and its log
    pile.send(realtime(code, "01", status=2, output_voltage=Decimal("230.0")))
    pile.send(realtime(code, "02", status=2, gun_plugged=1))
    wait_until(lambda: live_guns(redis, [f"{code}02"])[f"{code}02"].get("status") == "occupied")
    assert live_guns(redis, [f"{code}01"])[f"{code}01"]["voltage"] == "230.0"
    wait_until(lambda: connector_status(app, code, 1) == "idle" and connector_status(app, code, 2) == "occupied")
    logs = fetch(app, select(ConnectorStatusLog.status, ConnectorStatusLog.previous_status,
                             ConnectorStatusLog.reason).join(Connector)
                 .where(Connector.code == f"{code}01").order_by(ConnectorStatusLog.id))
    assert [tuple(r) for r in logs] == [("idle", "offline", "0x13")]

    # fault status + hardware fault bits open alarms; a clean frame closes them
    pile.send(realtime(code, "01", status=1, hardware_faults=0b1000000000001))
    open_alarms = wait_until(lambda: fetch(app, select(Alarm).where(Alarm.pile_code == code)), message="alarms")
    alarms = {a.fault_code: a for (a,) in open_alarms}
    assert set(alarms) == {"FAULT", "HW01", "HW13"}
    assert alarms["HW01"].description == "Emergency stop button pressed" and alarms["HW01"].gun_no == 1
    assert all(a.ended_at is None and a.handle_status == "pending" for a in alarms.values())
    pile.send(realtime(code, "01", status=2))
    wait_until(lambda: all(a.ended_at for (a,) in fetch(app, select(Alarm).where(Alarm.pile_code == code))),
               message="alarms closed")

    state = live_pile(redis, code)
    assert state["online"] and state["node"] == "gw-test-a" and state["firmware"] == "TEST1.00"

    # socket closed -> pile and guns offline, ownership released
    pile.close()
    wait_until(lambda: not pile_row(app, code).online, message="pile offline")
    wait_until(lambda: connector_status(app, code, 1) == connector_status(app, code, 2) == "offline")
    assert Registry(redis).owner(code) is None
    assert live_guns(redis, [f"{code}01"])[f"{code}01"]["status"] == "offline"
    reasons = fetch(app, select(ConnectorStatusLog.reason).join(Connector).where(Connector.code == f"{code}01")
                    .order_by(ConnectorStatusLog.id.desc()).limit(1))
    assert reasons[0][0] == "offline: socket closed"


def test_remote_start_stop_and_bill(app, gateway, piles):
    code = piles()
    gun_code = f"{code}01"
    serial = f"{gun_code}{'2405011200000001'}"
    with PileClient(gateway.port, code) as pile:
        assert pile.login().result == 0
        started = in_thread(app, pile_commands.remote_start, gun_code, serial, Decimal("88.5"))
        header, start = pile.expect(0x34)
        assert (start.transaction_serial, start.gun, start.balance) == (serial, "01", Decimal("88.50"))
        pile.send_bytes(encode_reply(RemoteStartReply(transaction_serial=serial, pile_code=code, gun="01",
                                                      result=1, failure_reason=0), header))
        reply = started.result(10)
        assert isinstance(reply, RemoteStartReply) and reply.result == 1
        pile.send(realtime(code, "01", status=3, serial=serial, gun_plugged=1, energy=Decimal("1.2000")))
        wait_until(lambda: connector_status(app, code) == "charging")

        stopped = in_thread(app, pile_commands.remote_stop, gun_code)
        header, _ = pile.expect(0x36, gun="01")
        pile.send_bytes(encode_reply(RemoteStopReply(pile_code=code, gun="01", result=1), header))
        assert stopped.result(10).result == 1

        bill = TransactionRecord(transaction_serial=serial, pile_code=code, gun="01",
                                 start_time=utcnow() - timedelta(minutes=30), end_time=utcnow(),
                                 valley_price=Decimal("0.81"), valley_energy=Decimal("12.3456"),
                                 valley_lossy_energy=Decimal("12.3456"), valley_amount=Decimal("10.0000"),
                                 meter_start=Decimal("100"), meter_stop=Decimal("112.3456"),
                                 total_energy=Decimal("12.3456"), total_lossy_energy=Decimal("12.3456"),
                                 total_amount=Decimal("10.0000"), transaction_flag=1, transaction_time=utcnow(),
                                 stop_reason=0x40)
        seq = pile.send(bill)
        header, ack = pile.expect(0x40)
        assert (ack.transaction_serial, ack.result, header.seq) == (serial, 0, seq)
        rows = fetch(app, select(PileBill).where(PileBill.serial == serial))
        assert len(rows) == 1                                          # committed before the ack
        stored = rows[0][0]
        assert (stored.total_energy, stored.total_amount, stored.stop_reason_code) == (
            Decimal("12.3456"), Decimal("10.0000"), 0x40)
        assert stored.parsed["valley_amount"] == "10.0000" and stored.raw_hex.startswith("68A2")

        pile.send(bill)                                                # a resend: acked again, stored once
        assert pile.expect(0x40)[1].result == 0
        count = fetch(app, select(func.count()).select_from(PileBill).where(PileBill.serial == serial))
        assert count[0][0] == 1


def test_pile_start_request_is_refused_by_default(gateway, piles):
    code = piles()
    with PileClient(gateway.port, code) as pile:
        assert pile.login().result == 0
        pile.send(PileStartRequest(pile_code=code, gun="02", start_mode=1, account_or_card=bytes.fromhex("D14B0A54")))
        _, answer = pile.expect(0x32)
        assert (answer.gun, answer.auth_result, answer.failure_reason) == ("02", 0, 0x01)


def test_command_to_offline_pile_and_unanswered_command(app, gateway, piles):
    code = piles()
    with app.app_context(), pytest.raises(pile_commands.PileOffline):
        pile_commands.reboot(code)
    with PileClient(gateway.port, code) as pile:
        assert pile.login().result == 0
        with app.app_context(), pytest.raises(pile_commands.CommandTimeout):
            pile_commands.reboot(code, timeout=0.5)                     # the pile never answers
        pile.expect(0x92)


def test_price_push_waits_until_the_pile_is_idle(app, gateway, piles, gw_station):
    code = piles()
    with PileClient(gateway.port, code) as pile:
        assert pile.login().result == 0
        pile.send(realtime(code, "01", status=3, gun_plugged=1))
        wait_until(lambda: connector_status(app, code) == "charging")
        with app.app_context():                                         # the template changes, committed
            template = db.session.get(PriceTemplate, gw_station["template_id"])
            db.session.execute(update(PricePeriod).where(PricePeriod.template_id == template.id,
                                                            PricePeriod.level == "valley")
                               .values(service_price=Decimal("0.45")))
            template.version += 1
            db.session.commit()
            new_id = billing_model_id(template)
            result = pile_commands.push_price_for_station(gw_station["station_id"])
        assert code in result["queued"]
        with pytest.raises(AssertionError):
            pile.expect(0x58, timeout=0.5)                              # not while charging
        pile.send(realtime(code, "01", status=2))
        header, model = pile.expect(0x58)
        assert model.billing_model_id == new_id and model.valley_service_rate == Decimal("0.45")
        pile.send_bytes(encode_reply(BillingModelSetReply(pile_code=code, result=1), header))
        wait_until(lambda: pile_row(app, code).billing_model_id == int(new_id), message="new model recorded")


def test_silent_connection_times_out(gateway):
    with PileClient(gateway.port, "00000000000000") as pile:            # never logs in
        assert pile.closed_within(4)


def test_garbage_only_connection_is_closed(gateway):
    with PileClient(gateway.port, "00000000000000") as pile:
        pile.send_bytes(bytes(range(1, 101)) * 3)                        # no 0x68 at all, 300 bytes
        assert pile.closed_within(2)


def test_frames_before_login_are_ignored(gateway, piles):
    code = piles()
    with PileClient(gateway.port, code) as pile:
        pile.send(Heartbeat(pile_code=code, gun="01"))
        with pytest.raises(AssertionError):
            pile.expect(0x04, timeout=0.3)
        assert pile.login().result == 0
        pile.send(Heartbeat(pile_code=code, gun="01"))
        pile.expect(0x04)


def test_metrics_endpoint(gateway):
    text = urllib.request.urlopen(f"http://127.0.0.1:{gateway.metrics_port}/metrics", timeout=5).read().decode()
    assert "# TYPE ykc_gateway_frames_in_total counter" in text
    assert 'ykc_gateway_frames_in_total{type="0x01"}' in text
    assert "ykc_gateway_connections " in text and "ykc_gateway_logins_total" in text
