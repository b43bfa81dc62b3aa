"""Campaigns and coupons at settlement: worked examples (app/services/discounts.py, issue 13).

Every example settles a real order (real database, real settlement) of demo operator MA1NJ0001 on a gun
of the 尖峰平谷 template (TPL101): flat 08:00-10:00 0.62 + 0.60, peak 10:00-14:00 1.05 + 0.70 yuan/kWh.
Each test uses its own day in June 2030 and its own member, so its campaigns and coupons meet no other
test's.

The base order B: Beijing 09:30-10:30, 20 kWh at a steady 20 kW:

====  ===========  ==========  =========  ========  =========
seq   time         level       energy     elec fee  serv fee
====  ===========  ==========  =========  ========  =========
0     09:30-10:00  flat        10.0000    6.2000    6.0000
1     10:00-10:30  peak        10.0000    10.5000   7.0000
all                            20.0000    16.7000   13.0000    total 29.7000
====  ===========  ==========  =========  ========  =========

1. Fixed campaign, electricity 8折 / service 5折 (takes 20 % / 50 % off):

   ====  ===============  ==============
   seq   elec discount    serv discount
   ====  ===============  ==============
   0     6.2 × 0.2 = 1.2400   6.0 × 0.5 = 3.0000
   1     10.5 × 0.2 = 2.1000  7.0 × 0.5 = 3.5000
   all   3.3400               6.5000          total 9.8400, payable 29.7000 − 9.8400 = 19.8600
   ====  ===============  ==============

2. Time-of-day campaign, windows 09:00-09:45 elec 5折 serv 5折, 09:45-10:15 elec 10折 serv 8折,
   nothing after 10:15. Pro rata by time within a tariff period:

   - seq 0 (09:30-10:00, 1800 s): 900 s at (0.5, 0.5) off, 900 s at (0, 0.2) off
     elec 6.2 × (900×0.5 + 900×0)/1800 = 6.2 × 0.25 = 1.5500; serv 6.0 × (900×0.5 + 900×0.2)/1800 =
     6.0 × 0.35 = 2.1000
   - seq 1 (10:00-10:30): 900 s at (0, 0.2) off, 900 s outside: elec 0; serv 7.0 × 0.1 = 0.7000
   - order: elec 1.5500, serv 2.8000, total 4.3500, payable 25.3500

3. Coupons alone (no campaign that day), one member each; target fee before any campaign
   total 29.7000, service 13.0000:

   ==================================  =================================  ==========
   coupon                              computation                        saving
   ==================================  =================================  ==========
   discount 8.5折 total                29.7 × 0.15 = 4.455                4.4550
   discount 8.5折 total, cap 3         min(4.4550, 3)                     3.0000
   discount 5折 service                13.0 × 0.5                         6.5000
   满30减5 total                        29.7 < 30: not usable              0
   满20减5 total                        29.7 ≥ 20                          5.0000
   满10减3 service                      13.0 ≥ 10                          3.0000
   抵8 total                            8                                  8.0000
   抵20 service                         min(20, 13.0): never above target  13.0000
   ==================================  =================================  ==========

   The spread of 满20减5 total over the fees (electricity first, cumulative rounding):
   parts 6.2, 6.0, 10.5, 7.0 (T = 29.7); running 5 × C/T: 1.0438, 2.0539, 3.8215, 5.0000 →
   shares seq 0 elec 1.0438, serv 1.0101; seq 1 elec 1.7676, serv 1.1785 (elec 2.8114, serv 2.1886).
   The spread of 抵20 service: parts 6.0, 7.0 (T = 13) → 6.0000, 7.0000 (all of the service fee).

4. Stacking: the campaign of 1, then the coupon 满15减5 total. After the campaign the fees are
   seq 0 4.9600 + 3.0000, seq 1 8.4000 + 3.5000 = 19.8600 ≥ 15 → 5.0000, spread over
   4.96, 3.0, 8.4, 3.5 (T = 19.86): running 1.2487, 2.0040, 4.1188, 5.0000 → shares 1.2487, 0.7553,
   2.1148, 0.8812:

   ====  ===============================  ===============================
   seq   elec discount                    serv discount
   ====  ===============================  ===============================
   0     1.2400 + 1.2487 = 2.4887         3.0000 + 0.7553 = 3.7553
   1     2.1000 + 2.1148 = 4.2148         3.5000 + 0.8812 = 4.3812
   all   6.7035                           8.1365       total 14.8400, payable 14.8600
   ====  ===============================  ===============================

   满20减5 total would not apply (19.8600 < 20 after the campaign, although 29.7 ≥ 20 before).

5. Best campaign: 9折/9折 all (2.9700) vs service 5折 (6.5000) vs electricity 7折 (5.0100) → service 5折.
   Equal savings: the higher priority wins.
6. Best coupon when the member chose none: 抵8 (8.0000) over 8.5折 total (4.4550) over 抵3 (3.0000).
7. Expiry and scope: a coupon expired before the start, a coupon of another station's template, a
   campaign of another station, a campaign window that closed before the start → nothing applies.
9. Organisation discount (app/services/organizations.discount_rates) against the campaign of 1: the
   member's organisation agreed 5折/5折 = 3.1000 + 3.0000 + 5.2500 + 3.5000 = 14.8500 > 9.8400, so it
   applies instead of the campaign (campaign_id empty); then 抵1 spread over 3.1, 3.0, 5.25, 3.5
   (T = 14.85): running 0.2088, 0.4108, 0.7643, 1.0000 → 0.2088, 0.2020, 0.3535, 0.2357:
   seq 0 3.3088 / 3.2020, seq 1 5.6035 / 3.7357; elec 8.9123, serv 6.9377, total 15.8500, payable
   13.8500. An organisation at 9折/9折 (2.9700) loses to the campaign (9.8400).
8. A partner order (no member, the partner's channel) with an interconnect campaign 9折/9折:
   seq 0 0.6200 + 0.6000, seq 1 1.0500 + 0.7000 → elec 1.6700, serv 1.3000, total 2.9700, payable
   26.7300. An interconnect campaign of another channel and an operation campaign for other channels
   do not apply.
"""
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import (
    Campaign,
    CampaignPeriod,
    Channel,
    ChargeOrder,
    Connector,
    Coupon,
    CouponTemplate,
    Member,
    MeterSample,
    PileBill,
    Station,
    WalletEntry,
)
from app.models.operator import Operator
from app.models.station import PriceTemplate
from app.services import discounts, order_state

D = Decimal


def bj(text):
    return datetime.strptime(text, "%Y-%m-%d %H:%M") - timedelta(hours=8)


def operator_id():
    return db.session.scalar(select(Operator.id).where(Operator.code == "MA1NJ0001"))


def tou_connector():
    return db.session.scalars(
        select(Connector).join(Station, Connector.station_id == Station.id)
        .join(PriceTemplate, Station.price_template_id == PriceTemplate.id)
        .join(Operator, Station.operator_id == Operator.id)
        .where(Operator.code == "MA1NJ0001", PriceTemplate.code == "TPL101",
               Station.occupancy_enabled.is_(False)).order_by(Connector.id)).first()


def other_station_id(station_id):
    return db.session.scalar(select(Station.id).where(Station.operator_id == operator_id(), Station.id != station_id)
                             .order_by(Station.id))


def new_member(balance="100"):
    from app.services.wallet import post_entry

    m = Member(operator_id=operator_id(), member_no=f"T{uuid.uuid4().hex[:12]}", nickname="disc", status="active")
    db.session.add(m)
    db.session.flush()
    post_entry(m.id, D(balance), "recharge", idempotency_key=f"test:recharge:{m.member_no}")
    db.session.commit()
    return m.id


def make_order(member_id, day, *, status="stopping", channel_id=None, partner=False, price=True):
    """Order B on ``day`` (module doc): 09:30-10:30 Beijing, 20 kWh linear, the pile agreeing."""
    from app.services import order_numbers, pricing

    conn = tou_connector()
    start = bj(f"{day} 09:30")
    samples = [(start + timedelta(minutes=m), D(m) / 3) for m in range(0, 61, 15)]
    end = samples[-1][0]
    order = ChargeOrder(
        order_no=order_numbers.new_order_no(start), serial=order_numbers.new_serial(conn.pile.code, conn.gun_no, start),
        operator_id=conn.operator_id, station_id=conn.station_id, pile_id=conn.pile_id, connector_id=conn.id,
        member_id=member_id, start_method="partner" if partner else "app", status=status, started_at=start,
        ended_at=end, channel_id=channel_id, pay_type="partner" if partner else None,
        price_template_id=conn.station.price_template_id, tariff_snapshot=pricing.snapshot(conn.station.price_template),
        pile_amount=D("29.7000"), pile_energy=D("20.0000"))
    db.session.add(order)
    db.session.flush()
    db.session.add_all(MeterSample(order_id=order.id, at=at, energy=e.quantize(D("0.0001")), power=D("20"))
                       for at, e in samples)
    db.session.add(PileBill(operator_id=order.operator_id, serial=order.serial, pile_code=conn.pile.code,
                            gun_no=conn.gun_no, raw_hex="00", order_id=order.id, status="matched",
                            started_at=start, ended_at=end, total_energy=order.pile_energy,
                            total_amount=order.pile_amount))
    if price:
        pricing.reprice_order(order)
    db.session.commit()
    return order.id


def campaign(day, *, e="10", s="10", name=None, kind="operation", station_ids=None, channel_ids=(),
             channel_id=None, priority=0, windows=(), start=None, end=None, enabled=True):
    """A campaign running the whole ``day`` (Beijing) unless start/end are given. Rates in 折."""
    from app.services.campaigns import zhe_to_rate

    conn = tou_connector()
    c = Campaign(operator_id=conn.operator_id, kind=kind, name=name or f"C{uuid.uuid4().hex[:6]}",
                 start_at=start or bj(f"{day} 00:00"), end_at=end or (bj(f"{day} 00:00") + timedelta(days=1)),
                 discount_mode="time_of_day" if windows else "fixed", electricity_rate=zhe_to_rate(e),
                 service_rate=zhe_to_rate(s), description="test", enabled=enabled, priority=priority,
                 channel_id=channel_id, all_stations=station_ids is None)
    if station_ids is not None:
        c.stations = [db.session.get(Station, i) for i in station_ids]
    c.channels = [db.session.get(Channel, i) for i in channel_ids]
    for s_min, e_min, ez, sz in windows:
        c.periods.append(CampaignPeriod(start_minute=s_min, end_minute=e_min, electricity_rate=zhe_to_rate(ez),
                                        service_rate=zhe_to_rate(sz)))
    db.session.add(c)
    db.session.commit()
    return c.id


def coupon(member_id, kind, target="total", *, zhe=None, threshold="0", face=None, cap=None, valid_to=None,
           valid_from=None, station_ids=None):
    from app.services.campaigns import zhe_to_rate

    op = operator_id()
    t = CouponTemplate(operator_id=op, name=f"T{uuid.uuid4().hex[:6]}", coupon_type=kind, target=target,
                       discount_rate=zhe_to_rate(zhe) if zhe else None, threshold=D(threshold),
                       face_value=D(face) if face else None, max_discount=D(cap) if cap else None,
                       validity_mode="fixed", valid_from=valid_from or datetime(2020, 1, 1),
                       valid_to=valid_to or datetime(2040, 1, 1), all_stations=station_ids is None)
    if station_ids is not None:
        t.stations = [db.session.get(Station, i) for i in station_ids]
    db.session.add(t)
    db.session.flush()
    c = Coupon(operator_id=op, code=f"CP{uuid.uuid4().hex[:16]}", template_id=t.id, member_id=member_id,
               status="unused", coupon_type=kind, target=target, discount_rate=t.discount_rate,
               threshold=t.threshold, face_value=t.face_value, max_discount=t.max_discount,
               valid_from=t.valid_from, valid_to=t.valid_to)
    db.session.add(c)
    db.session.commit()
    return c.id


def settle(order_id):
    from app.services.settlement import settle_order

    return settle_order(order_id)


def fresh(model, row_id):
    db.session.expire_all()
    return db.session.get(model, row_id)


def figures(order_id):
    o = fresh(ChargeOrder, order_id)
    return {"periods": [(p.seq, p.discount_electricity, p.discount_service) for p in o.periods],
            "order": (o.discount_electricity, o.discount_service, o.discount_total, o.payable_amount),
            "campaign_id": o.campaign_id, "coupon_id": o.coupon_id, "status": o.status}


def lock(order_id, coupon_id):
    order = db.session.get(ChargeOrder, order_id)
    discounts.lock_coupon(order, coupon_id, at=order.started_at)
    db.session.commit()


@pytest.fixture()
def ctx(app):
    with app.app_context():
        yield
        db.session.rollback()


# --- 1, 2: campaigns ------------------------------------------------------------------------------------------


def test_fixed_campaign_electricity_8_service_5(ctx):
    cid = campaign("2030-06-03", e="8", s="5")
    mid = new_member()
    oid = make_order(mid, "2030-06-03")
    result = settle(oid)
    f = figures(oid)
    assert f["periods"] == [(0, D("1.2400"), D("3.0000")), (1, D("2.1000"), D("3.5000"))]
    assert f["order"] == (D("3.3400"), D("6.5000"), D("9.8400"), D("19.8600"))
    assert (f["campaign_id"], f["coupon_id"], f["status"]) == (cid, None, "settled")
    assert (result.discount_total, result.payable_amount, result.paid_amount) == (
        D("9.8400"), D("19.8600"), D("19.8600"))
    entry = db.session.scalar(select(WalletEntry).where(WalletEntry.idempotency_key == f"settle:{oid}"))
    assert entry.amount == D("-19.8600")


def test_time_of_day_campaign_pro_rata_across_tariff_periods(ctx):
    cid = campaign("2030-06-04", windows=[(9 * 60, 9 * 60 + 45, "5", "5"), (9 * 60 + 45, 10 * 60 + 15, "10", "8")])
    oid = make_order(new_member(), "2030-06-04")
    settle(oid)
    f = figures(oid)
    assert f["periods"] == [(0, D("1.5500"), D("2.1000")), (1, D("0.0000"), D("0.7000"))]
    assert f["order"] == (D("1.5500"), D("2.8000"), D("4.3500"), D("25.3500"))
    assert f["campaign_id"] == cid


def test_time_of_day_window_across_midnight_and_a_zero_length_period(ctx):
    c = db.session.get(Campaign, campaign("2030-06-05", windows=[(22 * 60, 10 * 60, "5", "5")]))
    from app.services.pricing import Breakdown, PricedPeriod

    # a pile-level row spanning nothing (start = end): the window containing its start decides
    rows = Breakdown([PricedPeriod(0, bj("2030-06-05 09:50"), bj("2030-06-05 09:50"), "flat", D("0.62"), D("0.6"),
                                   D("10"), D("6.2000"), D("6.0000"))])
    assert discounts.campaign_periods(c, rows) == [discounts.PeriodDiscount(0, D("3.1000"), D("3.0000"))]
    # 21:30-22:30: half the time inside 22:00-10:00 → a quarter... half of 50 % off
    rows = Breakdown([PricedPeriod(0, bj("2030-06-05 21:30"), bj("2030-06-05 22:30"), "flat", D("0.62"), D("0.6"),
                                   D("10"), D("6.2000"), D("6.0000"))])
    assert discounts.campaign_periods(c, rows) == [discounts.PeriodDiscount(0, D("1.5500"), D("1.5000"))]


def test_best_campaign_wins_and_ties_go_to_priority(ctx):
    campaign("2030-06-06", e="9", s="9")                        # 2.9700
    best = campaign("2030-06-06", s="5")                        # 6.5000
    campaign("2030-06-06", e="7")                               # 16.7 × 0.3 = 5.0100
    oid = make_order(new_member(), "2030-06-06")
    settle(oid)
    assert figures(oid)["campaign_id"] == best
    assert figures(oid)["order"][2] == D("6.5000")
    campaign("2030-06-07", s="5", priority=0)
    high = campaign("2030-06-07", s="5", priority=5)
    oid = make_order(new_member(), "2030-06-07")
    settle(oid)
    assert figures(oid)["campaign_id"] == high


# --- 3: coupon kinds × target -------------------------------------------------------------------------------

COUPON_TABLE = [
    # (kind, target, zhe, threshold, face, cap, saving)
    ("discount", "total", "8.5", "0", None, None, "4.4550"),
    ("discount", "total", "8.5", "0", None, "3", "3.0000"),
    ("discount", "service", "5", "0", None, None, "6.5000"),
    ("full_reduction", "total", None, "30", "5", None, "0"),
    ("full_reduction", "total", None, "20", "5", None, "5.0000"),
    ("full_reduction", "service", None, "10", "3", None, "3.0000"),
    ("deduction", "total", None, "0", "8", None, "8.0000"),
    ("deduction", "service", None, "0", "20", None, "13.0000"),
]


@pytest.mark.parametrize("kind,target,zhe,threshold,face,cap,saving", COUPON_TABLE)
def test_coupon_kinds_and_targets(ctx, kind, target, zhe, threshold, face, cap, saving):
    mid = new_member()
    cp = coupon(mid, kind, target, zhe=zhe, threshold=threshold, face=face, cap=cap)
    oid = make_order(mid, "2030-06-10")
    settle(oid)
    f = figures(oid)
    assert f["order"][2] == D(saving)
    assert f["order"][3] == D("29.7000") - D(saving)
    assert f["campaign_id"] is None
    c = fresh(Coupon, cp)
    if D(saving):
        assert f["coupon_id"] == cp
        assert (c.status, c.order_id, c.discount_amount) == ("used", oid, D(saving))
        assert c.used_at is not None
        if target == "service":
            assert f["order"][0] == D("0.0000")
    else:
        assert f["coupon_id"] is None and (c.status, c.order_id) == ("unused", None)


def test_coupon_spread_over_periods(ctx):
    mid = new_member()
    coupon(mid, "full_reduction", "total", threshold="20", face="5")
    oid = make_order(mid, "2030-06-10")
    settle(oid)
    f = figures(oid)
    assert f["periods"] == [(0, D("1.0438"), D("1.0101")), (1, D("1.7676"), D("1.1785"))]
    assert f["order"][:3] == (D("2.8114"), D("2.1886"), D("5.0000"))
    mid = new_member()
    coupon(mid, "deduction", "service", face="20")
    oid = make_order(mid, "2030-06-10")
    settle(oid)
    assert figures(oid)["periods"] == [(0, D("0.0000"), D("6.0000")), (1, D("0.0000"), D("7.0000"))]


# --- 4: stacking ------------------------------------------------------------------------------------------------


def test_campaign_then_coupon_threshold_after_campaign(ctx):
    cid = campaign("2030-06-11", e="8", s="5")
    mid = new_member()
    too_high = coupon(mid, "full_reduction", "total", threshold="20", face="5")
    ok = coupon(mid, "full_reduction", "total", threshold="15", face="5")
    oid = make_order(mid, "2030-06-11")
    settle(oid)
    f = figures(oid)
    assert f["periods"] == [(0, D("2.4887"), D("3.7553")), (1, D("4.2148"), D("4.3812"))]
    assert f["order"] == (D("6.7035"), D("8.1365"), D("14.8400"), D("14.8600"))
    assert (f["campaign_id"], f["coupon_id"]) == (cid, ok)
    assert fresh(Coupon, too_high).status == "unused"
    assert fresh(Coupon, ok).discount_amount == D("5.0000")


def test_never_below_zero(ctx):
    campaign("2030-06-12", e="1", s="1")                      # 90 % off: 26.7300, left 2.9700
    mid = new_member()
    coupon(mid, "deduction", "total", face="50")
    oid = make_order(mid, "2030-06-12")
    settle(oid)
    f = figures(oid)
    assert f["order"] == (D("16.7000"), D("13.0000"), D("29.7000"), D("0.0000"))
    assert fresh(Coupon, f["coupon_id"]).discount_amount == D("2.9700")


# --- 6, 7: choice, expiry, scope --------------------------------------------------------------------------------


def test_best_coupon_when_none_chosen(ctx):
    mid = new_member()
    coupon(mid, "discount", "total", zhe="8.5")
    best = coupon(mid, "deduction", "total", face="8")
    coupon(mid, "deduction", "total", face="3")
    oid = make_order(mid, "2030-06-13")
    settle(oid)
    assert figures(oid)["coupon_id"] == best
    assert figures(oid)["order"][2] == D("8.0000")


def test_chosen_coupon_wins_over_a_better_one(ctx):
    mid = new_member()
    chosen = coupon(mid, "deduction", "total", face="3")
    coupon(mid, "deduction", "total", face="8")
    oid = make_order(mid, "2030-06-13", status="starting", price=False)
    lock(oid, chosen)
    assert fresh(Coupon, chosen).status == "locked"
    from app.services import pricing

    order = fresh(ChargeOrder, oid)
    order_state.transition(order, "stopping", "stop_requested")
    pricing.reprice_order(order)
    db.session.commit()
    settle(oid)
    assert (figures(oid)["coupon_id"], figures(oid)["order"][2]) == (chosen, D("3.0000"))
    assert fresh(Coupon, chosen).status == "used"


def test_expiry_and_station_scope(ctx):
    conn = tou_connector()
    other = other_station_id(conn.station_id)
    day = "2030-06-14"
    campaign(day, e="5", s="5", station_ids=[other])                          # another station
    campaign(day, e="5", s="5", start=bj(f"{day} 00:00"), end=bj(f"{day} 09:30"))  # closed at the start
    campaign(day, e="5", s="5", enabled=False)
    mid = new_member()
    expired = coupon(mid, "deduction", "total", face="5", valid_to=bj(f"{day} 09:00"))
    not_yet = coupon(mid, "deduction", "total", face="5", valid_from=bj(f"{day} 10:00"))
    elsewhere = coupon(mid, "deduction", "total", face="5", station_ids=[other])
    oid = make_order(mid, day)
    settle(oid)
    f = figures(oid)
    assert f["order"] == (D("0.0000"), D("0.0000"), D("0.0000"), D("29.7000"))
    assert (f["campaign_id"], f["coupon_id"]) == (None, None)
    for cp in (expired, not_yet, elsewhere):
        assert fresh(Coupon, cp).status == "unused"
    # the same campaign scoped to this station applies; a coupon of this station's template too
    here = campaign("2030-06-15", e="5", s="5", station_ids=[conn.station_id])
    mid = new_member()
    mine = coupon(mid, "deduction", "total", face="1", station_ids=[conn.station_id])
    oid = make_order(mid, "2030-06-15")
    settle(oid)
    assert (figures(oid)["campaign_id"], figures(oid)["coupon_id"]) == (here, mine)
    assert figures(oid)["order"][2] == D("14.8500") + D("1.0000")


def test_lock_refuses_what_cannot_be_used(ctx):
    conn = tou_connector()
    day = "2030-06-16"
    mid, other_mid = new_member(), new_member()
    oid = make_order(mid, day, status="starting", price=False)
    expired = coupon(mid, "deduction", "total", face="5", valid_to=bj(f"{day} 09:00"))
    foreign = coupon(other_mid, "deduction", "total", face="5")
    elsewhere = coupon(mid, "deduction", "total", face="5", station_ids=[other_station_id(conn.station_id)])
    for cp, text in ((expired, "not valid"), (foreign, "not yours"), (elsewhere, "this station")):
        with pytest.raises(discounts.CouponError, match=text):
            lock(oid, cp)
        db.session.rollback()
        assert fresh(Coupon, cp).status == "unused"
    good = coupon(mid, "deduction", "total", face="5")
    lock(oid, good)
    other = make_order(mid, day, status="starting", price=False)
    with pytest.raises(discounts.CouponError, match="used or is locked"):
        lock(other, good)
    db.session.rollback()


# --- release -------------------------------------------------------------------------------------------------


def test_coupon_released_when_the_start_fails(ctx):
    mid = new_member()
    cp = coupon(mid, "deduction", "total", face="5")
    oid = make_order(mid, "2030-06-17", status="starting", price=False)
    lock(oid, cp)
    assert (fresh(Coupon, cp).status, fresh(Coupon, cp).order_id) == ("locked", oid)
    assert fresh(ChargeOrder, oid).coupon_id == cp
    order_state.transition(fresh(ChargeOrder, oid), "failed", "start_failed")
    db.session.commit()
    assert (fresh(Coupon, cp).status, fresh(Coupon, cp).order_id) == ("unused", None)
    assert fresh(ChargeOrder, oid).coupon_id is None


def test_coupon_released_when_closed_without_charge(ctx):
    from app.services import order_admin

    mid = new_member()
    cp = coupon(mid, "deduction", "total", face="5")
    oid = make_order(mid, "2030-06-17", status="starting", price=False)
    lock(oid, cp)
    order = fresh(ChargeOrder, oid)
    order_admin.mark_abnormal(order, "test")
    db.session.commit()
    from app.security.models import User

    staff = db.session.scalar(select(User.id).order_by(User.id))
    order_admin.close_without_charge(oid, staff, "test")
    assert (fresh(Coupon, cp).status, fresh(Coupon, cp).order_id) == ("unused", None)
    assert figures(oid)["order"][3] == D("0.0000") and figures(oid)["coupon_id"] is None


def test_chosen_coupon_that_does_not_apply_is_released_at_settlement(ctx):
    mid = new_member()
    cp = coupon(mid, "full_reduction", "total", threshold="100", face="5")
    oid = make_order(mid, "2030-06-18", status="starting", price=False)
    lock(oid, cp)
    from app.services import pricing

    order = fresh(ChargeOrder, oid)
    order_state.transition(order, "stopping", "stop_requested")
    pricing.reprice_order(order)
    db.session.commit()
    settle(oid)
    assert figures(oid)["coupon_id"] is None and figures(oid)["order"][3] == D("29.7000")
    assert (fresh(Coupon, cp).status, fresh(Coupon, cp).order_id) == ("unused", None)


# --- re-pricing an abnormal order -------------------------------------------------------------------------------


def test_repricing_an_abnormal_order_applies_the_same_rules(ctx):
    from app.services import order_admin

    cid = campaign("2030-06-19", e="8", s="5")
    mid = new_member()
    cp = coupon(mid, "full_reduction", "total", threshold="15", face="5")
    coupon(mid, "deduction", "total", face="9")            # better, but not the member's choice
    oid = make_order(mid, "2030-06-19", status="starting", price=False)
    lock(oid, cp)
    order = fresh(ChargeOrder, oid)
    order_admin.mark_abnormal(order, "the pile went quiet")
    db.session.commit()
    order_admin.reprice(oid, None, "checked")
    f = figures(oid)
    assert f["status"] == "settled"
    assert f["periods"] == [(0, D("2.4887"), D("3.7553")), (1, D("4.2148"), D("4.3812"))]
    assert f["order"] == (D("6.7035"), D("8.1365"), D("14.8400"), D("14.8600"))
    assert (f["campaign_id"], f["coupon_id"]) == (cid, cp)


# --- 8: partner orders ----------------------------------------------------------------------------------------------


def _channels():
    op = operator_id()
    inter = db.session.scalars(select(Channel).where(Channel.operator_id == op, Channel.channel_type == "interconnect")
                               .order_by(Channel.id)).all()
    others = db.session.scalars(select(Channel).where(Channel.operator_id == op, Channel.channel_type != "interconnect")
                                .order_by(Channel.id)).all()
    return inter, others


def test_partner_order_with_interconnect_campaign(ctx):
    inter, others = _channels()
    assert inter and others, "the demo data has interconnect and other channels"
    day = "2030-06-20"
    cid = campaign(day, kind="interconnect", channel_id=inter[0].id, e="9", s="9")
    if len(inter) > 1:
        campaign(day, kind="interconnect", channel_id=inter[1].id, e="5", s="5")
    campaign(day, e="5", s="5", channel_ids=[others[0].id])     # an operation campaign for another channel
    mid = new_member()
    coupon(mid, "deduction", "total", face="5")                  # partner orders use no member coupon
    oid = make_order(None, day, channel_id=inter[0].id, partner=True)
    result = settle(oid)
    f = figures(oid)
    assert f["periods"] == [(0, D("0.6200"), D("0.6000")), (1, D("1.0500"), D("0.7000"))]
    assert f["order"] == (D("1.6700"), D("1.3000"), D("2.9700"), D("26.7300"))
    assert (f["campaign_id"], f["coupon_id"]) == (cid, None)
    assert (result.pay_type, result.paid_amount) == ("partner", D("26.7300"))
    # a member order on the same day (no channel): the interconnect campaign does not apply
    oid = make_order(mid, day)
    settle(oid)
    assert figures(oid)["campaign_id"] is None and figures(oid)["order"][2] == D("5.0000")
    # the operation campaign applies to orders of its channel
    oid = make_order(new_member(), day, channel_id=others[0].id)
    settle(oid)
    assert figures(oid)["order"][2] == D("14.8500")


# --- helpers for the member app -------------------------------------------------------------------------------


def test_active_campaigns_and_estimate_savings(ctx):
    from app.services.clock import utcnow

    conn = tou_connector()
    now = utcnow()
    mine = campaign("2030-06-21", e="8", s="5", station_ids=[conn.station_id], start=now - timedelta(hours=1),
                    end=now + timedelta(hours=1), name="now")
    inter, _ = _channels()
    partner_only = campaign("2030-06-21", kind="interconnect", channel_id=inter[0].id, station_ids=[conn.station_id],
                            start=now - timedelta(hours=1), end=now + timedelta(hours=1))
    try:
        ids = [c.id for c in discounts.active_campaigns(conn.operator_id, conn.station_id)]
        assert mine in ids and partner_only not in ids
        assert partner_only in [c.id for c in discounts.active_campaigns(conn.operator_id, conn.station_id,
                                                                           inter[0].id)]
        assert mine not in [c.id for c in discounts.active_campaigns(conn.operator_id, other_station_id(
            conn.station_id))]
        # 20 kWh at the price of the tariff period now, after 8折/5折: hand-computed from that period
        from app.services import pricing

        snap = pricing.snapshot(conn.station.price_template)
        local = pricing.clock.to_local(now, pricing._zone(snap))
        tp = pricing._period_at(pricing.tariff_periods(snap), local.hour * 60 + local.minute)
        e_fee, s_fee = D("20") * tp.electricity_price, D("20") * tp.service_price
        after = e_fee * D("0.8") + s_fee * D("0.5")
        mid = new_member()
        member = db.session.get(Member, mid)
        d8 = coupon(mid, "deduction", "total", face="8")
        svc = coupon(mid, "discount", "service", zhe="5")
        expired = coupon(mid, "deduction", "total", face="8", valid_to=now - timedelta(days=1))
        rows = db.session.scalars(select(Coupon).where(Coupon.id.in_([d8, svc, expired]))).all()
        got = discounts.estimate_savings(member=member, connector=conn, coupons=rows)
        assert got[d8] == D("8.0000") if after >= 8 else got[d8] == after
        assert got[svc] == (s_fee * D("0.5") * D("0.5")).quantize(D("0.0001"))
        assert got[expired] == D("0")
    finally:
        for cid in (mine, partner_only):
            db.session.get(Campaign, cid).enabled = False
        db.session.commit()


# --- 9: organisation discount -----------------------------------------------------------------------------------


def _org_member(rate_zhe):
    from app.models import Organization
    from app.services.campaigns import zhe_to_rate

    org = Organization(operator_id=operator_id(), name=f"O{uuid.uuid4().hex[:6]}", enabled=True,
                       electricity_rate=zhe_to_rate(rate_zhe), service_rate=zhe_to_rate(rate_zhe))
    db.session.add(org)
    db.session.flush()
    mid = new_member()
    db.session.get(Member, mid).organization_id = org.id
    db.session.commit()
    return mid


def test_organization_discount_competes_with_the_campaign(ctx):
    day = "2030-06-22"
    cid = campaign(day, e="8", s="5")
    mid = _org_member("5")
    coupon(mid, "deduction", "total", face="1")
    oid = make_order(mid, day)
    settle(oid)
    f = figures(oid)
    assert f["periods"] == [(0, D("3.3088"), D("3.2020")), (1, D("5.6035"), D("3.7357"))]
    assert f["order"] == (D("8.9123"), D("6.9377"), D("15.8500"), D("13.8500"))
    assert f["campaign_id"] is None and f["coupon_id"] is not None
    mid = _org_member("9")
    oid = make_order(mid, day)
    settle(oid)
    assert (figures(oid)["campaign_id"], figures(oid)["order"][2]) == (cid, D("9.8400"))


def test_spread_adds_up_exactly_and_never_exceeds_a_fee():
    import random

    rng = random.Random(13)
    for _ in range(2000):
        parts = [D(rng.randint(0, 500000)) / 10000 for _ in range(rng.randint(1, 9))]
        total = sum(parts, D(0))
        saving = (total * D(rng.random())).quantize(D("0.0001"), rounding="ROUND_DOWN") if total else D(0)
        shares = discounts._spread(saving, parts)
        if total:
            assert sum(shares, D(0)) == saving
        assert all(D(0) <= s <= p for s, p in zip(shares, parts, strict=True))
