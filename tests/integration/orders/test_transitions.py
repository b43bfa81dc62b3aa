"""Order status moves through one transition function, each with exactly one order event; illegal moves
are refused; services never roll back a transaction they did not open.

- pricing a stopped order writes its ``priced`` event (stopping → finished);
- a whole session (start → charging → stop → bill → settled) logs one event per move, in a chain;
- a remote start over TCP (the gateway's hook and the command reply both see the 0x33) logs
  ``start_sent`` exactly once;
- illegal moves (a settled order marked abnormal or re-priced) raise and change nothing;
- a refused settlement / staff action leaves the caller's pending and flushed work in place."""
from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.gateway.ykc import RealtimeData, RemoteStartReply, TransactionRecord
from app.models import ChargeOrder, Connector, Member, MeterSample, OrderEvent, Pile, PileBill, Station, utcnow
from app.models.operator import Operator
from app.services import charging, order_state, pricing
from app.services.order_state import IllegalTransition
from tests.integration.gateway.conftest import GatewayProcess, fetch, wait_until
from tests.integration.gateway.ykc_client import PileClient

PREFIX = "79000000"            # test piles 790000000000nn


@pytest.fixture(scope="module")
def station_id(app):
    with app.app_context():
        op = db.session.scalar(select(Operator).where(Operator.code == "MA1NJ0001"))
        return db.session.scalar(select(Station.id).where(Station.operator_id == op.id,
                                                          Station.price_template_id.isnot(None)).order_by(Station.id))


def new_pile(station_id) -> str:
    """A two-gun YKC pile of its own on a demo station (its code is returned)."""
    station = db.session.get(Station, station_id)
    code = f"{PREFIX}{uuid.uuid4().int % 10**6:06d}"
    pile = Pile(operator_id=station.operator_id, station=station, code=code, name=f"transitions {code}",
                protocol="ykc15", gun_count=2)
    for gun in (1, 2):
        pile.connectors.append(Connector(operator_id=station.operator_id, station=station, gun_no=gun,
                                         code=f"{code}{gun:02d}", name=f"{code}-{gun}"))
    db.session.add(pile)
    db.session.commit()
    return code


def gun(code, gun_no=1):
    return db.session.scalar(select(Connector).where(Connector.code == f"{code}{gun_no:02d}"))


def new_member(balance="200"):
    from app.services.wallet import post_entry

    op = db.session.scalar(select(Operator).where(Operator.code == "MA1NJ0001"))
    m = Member(operator_id=op.id, member_no=f"T{uuid.uuid4().hex[:12]}", nickname="before", status="active")
    db.session.add(m)
    db.session.flush()
    post_entry(m.id, D(balance), "recharge", idempotency_key=f"test:recharge:{m.member_no}")
    db.session.commit()
    return m.id


def events(order_id):
    db.session.expire_all()
    return db.session.scalars(select(OrderEvent).where(OrderEvent.order_id == order_id)
                              .order_by(OrderEvent.id)).all()


def moves(order_id):
    return [(e.event, e.from_status, e.to_status) for e in events(order_id)
            if e.from_status is not None and e.from_status != e.to_status]


def stopped_order(station_id, energy=D("20.0000")):
    """An order in 'stopping' with samples over one hour and the pile's bill agreeing with them."""
    code = new_pile(station_id)
    member_id = new_member()
    order = charging.create_order(gun(code), origin="app", member=db.session.get(Member, member_id))
    start = utcnow() - timedelta(hours=2)
    order.started_at, order.ended_at = start, start + timedelta(hours=1)
    charging.set_status(order, "charging", "started")
    charging.set_status(order, "stopping", "stopped")
    db.session.flush()
    samples = [(start + timedelta(minutes=m), energy * m / 60) for m in range(0, 61, 15)]
    db.session.add_all(MeterSample(order_id=order.id, at=at, energy=e, power=D("20")) for at, e in samples)
    platform = pricing.price_samples(order.tariff_snapshot, samples, started_at=start, ended_at=order.ended_at,
                                     final_energy=energy)
    order.pile_energy, order.pile_amount = energy, platform.total_amount
    db.session.add(PileBill(operator_id=order.operator_id, serial=order.serial, pile_code=code, gun_no=1,
                            raw_hex="00", order_id=order.id, status="matched", total_energy=energy,
                            total_amount=platform.total_amount))
    db.session.commit()
    return order.id


# --- one event per move --------------------------------------------------------------------------------------


def test_pricing_a_stopped_order_writes_its_priced_event(app, station_id):
    with app.app_context():
        oid = stopped_order(station_id)
        order = db.session.get(ChargeOrder, oid)
        result = pricing.reprice_order(order)
        db.session.commit()
        assert result.ok and db.session.get(ChargeOrder, oid).status == "finished"
        [priced] = [e for e in events(oid) if e.to_status == "finished"]
        assert (priced.event, priced.from_status, priced.created_by_id) == ("priced", "stopping", None)
        assert priced.detail["total_amount"] == str(result.breakdown.total_amount)
        assert priced.detail["comparison"]["ok"] is True


def test_a_whole_session_logs_one_event_per_move(app, station_id):
    from app.services.settlement import settle_order

    with app.app_context():
        code = new_pile(station_id)
        connector = gun(code, 2)
        member_id = new_member()
        order = charging.create_order(connector, origin="app", member=db.session.get(Member, member_id))
        db.session.commit()
        charging._remember(order, D("100"))
        oid, serial = order.id, order.serial
        t0 = utcnow() - timedelta(minutes=10)
        frame = dict(transaction_serial=serial, pile_code=code, gun="02", gun_plugged=1,
                     output_voltage=D("400.0"), output_current=D("50.0"))
        charging.record_realtime(RealtimeData(status=3, energy=D("0.0000"), **frame), at=t0)
        charging.record_realtime(RealtimeData(status=3, energy=D("0.0000"), **frame), at=t0)   # again: no move
        charging.record_realtime(RealtimeData(status=3, energy=D("1.5000"), **frame), at=t0 + timedelta(minutes=9))
        with pytest.raises(charging.ChargingError, match="offline"):   # no gateway holds the pile
            charging.stop_charge(oid, by="staff", user_id=1)
        charging.flush_samples()
        order = db.session.get(ChargeOrder, oid)
        end = t0 + timedelta(minutes=9, seconds=10)
        amount = pricing.price_samples(order.tariff_snapshot, [(t0, D("0")), (t0 + timedelta(minutes=9), D("1.5"))],
                                       started_at=order.started_at, ended_at=end,
                                       final_energy=D("1.5000")).total_amount
        msg = TransactionRecord(transaction_serial=serial, pile_code=code, gun="02", start_time=order.started_at,
                                end_time=end, total_energy=D("1.5000"), total_lossy_energy=D("1.5000"),
                                total_amount=amount, meter_start=D("10"), meter_stop=D("11.5"), transaction_flag=1,
                                transaction_time=end, stop_reason=0x40)
        bill = PileBill(serial=serial, pile_code=code, gun_no=2, raw_hex="68", parsed={}, operator_id=order.operator_id,
                        total_energy=msg.total_energy, total_amount=msg.total_amount)
        db.session.add(bill)
        db.session.commit()
        charging.record_bill(bill, msg)
        assert settle_order(oid).status == "settled"
        assert moves(oid) == [("started", "starting", "charging"), ("stop_requested", "charging", "stopping"),
                              ("priced", "stopping", "finished"), ("settled", "finished", "settled")]
        log = events(oid)
        assert [e.event for e in log if e.event in ("created", "bill_received")] == ["created", "bill_received"]
        # every event carries the status it left the order in, and each move starts where the last ended
        chain = moves(oid)
        assert all(a[2] == b[1] for a, b in zip(chain, chain[1:], strict=False))


def test_remote_start_over_tcp_logs_start_sent_once(app, station_id):
    """The 0x33 reaches the platform twice — as the command's reply and through the gateway's hook."""
    with app.app_context():
        code = new_pile(station_id)
        connector_id = gun(code).id
        member_id = new_member()
    redis = app.extensions["redis"]
    node = GatewayProcess(app, "gw-transitions", CHARGING_HOOKS="app.services.charging:OrderHooks",
                          CHARGING_SAMPLE_FLUSH_INTERVAL="0.2", GATEWAY_COMMAND_TIMEOUT="5").wait_ready(redis)
    outcome = {}
    try:
        with PileClient(node.port, code) as pile:
            assert pile.login().result == 0
            pile.send(RealtimeData(transaction_serial="0" * 32, pile_code=code, gun="01", status=2, gun_plugged=1))
            wait_until(lambda: fetch(app, select(Connector.status, Pile.online).join(Pile).where(
                Connector.id == connector_id))[0] == ("occupied", True), timeout=10, message="gun plugged, online")

            def start():
                with app.app_context():
                    try:
                        outcome["order_id"] = charging.start_charge(connector_id, origin="staff", member_id=member_id,
                                                                    user_id=1).id
                    except Exception as exc:  # reported below
                        outcome["error"] = exc

            thread = threading.Thread(target=start)
            thread.start()
            _, command = pile.expect(0x34, timeout=10)
            serial = command.transaction_serial
            pile.send(RemoteStartReply(transaction_serial=serial, pile_code=code, gun="01", result=1, failure_reason=0))
            thread.join(15)
            assert "error" not in outcome, outcome.get("error")
            oid = outcome["order_id"]
            # a charging 0x13 after the 0x33 on the same connection: once it has moved the order, the
            # gateway's hook has handled the 0x33 before it
            pile.send(RealtimeData(transaction_serial=serial, pile_code=code, gun="01", status=3, gun_plugged=1,
                                   output_voltage=D("400.0"), output_current=D("10.0"), energy=D("0.0000")))
            wait_until(lambda: fetch(app, select(ChargeOrder.status).where(ChargeOrder.id == oid))[0][0] == "charging",
                       timeout=10, message="charging")
            sent = fetch(app, select(func.count()).select_from(OrderEvent).where(OrderEvent.order_id == oid,
                                                                                 OrderEvent.event == "start_sent"))
            assert sent[0][0] == 1
    finally:
        node.stop()
        with app.app_context():
            order = db.session.get(ChargeOrder, outcome["order_id"]) if "order_id" in outcome else None
            if order is not None and order.status in ("starting", "charging"):
                from app.services.order_admin import mark_abnormal

                mark_abnormal(order, "test pile went away")
                db.session.commit()
                charging._forget(order)


# --- illegal moves -------------------------------------------------------------------------------------------


def test_illegal_moves_are_refused_and_change_nothing(app, station_id):
    from app.services.order_admin import mark_abnormal
    from app.services.settlement import settle_order

    with app.app_context():
        oid = stopped_order(station_id)
        pricing.reprice_order(db.session.get(ChargeOrder, oid))
        db.session.commit()
        settle_order(oid)
        before = [(e.id, e.event) for e in events(oid)]
        order = db.session.get(ChargeOrder, oid)
        figures = (order.energy, order.total_amount, order.payable_amount, order.discount_total)
        with pytest.raises(IllegalTransition, match="cannot move from settled to abnormal"):
            mark_abnormal(order, "late doubt")
        assert order.status == "settled"
        db.session.rollback()
        # a late bill re-pricing a settled order: nothing moves, the figures stay final
        result = pricing.reprice_order(db.session.get(ChargeOrder, oid))
        db.session.commit()
        assert not result.ok and "settled" in result.reason
        order = db.session.get(ChargeOrder, oid)
        assert order.status == "settled"
        assert (order.energy, order.total_amount, order.payable_amount, order.discount_total) == figures
        with pytest.raises(IllegalTransition):
            order_state.transition(order, "charging", "started")
        with pytest.raises(IllegalTransition):
            charging.set_status(order, "finished", "priced")
        db.session.rollback()
        assert [(e.id, e.event) for e in events(oid)] == before


# --- savepoints: the caller's work survives a failing call ---------------------------------------------------


def test_a_refused_settlement_keeps_the_callers_pending_work(app, station_id):
    from app.services.settlement import NotSettleable, settle_order

    with app.app_context():
        oid = stopped_order(station_id)                   # stopping: not settleable
        member_id = new_member()
        member = db.session.get(Member, member_id)
        member.nickname = "pending"                       # the caller's unflushed change
        with pytest.raises(NotSettleable):
            settle_order(oid)
        assert member.nickname == "pending"
        db.session.commit()
        db.session.expire_all()
        assert db.session.get(Member, member_id).nickname == "pending"
        assert db.session.get(ChargeOrder, oid).status == "stopping"

        # flushed but not committed work survives too
        member = db.session.get(Member, member_id)
        member.nickname = "flushed"
        db.session.flush()
        with pytest.raises(NotSettleable):
            settle_order(oid)
        db.session.commit()
        db.session.expire_all()
        assert db.session.get(Member, member_id).nickname == "flushed"

        # a new row added after a commit (no transaction open yet) is the caller's work too
        operator_id = db.session.get(ChargeOrder, oid).operator_id
        db.session.commit()
        number = f"T{uuid.uuid4().hex[:12]}"
        db.session.add(Member(operator_id=operator_id, member_no=number, nickname="new", status="active"))
        with pytest.raises(NotSettleable):
            settle_order(oid)
        db.session.commit()
        assert db.session.scalar(select(Member.nickname).where(Member.member_no == number)) == "new"

        # called with nothing open, a refused call leaves nothing open (its lock is released)
        db.session.commit()
        with pytest.raises(NotSettleable):
            settle_order(oid)
        assert not order_state.in_transaction(db.session)


def test_refused_staff_actions_keep_the_callers_pending_work(app, station_id):
    from app.services.order_admin import OrderActionError, close_without_charge, reprice, settle_with_figures

    with app.app_context():
        oid = stopped_order(station_id)                   # stopping: not actionable
        member_id = new_member()
        for n, action in enumerate((lambda: reprice(oid, 1), lambda: close_without_charge(oid, 1),
                                    lambda: settle_with_figures(oid, 1, "1", "1", "1"))):
            db.session.get(Member, member_id).nickname = f"pending {n}"
            with pytest.raises(OrderActionError, match="only possible for abnormal or finished"):
                action()
            db.session.commit()
            db.session.expire_all()
            assert db.session.get(Member, member_id).nickname == f"pending {n}"
        assert db.session.get(ChargeOrder, oid).status == "stopping"
        assert moves(oid) == [("started", "starting", "charging"), ("stopped", "charging", "stopping")]


def test_a_settlement_inside_the_callers_transaction_commits_both(app, station_id):
    from app.services.settlement import settle_order

    with app.app_context():
        oid = stopped_order(station_id)
        pricing.reprice_order(db.session.get(ChargeOrder, oid))
        db.session.commit()
        member_id = new_member()
        db.session.get(Member, member_id).nickname = "with the settlement"
        assert settle_order(oid).status == "settled"
        db.session.rollback()                             # nothing left to roll back: it was committed
        db.session.expire_all()
        assert db.session.get(Member, member_id).nickname == "with the settlement"
        assert db.session.get(ChargeOrder, oid).status == "settled"
