"""Issue 8 §1, §2 and the clock part of §5, reproduced over real TCP: the gateway process runs the order
hooks, piles are the simulator (a separate process) or a scripted YKC client, settlement runs in a real
RQ worker.

- §1 back-to-back sessions on a gun left plugged at a station with occupancy fees (remote/staff start
  with the simulator, card start at the pile) → two orders, each settled once (the second start used
  to lose its order: the occupancy bookkeeping rolled back the shared transaction);
- §2 a poisoned realtime sample (its order does not exist) in the queue → the rest are written, the
  poisoned one is set aside with its reason (and counted in the gateway's metrics), later bills are
  still recorded; a bill left ``received`` (stored and acknowledged, intake never ran) → reprocessed by
  the job;
- §5 a pile clock two hours off → the order's times are the platform's, the pile's are kept beside
  them, the gateway sends a time sync (0x56), an order event says so, the order is not abnormal.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import urllib.request
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from app.extensions import db
from app.gateway.registry import Registry
from app.gateway.ykc import PileStartRequest, RealtimeData, utcnow
from app.models import Card, ChargeOrder, Connector, Member, MeterSample, OrderEvent, Pile, PileBill, Station
from app.services import charging, occupancy
from tests.integration.gateway.conftest import (
    ROOT,
    TOU,
    GatewayProcess,
    WorkerProcess,
    fetch,
    remove_test_station,
    wait_until,
)
from tests.integration.gateway.test_charging_e2e import (
    ENERGY,
    HOOKS,
    bill_for,
    debits,
    order_row,
    realtime,
    rich_member,
    started_order,
)
from tests.integration.gateway.ykc_client import PileClient
from tests.integration.money_invariants import assert_money_invariants

pytestmark = pytest.mark.usefixtures("money_invariants")  # checked after every fault

OCC_PREFIX = "7700000100"           # this module's piles: 77000001000001 ...


@pytest.fixture(scope="module")
def occ_station(app):
    """A station with occupancy fees (15 free minutes, 0.10 yuan/min) and its own TOU template and piles."""
    from app.models import Operator, PricePeriod, PriceTemplate

    with app.app_context():
        operator = db.session.scalar(select(Operator).order_by(Operator.id))
        template = PriceTemplate(operator=operator, code="FLTOCC", name="故障测试模版")
        template.periods = [PricePeriod(start_minute=s, end_minute=e, level=lv, electricity_price=Decimal(ep),
                                        service_price=Decimal(sp)) for s, e, lv, ep, sp in TOU]
        station = Station(operator=operator, code="FLTOCC01", name="故障测试站", address="测试地址",
                          price_template=template, occupancy_enabled=True, occupancy_free_minutes=15,
                          occupancy_price=Decimal("0.10000"), occupancy_unit="minute",
                          occupancy_cap=Decimal("30.0000"))
        db.session.add(station)
        db.session.flush()
        codes = []
        for n in range(1, 5):
            code = f"{OCC_PREFIX}{n:04d}"
            pile = Pile(operator=operator, station=station, code=code, name=f"故障测试桩{n}", protocol="ykc15",
                        gun_count=2)
            for gun_no in (1, 2):
                pile.connectors.append(Connector(operator=operator, station=station, gun_no=gun_no,
                                                 code=f"{code}{gun_no:02d}", name=f"{code}-{gun_no}"))
            db.session.add(pile)
            codes.append(code)
        db.session.commit()
        ids = station.id, template.id
    yield {"station_id": ids[0], "codes": codes}
    with app.app_context():
        for code in codes:
            for gun_no in (1, 2):
                connector_id = db.session.scalar(select(Connector.id).where(Connector.code == f"{code}{gun_no:02d}"))
                _reset_occupancy(connector_id)
        remove_test_station(*ids)


@pytest.fixture(scope="module")
def fault_gateway(app, redis, gw_station):
    node = GatewayProcess(app, "gw-faults", **HOOKS).wait_ready(redis)
    yield node
    node.stop()


@pytest.fixture(scope="module")
def worker(app):
    proc = WorkerProcess(app, "faults")
    yield proc
    proc.stop()


def _reset_occupancy(connector_id):
    from app.extensions import get_redis

    redis = get_redis()
    redis.delete(occupancy.state_key(connector_id), occupancy.seen_key(connector_id))
    redis.srem(occupancy.PENDING_KEY, str(connector_id))


def watched(redis, connector_id) -> bool:
    return bool(redis.sismember(occupancy.PENDING_KEY, str(connector_id)))


def connector_of(app, code, gun_no=1):
    return fetch(app, select(Connector).where(Connector.code == f"{code}{gun_no:02d}"))[0][0]


def orders_on(app, connector_id):
    return [row[0] for row in fetch(app, select(ChargeOrder).where(ChargeOrder.connector_id == connector_id)
                                    .order_by(ChargeOrder.id))]


def wait_settled(app, order_id, node, timeout=60.0, message="settled"):
    """Wait until the order is settled or abnormal; on timeout say where it stands (and the gateway's log)."""
    try:
        wait_until(lambda: order_row(app, order_id).status in ("settled", "abnormal"), timeout=timeout,
                   message=message)
    except AssertionError:
        order = order_row(app, order_id)
        events = [(e.event, e.from_status, e.to_status, e.remark) for (e,) in fetch(
            app, select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id))]
        worker_log = (Path(app.config["INSTANCE_DIR"]) / "worker-faults.log").read_text(errors="replace")[-3000:]
        raise AssertionError(f"{message}: order {order_id} is {order.status}; events {events}; "
                             f"gateway log: {node.log()}; worker log: {worker_log}") from None


def assert_settled_once(app, order_id):
    order = order_row(app, order_id)
    assert order.status == "settled" and order.pay_status == "paid", (order.status, order.abnormal_reason)
    entries = debits(app, order_id)
    assert len(entries) == 1 and entries[0][0].amount == -order.payable_amount
    bills = fetch(app, select(PileBill.status, PileBill.order_id).where(PileBill.serial == order.serial))
    assert bills == [("matched", order_id)]


# --- §1: a start either commits an order or is refused -------------------------------------------------------


@pytest.mark.parametrize("fees", ["occupancy", "plain"])
def test_back_to_back_staff_starts_on_a_plugged_gun(app, redis, fault_gateway, worker, occ_station, piles, fees):
    code = occ_station["codes"][0] if fees == "occupancy" else piles()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.gateway.simulator", "--port", str(fault_gateway.port), "--codes", code,
         "--guns", "2", "--heartbeat", "1", "--realtime-charging", "0.3", "--realtime-idle", "1",
         "--bill-retry", "2", "--duration", "180", "--progress", "0"],
        cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    order_ids = []
    try:
        wait_until(lambda: Registry(redis).owner(code), timeout=20, message="simulated pile online")
        connector = connector_of(app, code)
        wait_until(lambda: fetch(app, select(Connector.status, Pile.online).join(Pile).where(
            Connector.id == connector.id))[0] == ("idle", True), timeout=15, message="gun idle, pile online")
        member_id, _ = rich_member(app, connector.operator_id)
        for session_no in (1, 2):
            with app.app_context():
                order = charging.start_charge(connector.id, origin="staff", member_id=member_id, user_id=1)
                assert order is not None, f"session {session_no}: the start returned no order"
                order_id = order.id
                assert order.status in ("starting", "charging") and order.order_no
            order_ids.append(order_id)
            wait_until(lambda oid=order_id: order_row(app, oid).status == "charging", timeout=20, message="charging")
            wait_until(lambda oid=order_id: (order_row(app, oid).live_energy or 0) > 0, timeout=20,
                       message="live energy")
            with app.app_context():
                charging.stop_charge(order_id, by="staff", user_id=1)
            wait_settled(app, order_id, fault_gateway, message=f"session {session_no} settled")
            if session_no == 1 and fees == "occupancy":   # the car stays: the gun is plugged, the occupation watched
                assert watched(redis, connector.id)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        with app.app_context():
            _reset_occupancy(connector_of(app, code).id)
    orders = orders_on(app, connector.id)
    assert [o.id for o in orders] == order_ids
    assert len({o.serial for o in orders}) == 2
    for order_id in order_ids:
        assert_settled_once(app, order_id)
    assert_money_invariants(app, serials=[o.serial for o in orders])


@pytest.mark.parametrize("fees", ["occupancy", "plain"])
def test_back_to_back_card_starts_on_a_plugged_gun(app, redis, fault_gateway, worker, occ_station, piles, fees):
    code = occ_station["codes"][1] if fees == "occupancy" else piles()
    connector = connector_of(app, code)
    with app.app_context():
        card = db.session.scalar(select(Card).join(Member, Card.member_id == Member.id).where(
            Card.operator_id == connector.operator_id, Card.status == "active", Member.status == "active",
            Member.balance >= 20).order_by(Card.id))
        physical = card.physical_no
    plugged_idle = RealtimeData(transaction_serial="0" * 32, pile_code=code, gun="01", status=2, gun_plugged=1)
    serials = []
    with PileClient(fault_gateway.port, code) as pile:
        assert pile.login().result == 0
        pile.send(plugged_idle)
        wait_until(lambda: fetch(app, select(Connector.status, Pile.online).join(Pile).where(
            Connector.id == connector.id))[0] == ("occupied", True), timeout=10, message="gun plugged, pile online")
        for session_no in (1, 2):
            pile.send(PileStartRequest(pile_code=code, gun="01", start_mode=1, account_or_card=bytes.fromhex(physical)))
            _, answer = pile.expect(0x32, timeout=10)
            assert answer.auth_result == 1, f"session {session_no} refused: 0x{answer.failure_reason:02X}"
            serial = answer.transaction_serial
            serials.append(serial)
            [(order,)] = fetch(app, select(ChargeOrder).where(ChargeOrder.serial == serial))
            assert order.status == "starting" and order.start_method == "card"
            pile.send(realtime(code, serial, Decimal("0.0000")))
            wait_until(lambda oid=order.id: order_row(app, oid).status == "charging", timeout=10, message="charging")
            pile.send(realtime(code, serial, ENERGY))
            pile.send(RealtimeData(transaction_serial=serial, pile_code=code, gun="01", status=2, gun_plugged=1,
                                   energy=ENERGY))      # the pile stopped; the car stays plugged
            pile.send(bill_for(code, serial))
            assert pile.expect(0x40, transaction_serial=serial)[1].result == 0
            wait_settled(app, order.id, fault_gateway, message=f"session {session_no} settled")
            if session_no == 1 and fees == "occupancy":
                assert watched(redis, connector.id)
    with app.app_context():
        _reset_occupancy(connector.id)
    orders = orders_on(app, connector.id)
    assert [o.serial for o in orders] == serials and len(set(serials)) == 2
    for order in orders:
        assert_settled_once(app, order.id)
    assert_money_invariants(app, serials=serials)


def test_a_start_that_cannot_create_its_order_is_refused_and_nothing_else(app, redis, fault_gateway, occ_station):
    """The station of the third pile loses its price template: the card start cannot create an order. The
    pile gets a refusal, and there is no order, no session key and no charging afterwards."""
    code = occ_station["codes"][2]
    connector = connector_of(app, code)
    with app.app_context():
        station = db.session.get(Station, occ_station["station_id"])
        template_id, station.price_template_id = station.price_template_id, None
        db.session.commit()
        card = db.session.scalar(select(Card).join(Member, Card.member_id == Member.id).where(
            Card.operator_id == connector.operator_id, Card.status == "active", Member.status == "active",
            Member.balance >= 20).order_by(Card.id))
        physical = card.physical_no
    keys_before = set(redis.keys("cpms:active:*"))
    try:
        with PileClient(fault_gateway.port, code) as pile:
            assert pile.login().result == 0
            pile.send(RealtimeData(transaction_serial="0" * 32, pile_code=code, gun="01", status=2, gun_plugged=1))
            wait_until(lambda: fetch(app, select(Connector.status).where(Connector.id == connector.id))[0][0]
                       == "occupied", timeout=10, message="gun plugged")
            pile.send(PileStartRequest(pile_code=code, gun="01", start_mode=1,
                                       account_or_card=bytes.fromhex(physical)))
            _, answer = pile.expect(0x32, timeout=10)
            assert answer.auth_result == 0 and answer.failure_reason != 0
            assert set(answer.transaction_serial) == {"0"}
    finally:
        with app.app_context():
            station = db.session.get(Station, occ_station["station_id"])
            station.price_template_id = template_id
            db.session.commit()
    assert orders_on(app, connector.id) == []
    assert set(redis.keys("cpms:active:*")) == keys_before


# --- §2: one bad row never blocks the platform -----------------------------------------------------------------


POISON_ORDER_ID = 987654321
SET_ASIDE_KEY, SET_ASIDE_TOTAL = "cpms:samples:dead", "cpms:samples:dead:total"


def poisoned_sample():
    return json.dumps({"order_id": POISON_ORDER_ID, "at": utcnow().isoformat(), "status": 3, "voltage": "400.0",
                       "current": "100.0", "power": "40.000", "soc": 50, "energy": "1.0000",
                       "energy_with_loss": "1.0000", "amount": "1.0000", "gun_temp": 30, "battery_max_temp": 30,
                       "charged_minutes": 1, "remaining_minutes": 10, "fault_bits": 0})


def metric(node, name) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{node.metrics_port}/metrics", timeout=5).read().decode()
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the metrics")


def test_a_poisoned_sample_is_set_aside_and_later_bills_are_still_recorded(app, redis, fault_gateway, worker,
                                                                           piles):
    held_before, total_before = redis.llen(SET_ASIDE_KEY), int(redis.get(SET_ASIDE_TOTAL) or 0)
    redis.rpush(charging.SAMPLES_KEY, poisoned_sample(), b"{not json")
    for _ in range(2):                         # two later sessions on two piles, each billed and settled
        code = piles()
        operator_id = connector_of(app, code).operator_id
        member_id, _ = rich_member(app, operator_id)
        order_id, serial = started_order(app, code, member_id)
        with PileClient(fault_gateway.port, code) as pile:
            assert pile.login().result == 0
            pile.send(realtime(code, serial, Decimal("0.0000")))
            pile.send(realtime(code, serial, ENERGY))
            pile.send(bill_for(code, serial))
            assert pile.expect(0x40, transaction_serial=serial)[1].result == 0
        wait_settled(app, order_id, fault_gateway)
        assert_settled_once(app, order_id)
        samples = fetch(app, select(MeterSample.energy).where(MeterSample.order_id == order_id))
        assert sorted(e for (e,) in samples) == [Decimal("0.0000"), ENERGY]
    assert not fetch(app, select(MeterSample.id).where(MeterSample.order_id == POISON_ORDER_ID))
    queued = [json.loads(x).get("order_id") for x in redis.lrange(charging.SAMPLES_KEY, 0, -1) if x != b"{not json"]
    assert POISON_ORDER_ID not in queued and b"{not json" not in redis.lrange(charging.SAMPLES_KEY, 0, -1)
    assert redis.llen(SET_ASIDE_KEY) == held_before + 2
    with app.app_context():
        aside = charging.set_aside_samples()
        held, total = charging.set_aside_count()
    assert held == held_before + 2 and total == total_before + 2
    reasons = {a["sample"]: a["reason"] for a in aside[:2]}
    assert reasons["{not json"].startswith("unreadable sample")
    [poisoned] = [reason for sample, reason in reasons.items() if sample != "{not json"]
    assert poisoned == f"order {POISON_ORDER_ID} does not exist"
    assert metric(fault_gateway, "cpms_samples_set_aside") >= 2
    assert metric(fault_gateway, "cpms_samples_set_aside_total") >= total_before + 2


@pytest.fixture(scope="module")
def bare_gateway(app, redis, gw_station):
    """A node that stores and acknowledges bills but runs no order logic (as when the intake failed)."""
    node = GatewayProcess(app, "gw-faults-bare", CHARGING_HOOKS="app.services.charging_hooks:ChargingHooks",
                          GATEWAY_COMMAND_TIMEOUT=3).wait_ready(redis)
    yield node
    node.stop()


def test_a_bill_left_received_is_reprocessed_by_the_job(app, redis, fault_gateway, bare_gateway, worker, piles):
    """The samples reach the order gateway; the bill is stored and acknowledged by a node without the
    order hooks (its intake never ran): it stays 'received' until the job takes it up."""
    from rq import Queue
    from rq.cron import CronScheduler

    from app.tasks import charging_jobs

    cron = CronScheduler(connection=redis)
    cron.load_config_from_file(str(ROOT / "app" / "tasks" / "cron_config.py"))
    assert "app.tasks.charging_jobs.reprocess_bills" in {job.func_name for job in cron.get_jobs()}
    code = piles()
    member_id, _ = rich_member(app, connector_of(app, code).operator_id)
    order_id, serial = started_order(app, code, member_id)
    with PileClient(fault_gateway.port, code) as pile:
        assert pile.login().result == 0
        pile.send(realtime(code, serial, Decimal("0.0000")))
        pile.send(realtime(code, serial, ENERGY))
        wait_until(lambda: len(fetch(app, select(MeterSample.id).where(MeterSample.order_id == order_id))) == 2,
                   timeout=10, message="samples written")
    wait_until(lambda: Registry(redis).owner(code) is None, timeout=10, message="pile offline")
    with PileClient(bare_gateway.port, code) as pile:
        assert pile.login().result == 0
        pile.send(bill_for(code, serial))
        assert pile.expect(0x40, transaction_serial=serial)[1].result == 0
    assert fetch(app, select(PileBill.status).where(PileBill.serial == serial)) == [("received",)]
    assert order_row(app, order_id).status == "charging"
    with app.app_context():
        assert charging.reprocess_bills()["processed"] == 0       # too fresh: the gateway may still be at it
    later = (utcnow() + timedelta(minutes=2)).isoformat()          # the job, run by the RQ worker, 2 min later
    job = Queue("default", connection=redis).enqueue(charging_jobs.reprocess_bills, later)
    wait_until(lambda: job.get_status(refresh=True) in ("finished", "failed"), timeout=30, message="job done")
    assert job.get_status() == "finished" and job.return_value()["processed"] >= 1
    assert fetch(app, select(PileBill.status).where(PileBill.serial == serial)) == [("matched",)]
    wait_settled(app, order_id, fault_gateway)
    assert_settled_once(app, order_id)


# --- §5: one clock per order ---------------------------------------------------------------------------------


@pytest.mark.parametrize("offset_hours", [2, -2])
def test_a_pile_clock_two_hours_off(app, redis, fault_gateway, worker, piles, offset_hours):
    code = piles()
    member_id, _ = rich_member(app, connector_of(app, code).operator_id)
    order_id, serial = started_order(app, code, member_id)
    platform_start = order_row(app, order_id).started_at
    skew = timedelta(hours=offset_hours)
    bill = bill_for(code, serial)
    bill = dataclasses.replace(bill, start_time=bill.start_time + skew, end_time=bill.end_time + skew,
                               transaction_time=bill.transaction_time + skew)
    with PileClient(fault_gateway.port, code) as pile:
        assert pile.login().result == 0
        pile.expect(0x56)                                  # the time sync after login
        pile.send(realtime(code, serial, Decimal("0.0000")))
        pile.send(realtime(code, serial, ENERGY))
        before = utcnow()
        pile.send(bill)
        assert pile.expect(0x40, transaction_serial=serial)[1].result == 0
        _, sync = pile.expect(0x56)                        # its clock is off: set it
        after = utcnow()
        assert abs((sync.current_time - after).total_seconds()) <= 2
    wait_settled(app, order_id, fault_gateway)
    order = order_row(app, order_id)
    assert order.status == "settled" and not order.needs_review, order.abnormal_reason
    assert order.started_at == platform_start
    assert order.started_at <= order.ended_at <= after + timedelta(seconds=1)
    assert order.ended_at >= before - timedelta(seconds=45)
    assert abs((order.pile_started_at - bill.start_time).total_seconds()) < 1
    assert abs((order.pile_ended_at - bill.end_time).total_seconds()) < 1
    assert 29 <= order.duration_seconds <= 31
    events = fetch(app, select(OrderEvent).where(OrderEvent.order_id == order_id, OrderEvent.event == "clock_skew"))
    assert len(events) == 1
    detail = events[0][0].detail
    assert abs(detail["skew_seconds"] - offset_hours * 3600) <= 5
    assert not fetch(app, select(OrderEvent.id).where(OrderEvent.order_id == order_id,
                                                      OrderEvent.event == "marked_abnormal"))
    assert_settled_once(app, order_id)
