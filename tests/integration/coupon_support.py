"""Helpers of the coupon and marketing tests (not fixtures): members, coupon templates and campaigns of the
demo operator A, and a 20 kWh order priced from its meter samples and settled by the settlement service.

The order (09:30-10:30 Beijing time on the demo TOU template TPL101, 20 kW): 10 kWh flat (0.62 + 0.60
yuan/kWh) and 10 kWh peak (1.05 + 0.70): electricity 6.2000 + 10.5000 = 16.7000, service 6.0000 + 7.0000 =
13.0000, total 29.7000 yuan."""
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal as D

from sqlalchemy import select

from app.extensions import db, get_redis
from app.models import (
    Campaign,
    Channel,
    ChargeOrder,
    Connector,
    CouponCampaign,
    CouponCampaignItem,
    CouponTemplate,
    Member,
    MeterSample,
    PileBill,
    PriceTemplate,
    Station,
)
from app.models.operator import Operator

OP_A = "MA1NJ0001"


def bj(text):
    """Beijing wall-clock text -> naive UTC."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M") - timedelta(hours=8)


def op_id(code=OP_A):
    return db.session.scalar(select(Operator.id).where(Operator.code == code))


def other_op_id():
    return db.session.scalar(select(Operator.id).where(Operator.code != OP_A).order_by(Operator.id))


def new_member(operator_id=None, created_at=None, channel_id=None):
    m = Member(operator_id=operator_id or op_id(), member_no=f"C{uuid.uuid4().hex[:12]}", nickname="coupon test",
               status="active", channel_id=channel_id)
    if created_at is not None:
        m.created_at = created_at
    db.session.add(m)
    db.session.commit()
    return m.id


def new_template(operator_id=None, **kw):
    values = dict(name="Test coupon", coupon_type="deduction", target="total", face_value=D("5.0000"),
                  threshold=D("0"), validity_mode="relative", valid_days=7, all_stations=True, enabled=True)
    values.update(kw)
    t = CouponTemplate(operator_id=operator_id or op_id(), **values)
    db.session.add(t)
    db.session.commit()
    return t.id


def new_campaign(trigger, items, operator_id=None, **kw):
    c = CouponCampaign(operator_id=operator_id or op_id(), name=kw.pop("name", f"Campaign {trigger}"),
                       trigger=trigger, scope=kw.pop("scope", "all"), start_at=kw.pop("start_at", datetime(2020, 1, 1)),
                       end_at=kw.pop("end_at", datetime(2099, 1, 1)), enabled=True, **kw)
    for tid, qty in items:
        c.items.append(CouponCampaignItem(template_id=tid, quantity=qty))
    db.session.add(c)
    db.session.commit()
    return c.id


def new_channel(operator_id=None):
    """A channel of its own: a campaign limited to it discounts only this test's orders."""
    ch = Channel(operator_id=operator_id or op_id(), code=f"T{uuid.uuid4().hex[:10]}", name="coupon test app",
                 channel_type="app")
    db.session.add(ch)
    db.session.commit()
    return ch.id


def new_operation_campaign(channel_id, operator_id=None, electricity="0.9000", service="0.8000", **kw):
    """An operation campaign (electricity 9 折, service 8 折) of the test's own channel only."""
    c = Campaign(operator_id=operator_id or op_id(), kind="operation", name=kw.pop("name", "Test campaign"),
                 all_stations=kw.pop("all_stations", True), start_at=kw.pop("start_at", datetime(2024, 1, 1)),
                 end_at=kw.pop("end_at", datetime(2099, 1, 1)), discount_mode="fixed",
                 electricity_rate=D(electricity), service_rate=D(service), description="test", enabled=True, **kw)
    c.channels = [db.session.get(Channel, channel_id)]
    db.session.add(c)
    db.session.commit()
    return c.id


def tou_connector():
    return db.session.scalars(
        select(Connector).join(Station, Connector.station_id == Station.id)
        .join(PriceTemplate, Station.price_template_id == PriceTemplate.id)
        .join(Operator, Station.operator_id == Operator.id)
        .where(Operator.code == OP_A, PriceTemplate.code == "TPL101").order_by(Connector.id)).first()


def settled_order(member_id, day, channel_id=None, coupon_id=None):
    """The 20 kWh order of the module doc on local ``day``, settled (wallet) by the settlement service;
    ``coupon_id`` is locked for it at start like the start path does."""
    from app.services import discounts, order_numbers, pricing, settlement, wallet

    wallet.post_entry(member_id, D("100"), "recharge", idempotency_key=f"test:coupon:{uuid.uuid4().hex}")
    db.session.commit()
    conn = tou_connector()
    start = bj(f"{day} 09:30")
    samples = [(start + timedelta(minutes=m), D(m) / 3) for m in range(0, 61, 15)]
    order = ChargeOrder(
        order_no=order_numbers.new_order_no(start), serial=order_numbers.new_serial(conn.pile.code, conn.gun_no, start),
        operator_id=conn.operator_id, station_id=conn.station_id, pile_id=conn.pile_id, connector_id=conn.id,
        member_id=member_id, channel_id=channel_id, start_method="app", status="stopping", started_at=start,
        ended_at=samples[-1][0], price_template_id=conn.station.price_template_id,
        tariff_snapshot=pricing.snapshot(conn.station.price_template), pile_amount=D("29.7000"),
        pile_energy=D("20.0000"))
    db.session.add(order)
    db.session.flush()
    if coupon_id is not None:
        discounts.lock_coupon(order, coupon_id, at=start)
    db.session.add_all(MeterSample(order_id=order.id, at=at, energy=e.quantize(D("0.0001")), power=D("20"))
                       for at, e in samples)
    db.session.add(PileBill(operator_id=order.operator_id, serial=order.serial, pile_code=conn.pile.code,
                            gun_no=conn.gun_no, raw_hex="00", order_id=order.id, status="matched", started_at=start,
                            ended_at=samples[-1][0], total_energy=D("20.0000"), total_amount=D("29.7000")))
    pricing.reprice_order(order)
    db.session.commit()
    oid = order.id
    get_redis().delete(f"rq:job:coupon-order-{oid}")
    settlement.settle_order(oid)
    return oid


@contextmanager
def no_lasting_marketing(app):
    """Campaigns and coupon campaigns with a trigger made inside the block are disabled after it: the shared
    database's later tests settle orders of operator A and must not be discounted or rewarded by them."""
    from sqlalchemy import func, update

    with app.app_context():
        cc = db.session.scalar(select(func.max(CouponCampaign.id))) or 0
        c = db.session.scalar(select(func.max(Campaign.id))) or 0
    try:
        yield
    finally:
        with app.app_context():
            db.session.execute(update(CouponCampaign).where(CouponCampaign.id > cc, CouponCampaign.trigger != "manual")
                               .values(enabled=False))
            db.session.execute(update(Campaign).where(Campaign.id > c).values(enabled=False))
            db.session.commit()
