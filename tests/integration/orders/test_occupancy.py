"""Occupancy (占位) with time compressed: every hook and the accrual job get ``now`` from the test.

Demo rule of the occupancy stations: 15 free minutes, 0.10 yuan per minute, cap 30 yuan.
"""
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.extensions import db, get_redis
from app.models import ChargeOrder, Connector, Member, MeterSample, OccupancyOrder, Station, WalletEntry
from app.models.base import utcnow
from app.models.operator import Operator

D = Decimal


# --- factory (as in test_settlement, on an occupancy station) ------------------------------------------------


def new_member(balance="100"):
    from app.services.wallet import post_entry

    op = db.session.scalar(select(Operator).where(Operator.code == "MA1NJ0001"))
    m = Member(operator_id=op.id, member_no=f"T{uuid.uuid4().hex[:12]}", nickname="test", status="active")
    db.session.add(m)
    db.session.flush()
    post_entry(m.id, D(balance), "recharge", idempotency_key=f"test:recharge:{m.member_no}")
    db.session.commit()
    return m.id


def occupancy_connector(index=0):
    conns = db.session.scalars(
        select(Connector).join(Station, Connector.station_id == Station.id)
        .join(Operator, Station.operator_id == Operator.id)
        .where(Operator.code == "MA1NJ0001", Station.occupancy_enabled.is_(True)).order_by(Connector.id)).all()
    return conns[index]


def settled_order(member_id, conn, ended_at):
    """A 30-minute session ending at ``ended_at`` (naive UTC), priced and settled."""
    from app.services import order_numbers, pricing
    from app.services.settlement import settle_order

    start = ended_at - timedelta(minutes=30)
    order = ChargeOrder(
        order_no=order_numbers.new_order_no(start), serial=order_numbers.new_serial(conn.pile.code, conn.gun_no, start),
        operator_id=conn.operator_id, station_id=conn.station_id, pile_id=conn.pile_id, connector_id=conn.id,
        member_id=member_id, start_method="app", status="stopping", started_at=start, ended_at=ended_at,
        tariff_snapshot=pricing.snapshot(conn.station.price_template))
    db.session.add(order)
    db.session.flush()
    db.session.add_all(MeterSample(order_id=order.id, at=start + timedelta(minutes=m), energy=D(m) / 6,
                                   power=D("10")) for m in (0, 10, 20, 30))
    assert pricing.reprice_order(order).ok
    db.session.commit()
    settle_order(order.id)
    db.session.expire_all()
    return db.session.get(ChargeOrder, order.id)


def reset(connector_id):
    from app.services import occupancy

    redis = get_redis()
    redis.delete(occupancy.state_key(connector_id), occupancy.seen_key(connector_id))
    redis.srem(occupancy.PENDING_KEY, str(connector_id))


def occupancy_orders(charge_order_id):
    db.session.expire_all()
    return db.session.scalars(select(OccupancyOrder).where(OccupancyOrder.charge_order_id == charge_order_id)).all()


@pytest.fixture
def conn(app):
    with app.app_context():
        c = occupancy_connector()
        reset(c.id)
        yield c
        reset(c.id)


# --- tests -----------------------------------------------------------------------------------------------------


def test_gun_left_plugged_for_free_minutes_plus_ten(app, conn):
    from app.services import occupancy

    with app.app_context():
        conn = db.session.get(Connector, conn.id)
        mid = new_member("100")
        end = utcnow().replace(microsecond=0) - timedelta(hours=2)
        order = settled_order(mid, conn, end)
        after_charge = db.session.get(Member, mid).balance
        assert occupancy.on_session_finished(order) is True

        occupancy.on_connector_state(conn.id, True, None, end + timedelta(minutes=1))   # 0x13: still plugged
        assert occupancy.accrue(end + timedelta(minutes=10))["ongoing"] == 0          # within the free 15
        assert occupancy_orders(order.id) == []

        occupancy.accrue(end + timedelta(minutes=20))                                  # running figures
        [occ] = occupancy_orders(order.id)
        assert (occ.status, occ.duration_minutes, occ.amount) == ("ongoing", 20, D("0.5000"))
        assert occ.started_at == end and occ.order_no[:6].isdigit() and len(occ.order_no) == 13
        assert (occ.free_minutes, occ.price, occ.unit, occ.cap) == (15, D("0.10000"), "minute", D("30.0000"))

        ended = occupancy.on_connector_state(conn.id, False, None, end + timedelta(minutes=25))   # unplugged
        assert ended is not None and ended.id == occ.id
        [occ] = occupancy_orders(order.id)
        assert (occ.status, occ.pay_status, occ.pay_type) == ("settled", "paid", "wallet")
        assert (occ.duration_minutes, occ.amount, occ.paid_amount) == (25, D("1.0000"), D("1.0000"))
        assert occ.ended_at == end + timedelta(minutes=25)
        [entry] = db.session.scalars(select(WalletEntry).where(WalletEntry.occupancy_order_id == occ.id)).all()
        assert (entry.kind, entry.amount, entry.idempotency_key) == ("occupancy", D("-1.0000"), f"occupancy:{occ.id}")
        assert db.session.get(Member, mid).balance == after_charge - D("1.0000")

        # replays change nothing: the same frame again, another accrual run, the session hook again
        occupancy.on_connector_state(conn.id, False, None, end + timedelta(minutes=26))
        occupancy.accrue(end + timedelta(minutes=40))
        occupancy.on_session_finished(order)
        occupancy.accrue(end + timedelta(minutes=60))
        assert len(occupancy_orders(order.id)) == 1
        assert db.session.get(Member, mid).balance == after_charge - D("1.0000")
        reset(conn.id)


def test_freed_within_the_free_minutes_leaves_no_order(app, conn):
    from app.services import occupancy

    with app.app_context():
        conn = db.session.get(Connector, conn.id)
        end = utcnow().replace(microsecond=0) - timedelta(hours=2)
        order = settled_order(new_member(), conn, end)
        occupancy.on_session_finished(order)
        assert occupancy.on_connector_state(conn.id, False, None, end + timedelta(minutes=14)) is None
        occupancy.accrue(end + timedelta(minutes=60))
        assert occupancy_orders(order.id) == []
        assert not get_redis().sismember(occupancy.PENDING_KEY, str(conn.id))


def test_unplugged_before_the_bill_arrived(app, conn):
    """The driver unplugs right after the stop; the bill (and so on_session_finished) comes later."""
    from app.services import occupancy

    with app.app_context():
        conn = db.session.get(Connector, conn.id)
        end = utcnow().replace(microsecond=0) - timedelta(hours=2)
        order = settled_order(new_member(), conn, end)
        occupancy.on_connector_state(conn.id, False, None, end + timedelta(minutes=1))
        assert occupancy.on_session_finished(order) is False
        occupancy.accrue(end + timedelta(hours=3))
        assert occupancy_orders(order.id) == []


def test_space_occupied_by_ground_lock_and_capped_by_accrual(app, conn):
    """Gun back in its holster but the parking sensor still sees the car; no frames for hours: the
    accrual job alone ends the occupation at OCCUPANCY_MAX_HOURS and the cap applies."""
    from app.services import occupancy

    with app.app_context():
        conn = db.session.get(Connector, conn.id)
        mid = new_member("100")
        end = utcnow().replace(microsecond=0) - timedelta(hours=30)
        order = settled_order(mid, conn, end)
        occupancy.on_session_finished(order)
        occupancy.on_connector_state(conn.id, False, True, end + timedelta(minutes=2))   # unplugged, car parked
        occupancy.accrue(end + timedelta(minutes=30))
        [occ] = occupancy_orders(order.id)
        assert occ.status == "ongoing" and occ.amount == D("1.5000")
        occupancy.accrue(end + timedelta(hours=25))
        [occ] = occupancy_orders(order.id)
        assert (occ.status, occ.amount, occ.duration_minutes) == ("settled", D("30.0000"), 24 * 60)
        assert occ.ended_at == end + timedelta(hours=24)


def test_station_without_rule_is_not_watched(app):
    from app.services import occupancy

    with app.app_context():
        c = db.session.scalars(select(Connector).join(Station, Connector.station_id == Station.id)
                               .where(Station.occupancy_enabled.is_(False)).order_by(Connector.id)).first()
        reset(c.id)
        end = utcnow().replace(microsecond=0) - timedelta(hours=2)
        order = settled_order(new_member(), c, end)
        assert occupancy.on_session_finished(order) is False
        assert not get_redis().sismember(occupancy.PENDING_KEY, str(c.id))


def test_accrual_job_entry_point(app, conn):
    from app.tasks.orders import accrue_occupancy

    with app.app_context():
        assert set(accrue_occupancy(utcnow().isoformat())) == {"watched", "ongoing", "ended", "errors"}
