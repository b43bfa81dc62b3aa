"""Abnormal orders queue: each staff action recorded with who and when, refused on other statuses."""
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import ChargeOrder, Connector, Member, MeterSample, PileBill, Station, WalletEntry
from app.models.base import utcnow
from app.models.operator import Operator
from app.models.station import PriceTemplate
from app.security.models import User

D = Decimal


# --- factory (same as test_settlement's) ----------------------------------------------------------------------


def bj(text):
    return datetime.strptime(text, "%Y-%m-%d %H:%M") - timedelta(hours=8)


def new_member(balance="100"):
    from app.services.wallet import post_entry

    op = db.session.scalar(select(Operator).where(Operator.code == "MA1NJ0001"))
    m = Member(operator_id=op.id, member_no=f"T{uuid.uuid4().hex[:12]}", nickname="test", status="active")
    db.session.add(m)
    db.session.flush()
    post_entry(m.id, D(balance), "recharge", idempotency_key=f"test:recharge:{m.member_no}")
    db.session.commit()
    return m.id


def make_order(member_id, pile_amount="29.7000", samples=True):
    """Beijing 09:30-10:30, 20 kWh → 29.70 by the platform; the pile bills ``pile_amount``."""
    from app.services import order_numbers, pricing

    conn = db.session.scalars(
        select(Connector).join(Station, Connector.station_id == Station.id)
        .join(PriceTemplate, Station.price_template_id == PriceTemplate.id)
        .join(Operator, Station.operator_id == Operator.id)
        .where(Operator.code == "MA1NJ0001", PriceTemplate.code == "TPL101").order_by(Connector.id)).first()
    start = bj("2024-03-11 09:30")
    order = ChargeOrder(
        order_no=order_numbers.new_order_no(start), serial=order_numbers.new_serial(conn.pile.code, conn.gun_no, start),
        operator_id=conn.operator_id, station_id=conn.station_id, pile_id=conn.pile_id, connector_id=conn.id,
        member_id=member_id, start_method="app", status="stopping", started_at=start,
        ended_at=start + timedelta(hours=1), tariff_snapshot=pricing.snapshot(conn.station.price_template),
        pile_amount=D(pile_amount), pile_energy=D("20.0000"))
    db.session.add(order)
    db.session.flush()
    if samples:
        db.session.add_all(MeterSample(order_id=order.id, at=start + timedelta(minutes=m), energy=D(m) / 3,
                                       power=D("20")) for m in range(0, 61, 15))
    db.session.add(PileBill(operator_id=order.operator_id, serial=order.serial, pile_code=conn.pile.code,
                            gun_no=conn.gun_no, raw_hex="00", order_id=order.id, status="matched",
                            total_energy=order.pile_energy, total_amount=order.pile_amount))
    pricing.reprice_order(order)
    db.session.commit()
    return order.id


def fresh(order_id):
    db.session.expire_all()
    return db.session.get(ChargeOrder, order_id)


def debits(order_id):
    return db.session.scalars(select(WalletEntry).where(WalletEntry.order_id == order_id)).all()


@pytest.fixture
def staff(app):
    with app.app_context():
        return db.session.scalar(select(User.id).where(User.username == "admin"))


def staff_events(order, event):
    return [e for e in order.events if e.event == event]


# --- tests ---------------------------------------------------------------------------------------------------


def test_mark_abnormal_records_reason_and_event(app, staff):
    from app.services.order_admin import abnormal_queue, mark_abnormal

    with app.app_context():
        oid = make_order(new_member())
        order = fresh(oid)
        assert order.status == "finished"
        mark_abnormal(order, "Stuck: no realtime data", user_id=staff)
        db.session.commit()
        order = fresh(oid)
        assert (order.status, order.needs_review) == ("abnormal", True)
        assert order.abnormal_reason == "Stuck: no realtime data"
        [ev] = staff_events(order, "marked_abnormal")
        assert (ev.from_status, ev.to_status, ev.created_by_id) == ("finished", "abnormal", staff)
        assert oid in [o.id for o in db.session.scalars(abnormal_queue())]


def test_settle_with_figures(app, staff):
    from app.services.order_admin import settle_with_figures

    with app.app_context():
        mid = new_member("100")
        oid = make_order(mid, pile_amount="40.0000")
        assert fresh(oid).status == "abnormal"
        before = utcnow()
        result = settle_with_figures(oid, staff, "18.5", "11.4700", "11.1000", remark="agreed with customer")
        assert result.status == "settled" and result.payable_amount == D("22.5700")
        order = fresh(oid)
        assert (order.energy, order.electricity_fee, order.service_fee, order.total_amount) == (
            D("18.5000"), D("11.4700"), D("11.1000"), D("22.5700"))
        [p] = order.periods
        assert (p.level, p.electricity_price, p.service_price) == ("manual", D("0.62000"), D("0.60000"))
        [ev] = staff_events(order, "manual_settle")
        assert ev.created_by_id == staff and ev.created_at >= before - timedelta(seconds=1)
        assert ev.remark == "agreed with customer" and ev.detail["before"]["total_amount"] == "29.7000"
        assert order.reviewed_by_id == staff and not order.needs_review
        [entry] = debits(oid)
        assert entry.amount == D("-22.5700") and db.session.get(Member, mid).balance == D("77.4300")


def test_close_without_charge(app, staff):
    from app.services.order_admin import close_without_charge, closed_without_charge

    with app.app_context():
        mid = new_member("100")
        oid = make_order(mid, pile_amount="40.0000")
        result = close_without_charge(oid, staff, remark="pile fault, customer not charged")
        assert (result.status, result.payable_amount, result.paid_amount) == ("settled", D("0"), D("0"))
        order = fresh(oid)
        assert order.total_amount == D("29.7000")                   # measured figures kept as facts
        assert closed_without_charge(order)
        [ev] = staff_events(order, "reviewed")
        assert ev.created_by_id == staff and ev.detail["action"] == "close_without_charge" and ev.created_at
        assert staff_events(order, "settled")[0].created_by_id == staff
        assert debits(oid) == [] and db.session.get(Member, mid).balance == D("100.0000")


def test_reprice_moves_a_now_agreeing_order_to_settlement(app, staff):
    from app.services.order_admin import reprice

    with app.app_context():
        mid = new_member("100")
        oid = make_order(mid, pile_amount="40.0000")
        # still disagreeing: stays abnormal, the attempt is recorded
        outcome = reprice(oid, staff, remark="first look")
        assert not outcome.ok and fresh(oid).status == "abnormal"
        # the pile's figure is corrected (e.g. the resent bill) → within tolerance → settled
        order = fresh(oid)
        order.pile_amount = D("29.7100")
        db.session.commit()
        result = reprice(oid, staff, remark="bill corrected")
        assert result.status == "settled" and result.payable_amount == D("29.7000")
        order = fresh(oid)
        reviews = staff_events(order, "reviewed")
        assert [e.detail["ok"] for e in reviews] == [False, True]
        assert all(e.created_by_id == staff and e.created_at for e in reviews)
        assert len(debits(oid)) == 1 and db.session.get(Member, mid).balance == D("70.3000")


def test_actions_refused_on_other_statuses(app, staff):
    from app.services.order_admin import OrderActionError, close_without_charge, reprice, settle_with_figures
    from app.services.settlement import settle_order

    with app.app_context():
        oid = make_order(new_member())
        settle_order(oid)
        for action in (lambda: close_without_charge(oid, staff), lambda: reprice(oid, staff),
                       lambda: settle_with_figures(oid, staff, "1", "1", "1")):
            with pytest.raises(OrderActionError, match="only possible for abnormal or finished"):
                action()
        with pytest.raises(OrderActionError, match="does not exist"):
            reprice(10**9, staff)
        with pytest.raises(OrderActionError, match="zero or more"):
            settle_with_figures(make_order(new_member(), pile_amount="50"), staff, "-1", "0", "0")
        assert len(debits(oid)) == 1
