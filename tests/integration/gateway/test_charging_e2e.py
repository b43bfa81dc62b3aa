"""Charging orders end to end over real TCP: the gateway process runs the order hooks, piles are
the simulator (a separate process) or a scripted YKC client, settlement runs in a real RQ worker.

- staff start → starting → charging (live figures move) → stop → bill → settled, one debit;
- the same bill sent three times → one settlement;
- the gateway restarted mid-session, the pile re-sending its bill after reconnecting → one
  settlement;
- a card swiped at the pile (0x31) is accepted for a known card and refused for an unknown one;
- a fleet card with no member, paid by its organization, starts against the organization's balance
  and settles from the organization's account (refused when the organization is disabled)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.gateway.registry import Registry
from app.gateway.ykc import PileStartRequest, RealtimeData, TransactionRecord, utcnow
from app.models import (
    Card,
    ChargeOrder,
    Connector,
    Member,
    Organization,
    OrganizationEntry,
    Pile,
    PileBill,
    WalletEntry,
)
from app.services import charging
from app.services.wallet import ledger_balance
from tests.integration.gateway.conftest import ROOT, TOU, GatewayProcess, WorkerProcess, fetch, wait_until
from tests.integration.gateway.ykc_client import PileClient

pytestmark = pytest.mark.usefixtures("money_invariants")  # checked after every fault

HOOKS = {"CHARGING_HOOKS": "app.services.charging:OrderHooks", "CHARGING_SAMPLE_FLUSH_INTERVAL": "0.2",
         "GATEWAY_COMMAND_TIMEOUT": "5"}


@pytest.fixture(scope="module")
def order_gateway(app, redis, gw_station):
    node = GatewayProcess(app, "gw-orders", **HOOKS).wait_ready(redis)
    yield node
    node.stop()


@pytest.fixture(scope="module")
def worker(app):
    proc = WorkerProcess(app, "e2e")
    yield proc
    proc.stop()


def rich_member(app, operator_id, minimum=Decimal("50")):
    with app.app_context():
        member = db.session.scalar(select(Member).where(Member.operator_id == operator_id, Member.status == "active",
                                                        Member.balance >= minimum).order_by(Member.id))
        return member.id, member.balance


def order_row(app, order_id):
    with app.app_context():
        order = db.session.get(ChargeOrder, order_id)
        db.session.expunge(order)
        return order


def debits(app, order_id):
    return fetch(app, select(WalletEntry).where(WalletEntry.order_id == order_id))


def gun(app, code, gun_no=1):
    return fetch(app, select(Connector).where(Connector.code == f"{code}{gun_no:02d}"))[0][0]


def test_staff_charge_end_to_end_with_the_simulator(app, redis, order_gateway, worker, piles, tmp_path):
    code = piles()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.gateway.simulator", "--port", str(order_gateway.port), "--codes", code,
         "--guns", "2", "--heartbeat", "1", "--realtime-charging", "0.3", "--realtime-idle", "5",
         "--bill-retry", "2", "--duration", "120", "--progress", "0"],
        cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: Registry(redis).owner(code), timeout=20, message="simulated pile online")
        connector = gun(app, code)
        wait_until(lambda: fetch(app, select(Connector.status, Pile.online).join(Pile).where(
            Connector.id == connector.id))[0] == ("idle", True), timeout=15, message="gun idle, pile online")
        member_id, _ = rich_member(app, connector.operator_id)
        with app.app_context():
            order = charging.start_charge(connector.id, origin="staff", member_id=member_id, user_id=1)
            order_id = order.id
            assert order.status in ("starting", "charging")
        wait_until(lambda: order_row(app, order_id).status == "charging", timeout=20, message="charging")
        wait_until(lambda: (order_row(app, order_id).live_energy or 0) > 0, timeout=20, message="live energy")
        first = order_row(app, order_id).live_energy
        wait_until(lambda: order_row(app, order_id).live_energy > first, timeout=20, message="live figures move")
        with app.app_context():
            charging.stop_charge(order_id, by="staff", user_id=1)
        wait_until(lambda: order_row(app, order_id).status == "settled", timeout=40, message="settled")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    order = order_row(app, order_id)
    assert order.energy > 0 and order.total_amount > 0
    assert order.total_amount == order.electricity_fee + order.service_fee
    assert abs(order.total_amount - order.pile_amount) <= Decimal("0.05")
    entries = debits(app, order_id)
    assert len(entries) == 1
    assert entries[0][0].amount == -order.payable_amount == -order.total_amount
    with app.app_context():
        member = db.session.get(Member, member_id)
        assert member.balance == ledger_balance(member_id)
    assert order.pay_status == "paid" and order.paid_amount == order.total_amount


def started_order(app, code, member_id):
    """An order in 'charging' on gun 1 of ``code`` (as after a remote start), with two samples."""
    with app.app_context():
        connector = db.session.scalar(select(Connector).where(Connector.code == f"{code}01"))
        order = charging.create_order(connector, origin="app", member=db.session.get(Member, member_id))
        order.status, order.started_at = "charging", utcnow() - timedelta(seconds=30)
        db.session.commit()
        charging._remember(order, Decimal("100"))
        return order.id, order.serial


def tariff_now():
    """Electricity + service price (yuan/kWh) of the test station's template right now."""
    local = utcnow() + timedelta(hours=8)
    minute = local.hour * 60 + local.minute
    for begin, stop, _, ep, sp in TOU:
        if begin <= minute < stop:
            return Decimal(ep) + Decimal(sp)
    raise AssertionError(minute)


# small enough that a period boundary between the samples stays within the pricing tolerance
ENERGY = Decimal("0.0300")


def bill_for(code, serial, energy=ENERGY):
    now = utcnow()
    amount = (energy * tariff_now()).quantize(Decimal("0.0001"))
    return TransactionRecord(transaction_serial=serial, pile_code=code, gun="01",
                             start_time=now - timedelta(seconds=30), end_time=now, flat_price=Decimal("1.22"),
                             flat_energy=energy, flat_lossy_energy=energy, flat_amount=amount,
                             meter_start=Decimal("100"), meter_stop=Decimal("100") + energy, total_energy=energy,
                             total_lossy_energy=energy, total_amount=amount, transaction_flag=1,
                             transaction_time=now, stop_reason=0x40)


def realtime(code, serial, energy):
    return RealtimeData(transaction_serial=serial, pile_code=code, gun="01", status=3, gun_plugged=1,
                        output_voltage=Decimal("400.0"), output_current=Decimal("100.0"), soc=50, energy=energy)


def test_same_bill_three_times_settles_once(app, order_gateway, worker, piles):
    code = piles()
    with app.app_context():
        operator_id = db.session.scalar(select(Connector.operator_id).where(Connector.code == f"{code}01"))
    member_id, _ = rich_member(app, operator_id)
    order_id, serial = started_order(app, code, member_id)
    with PileClient(order_gateway.port, code) as pile:
        assert pile.login().result == 0
        pile.send(realtime(code, serial, Decimal("0.0000")))
        pile.send(realtime(code, serial, ENERGY))
        for _ in range(3):
            pile.send(bill_for(code, serial))
            assert pile.expect(0x40, transaction_serial=serial)[1].result == 0
    wait_until(lambda: order_row(app, order_id).status == "settled", timeout=30, message="settled")
    assert fetch(app, select(func.count()).select_from(PileBill).where(PileBill.serial == serial))[0][0] == 1
    entries = debits(app, order_id)
    order = order_row(app, order_id)
    assert len(entries) == 1 and entries[0][0].amount == -order.total_amount and order.total_amount > 0


def test_gateway_restart_mid_session_and_resent_bill_settle_once(app, redis, gw_station, worker, piles):
    code = piles()
    with app.app_context():
        operator_id = db.session.scalar(select(Connector.operator_id).where(Connector.code == f"{code}01"))
    member_id, _ = rich_member(app, operator_id)
    order_id, serial = started_order(app, code, member_id)
    first = GatewayProcess(app, "gw-restart-1", **HOOKS).wait_ready(redis)
    try:
        with PileClient(first.port, code) as pile:
            assert pile.login().result == 0
            pile.send(realtime(code, serial, Decimal("0.0000")))
            pile.send(realtime(code, serial, ENERGY))
            pile.send(bill_for(code, serial))
            pile.expect(0x40, transaction_serial=serial)
            first.proc.send_signal(signal.SIGKILL)              # the gateway dies mid-session
            first.proc.wait(10)
    finally:
        first.stop()
    second = GatewayProcess(app, "gw-restart-2", **HOOKS).wait_ready(redis)
    try:
        with PileClient(second.port, code) as pile:               # the pile reconnects and resends its bill
            assert pile.login().result == 0
            pile.send(bill_for(code, serial))
            assert pile.expect(0x40, transaction_serial=serial)[1].result == 0
        wait_until(lambda: order_row(app, order_id).status == "settled", timeout=30, message="settled")
    finally:
        second.stop()
    assert fetch(app, select(func.count()).select_from(PileBill).where(PileBill.serial == serial))[0][0] == 1
    entries = debits(app, order_id)
    assert len(entries) == 1 and entries[0][0].amount == -order_row(app, order_id).total_amount


def test_card_at_the_pile_is_accepted_or_refused(app, order_gateway, piles):
    code = piles()
    with app.app_context():
        operator_id = db.session.scalar(select(Connector.operator_id).where(Connector.code == f"{code}01"))
        card = db.session.scalar(select(Card).join(Member, Card.member_id == Member.id).where(
            Card.operator_id == operator_id, Card.status == "active", Member.balance >= 10).order_by(Card.id))
        physical, logical = card.physical_no, card.logical_no
    with PileClient(order_gateway.port, code) as pile:
        assert pile.login().result == 0
        pile.send(RealtimeData(transaction_serial="0" * 32, pile_code=code, gun="01", status=2, gun_plugged=1))
        wait_until(lambda: fetch(app, select(Connector.status, Pile.online).join(Pile).where(
            Connector.code == f"{code}01"))[0] == ("occupied", True), timeout=10, message="gun plugged, pile online")
        pile.send(PileStartRequest(pile_code=code, gun="01", start_mode=1, account_or_card=bytes.fromhex(physical)))
        _, answer = pile.expect(0x32)
        assert answer.auth_result == 1 and answer.logical_card == logical and answer.balance > 0
        assert answer.transaction_serial.startswith(code + "01")
        orders = fetch(app, select(ChargeOrder).where(ChargeOrder.serial == answer.transaction_serial))
        assert orders and orders[0][0].start_method == "card" and orders[0][0].status == "starting"
        pile.send(PileStartRequest(pile_code=code, gun="02", start_mode=1,
                                   account_or_card=bytes.fromhex("00000000DEADBEEF")))
        _, refused = pile.expect(0x32, gun="02")
        assert refused.auth_result == 0 and refused.failure_reason == 0x01


def test_a_fleet_card_without_member_charges_its_organization(app, order_gateway, worker, piles):
    """Issue 11 §4: a card of an organization that pays for its cards needs no member. Swiped at the pile
    it is told the organization's balance; the bill is paid from the organization's account; the card
    of a disabled organization is refused."""
    import uuid

    from app.security.scope import platform_scope
    from app.services import organizations

    code = piles()
    with app.app_context(), platform_scope("test-fleet-card"):
        operator_id = db.session.scalar(select(Connector.operator_id).where(Connector.code == f"{code}01"))
        org = Organization(operator_id=operator_id, name=f"车队{uuid.uuid4().hex[:6]}", pay_mode="organization",
                           enabled=True)
        db.session.add(org)
        db.session.flush()
        organizations.post_entry(org.id, Decimal("80"), "topup", idempotency_key=f"test:fleet:{org.id}",
                                 remark="对公转账")
        n = uuid.uuid4().int
        card = Card(operator_id=operator_id, organization_id=org.id, logical_no=f"{n % 10**16:016d}",
                    physical_no=f"{n % 16**16:016X}", card_type="online", status="active")
        db.session.add(card)
        db.session.commit()
        org_id, physical, logical = org.id, card.physical_no, card.logical_no
    with PileClient(order_gateway.port, code) as pile:
        assert pile.login().result == 0
        for gun in ("01", "02"):
            pile.send(RealtimeData(transaction_serial="0" * 32, pile_code=code, gun=gun, status=2, gun_plugged=1))
        wait_until(lambda: fetch(app, select(func.count()).select_from(Connector).where(
            Connector.code.like(f"{code}%"), Connector.status == "occupied"))[0][0] == 2, timeout=10,
            message="guns plugged")
        pile.send(PileStartRequest(pile_code=code, gun="01", start_mode=1, account_or_card=bytes.fromhex(physical)))
        _, answer = pile.expect(0x32)
        assert (answer.auth_result, answer.logical_card, answer.balance) == (1, logical, Decimal("80.00"))
        serial = answer.transaction_serial
        order = fetch(app, select(ChargeOrder).where(ChargeOrder.serial == serial))[0][0]
        assert (order.member_id, order.organization_id, order.start_method) == (None, org_id, "card")
        pile.send(realtime(code, serial, Decimal("0.0000")))
        pile.send(realtime(code, serial, ENERGY))
        pile.send(bill_for(code, serial))
        assert pile.expect(0x40, transaction_serial=serial)[1].result == 0
        wait_until(lambda: order_row(app, order.id).status == "settled", timeout=30, message="settled")
        settled = order_row(app, order.id)
        assert settled.pay_type == "organization" and settled.total_amount > 0
        entries = fetch(app, select(OrganizationEntry).where(OrganizationEntry.order_id == order.id))
        assert [(e.kind, e.amount) for (e,) in entries] == [("consume", -settled.payable_amount)]
        assert fetch(app, select(Organization.balance).where(Organization.id == org_id))[0][0] == \
            Decimal("80") - settled.payable_amount
        assert debits(app, order.id) == []                      # no member wallet was touched
        with app.app_context(), platform_scope("test-fleet-card"):
            db.session.get(Organization, org_id).enabled = False
            db.session.commit()
        pile.send(PileStartRequest(pile_code=code, gun="02", start_mode=1, account_or_card=bytes.fromhex(physical)))
        _, refused = pile.expect(0x32, gun="02")
        assert refused.auth_result == 0
