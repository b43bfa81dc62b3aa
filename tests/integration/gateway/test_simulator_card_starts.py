"""The demo piles' charges (issue 12 §1): with ``card_starts`` a virtual pile's local charges begin with
a card swipe (0x31) the platform authorises (0x32), so the order is created, priced from the pile's
realtime data and bill, and settled from the member's wallet by the platform's own code; a swipe refused
for balance is reported to ``on_refused`` (the demo's recharge), and the next swipe then charges."""
from __future__ import annotations

import random
from decimal import Decimal

import gevent
import pytest
from sqlalchemy import select

from app.extensions import db
from app.gateway.simulator import SimConfig, Simulator
from app.gateway.simulator.runner import DemoTopUp
from app.gateway.ykc import codes
from app.models import Card, ChargeOrder, Member, Operator, Pile, WalletEntry
from app.services import wallet
from tests.integration.gateway.conftest import WorkerProcess, fetch, wait_until


@pytest.fixture(scope="module")
def worker(app):
    proc = WorkerProcess(app, "sim-cards")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def card_member(app, piles):
    """A member of the test piles' operator, balance 3 yuan (below the start minimum), with a card."""
    code = piles()
    with app.app_context():
        pile = db.session.scalar(select(Pile).where(Pile.code == code))
        operator = db.session.get(Operator, pile.operator_id)
        n = random.randrange(10**6)
        member = Member(operator=operator, member_no=f"SIM{n:06d}", username=f"sim{n:06d}", nickname="sim",
                        phone=f"177{n:08d}", status="active")
        db.session.add(member)
        db.session.flush()
        physical = f"{0x5A5A000000000000 + n:016X}"
        db.session.add(Card(operator=operator, member=member, logical_no=f"{7700000000000000 + n:016d}",
                            physical_no=physical, card_type="online"))
        wallet.post_entry(member.id, Decimal("3.0000"), "recharge", remark="demo recharge")
        db.session.commit()
        return {"code": code, "member_id": member.id, "card": bytes.fromhex(physical)}


def test_a_swipe_refused_for_balance_tops_up_then_the_charge_is_settled(app, gateway, worker, card_member):
    refused = []
    topup = DemoTopUp()

    def on_refused(card, reason):
        refused.append(reason)
        topup(card, reason)

    config = SimConfig(port=gateway.port, heartbeat=1, realtime_charging=0.5, realtime_idle=5,
                       charging_ratio=1.0, charge_minutes=0.1, idle_minutes=0.02, bill_retry=2, card_starts=True)
    sim = Simulator([(card_member["code"], 1)], config, seed=3, cards={card_member["code"]: [card_member["card"]]},
                    on_refused=on_refused)
    runner = gevent.spawn(sim.run, None, 0)

    def settled():
        return fetch(app, select(ChargeOrder).where(ChargeOrder.member_id == card_member["member_id"],
                                                    ChargeOrder.status == "settled"))

    try:
        rows = wait_until(lambda: (gevent.sleep(0.05), settled())[1], timeout=60, message="a settled card order")
    except AssertionError:
        orders = fetch(app, select(ChargeOrder.status, ChargeOrder.abnormal_reason, ChargeOrder.failure_reason)
                       .where(ChargeOrder.member_id == card_member["member_id"]))
        raise AssertionError(f"{sim.stats.line()} refused={refused} orders={orders} {worker.log()}") from None
    finally:
        runner.kill(KeyboardInterrupt)
        gevent.joinall([runner], timeout=10)
    assert refused and refused[0] == codes.AuthFailure.INSUFFICIENT_BALANCE
    order = rows[0][0]
    assert order.start_method == "card" and order.card_id is not None and order.pay_type == "wallet"
    assert order.total_amount > 0 and order.paid_amount == order.payable_amount
    with app.app_context():
        kinds = [e.kind for e in db.session.scalars(select(WalletEntry).where(
            WalletEntry.member_id == card_member["member_id"]).order_by(WalletEntry.id))]
        assert kinds[:2] == ["recharge", "recharge"] and "consume" in kinds       # the demo top-up, then the charge
        member = db.session.get(Member, card_member["member_id"])
        assert member.balance == wallet.ledger_balance(member.id)
