"""The charging flow's rules without a pile: start checks, the spending-limit stop, the start
timeout, missing bills, a bill for an unknown serial, and the staff start screen's permission."""
from datetime import timedelta
from decimal import Decimal

import pytest
from rq import Queue
from sqlalchemy import select

from app.extensions import db, get_redis
from app.gateway.ykc import RealtimeData, TransactionRecord
from app.models import ChargeOrder, Connector, Member, OrderEvent, Pile, PileBill, utcnow
from app.services import charging


def demo_gun(operator_code="MA1NJ0001", index=0):
    from app.models import Operator

    op = db.session.scalar(select(Operator).where(Operator.code == operator_code))
    return db.session.scalars(select(Connector).where(Connector.operator_id == op.id).order_by(Connector.id)).all()[
        index]


def member_of(connector, minimum="0"):
    return db.session.scalar(select(Member).where(Member.operator_id == connector.operator_id,
                                                  Member.balance >= Decimal(minimum)).order_by(Member.id))


def test_start_checks_give_clear_reasons(app):
    with app.app_context():
        gun = demo_gun(index=1)
        member = member_of(gun)
        gun.pile.online, gun.status = False, "offline"
        db.session.commit()
        with pytest.raises(charging.ChargingError, match="offline"):
            charging.start_charge(gun.id, origin="staff", member_id=member.id)
        gun.pile.online, gun.status = True, "charging"
        db.session.commit()
        with pytest.raises(charging.ChargingError, match="not free"):
            charging.start_charge(gun.id, origin="staff", member_id=member.id)
        gun.status = "idle"
        member.status = "frozen"
        db.session.commit()
        with pytest.raises(charging.ChargingError, match="not active"):
            charging.start_charge(gun.id, origin="staff", member_id=member.id)
        member.status = "active"
        db.session.commit()
        with pytest.raises(charging.ChargingError, match="exceeds the balance"):
            charging.start_charge(gun.id, origin="staff", member_id=member.id,
                                  prepaid_amount=member.balance + Decimal("1"))
        # the pile is not connected to any gateway: the order fails with the reason
        with pytest.raises(charging.ChargingError, match="offline"):
            charging.start_charge(gun.id, origin="staff", member_id=member.id)
        failed = db.session.scalar(select(ChargeOrder).where(ChargeOrder.connector_id == gun.id)
                                   .order_by(ChargeOrder.id.desc()))
        assert failed.status == "failed" and "offline" in failed.failure_reason
        gun.pile.online, gun.status = False, "offline"
        db.session.commit()


def new_order(gun, member, status="charging", limit=Decimal("5")):
    order = charging.create_order(gun, origin="app", member=member)
    order.status = status
    db.session.commit()
    charging._remember(order, limit)
    return order


def test_spending_limit_stops_the_session(app):
    with app.app_context():
        gun = demo_gun(index=2)
        order = new_order(gun, member_of(gun, "5"))
        frame = RealtimeData(transaction_serial=order.serial, pile_code=gun.pile.code, gun=f"{gun.gun_no:02d}",
                             status=3, gun_plugged=1, output_voltage=Decimal("400.0"), output_current=Decimal("50.0"),
                             energy=Decimal("4.0000"), amount=Decimal("5.0100"))
        charging.record_realtime(frame)
        charging.record_realtime(frame)  # a second frame over the limit: still one stop
        job = Queue("default", connection=get_redis()).fetch_job(f"autostop-{order.id}")
        assert job is not None and job.args == (order.id, "The spending limit was reached.")
        assert charging.flush_samples() >= 2
        db.session.refresh(order)
        assert order.live_amount == Decimal("5.0100") and order.live_power == Decimal("20.000")
        order.status = "failed"
        db.session.commit()
        charging._forget(order)


def test_start_timeout_fails_the_order(app):
    with app.app_context():
        gun = demo_gun(index=3)
        order = new_order(gun, member_of(gun), status="starting")
        order.start_requested_at = utcnow() - timedelta(seconds=200)
        db.session.commit()
        assert charging.fail_start_timeouts() >= 1
        db.session.refresh(order)
        assert order.status == "failed" and order.failure_reason == "The pile did not start charging in time."


def test_missing_bill_marks_the_order_abnormal(app):
    with app.app_context():
        gun = demo_gun(index=4)
        order = new_order(gun, member_of(gun), status="stopping")
        db.session.add(OrderEvent(order=order, operator_id=order.operator_id, event="stop_requested",
                                  to_status="stopping", created_at=utcnow() - timedelta(minutes=30)))
        db.session.commit()
        assert charging.check_missing_bills() >= 1
        db.session.refresh(order)
        assert order.status == "abnormal" and "No bill" in order.abnormal_reason


def test_bill_for_an_unknown_serial_creates_an_order_for_review(app):
    with app.app_context():
        gun = demo_gun(index=5)
        serial = f"{gun.code}2501010000009999"
        now = utcnow()
        msg = TransactionRecord(transaction_serial=serial, pile_code=gun.pile.code, gun=f"{gun.gun_no:02d}",
                                start_time=now - timedelta(minutes=10), end_time=now, total_energy=Decimal("3.0000"),
                                total_amount=Decimal("4.5000"), meter_start=Decimal("1"), meter_stop=Decimal("4"),
                                transaction_flag=4, transaction_time=now, stop_reason=0x45)
        bill = PileBill(serial=serial, pile_code=gun.pile.code, gun_no=gun.gun_no, raw_hex="68", parsed={},
                        operator_id=gun.operator_id, total_energy=msg.total_energy, total_amount=msg.total_amount)
        db.session.add(bill)
        db.session.commit()
        order = charging.record_bill(bill, msg)
        assert order.status == "abnormal" and order.needs_review and order.start_method == "offline_card"
        assert order.pile_amount == Decimal("4.5000") and bill.order_id == order.id
        assert charging.record_bill(bill, msg).id == order.id  # again: nothing new
        assert db.session.scalar(select(ChargeOrder.id).where(ChargeOrder.serial == serial)) == order.id


def test_staff_start_screen_needs_the_permission(app, login):
    with app.app_context():
        gun_id = demo_gun(index=6).id
        pile_id = db.session.get(Connector, gun_id).pile_id
        db.session.get(Pile, pile_id).online = False
        db.session.commit()
    viewer = login("viewer_a", "staff-pass-1")
    assert viewer.get(f"/connectorview/start/{gun_id}").status_code in (302, 403)
    staff = login("staff_a", "staff-pass-1")
    page = staff.get(f"/connectorview/start/{gun_id}")
    assert page.status_code == 200 and "Start charging" in page.get_data(as_text=True)
    with app.app_context():
        member = member_of(db.session.get(Connector, gun_id), "10")
        member_no = member.member_no
    rv = staff.post(f"/connectorview/start/{gun_id}", data={"member_no": member_no, "prepaid_amount": "10"},
                    follow_redirects=True)
    assert "The pile is offline." in rv.get_data(as_text=True)
    rv = staff.post(f"/connectorview/start/{gun_id}", data={"member_no": "nobody", "prepaid_amount": "10"})
    assert "No member with this number" in rv.get_data(as_text=True)
