"""Worked pricing examples (pure: tariff snapshot + samples → breakdown).

Tariff: the demo 尖峰平谷 template, Beijing clock (UTC+8):
valley 00-08 0.31+0.50 · flat 08-10 0.62+0.60 · peak 10-14 1.05+0.70 · flat 14-17 0.62+0.60 ·
sharp 17-19 1.25+0.80 · peak 19-21 1.05+0.70 · flat 21-24 0.62+0.60 (yuan/kWh, electricity+service).
"""
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import pytest

from app.services.occupancy import occupancy_fee
from app.services.pricing import (
    Breakdown,
    PricingError,
    compare_with_pile,
    price_by_level_energy,
    price_samples,
    rate_index_prices,
)

D = Decimal
TOU = [(0, 480, "valley", "0.31000", "0.50000"), (480, 600, "flat", "0.62000", "0.60000"),
       (600, 840, "peak", "1.05000", "0.70000"), (840, 1020, "flat", "0.62000", "0.60000"),
       (1020, 1140, "sharp", "1.25000", "0.80000"), (1140, 1260, "peak", "1.05000", "0.70000"),
       (1260, 1440, "flat", "0.62000", "0.60000")]
SNAP = {"template_id": 7, "code": "TPL101", "version": 3, "timezone": "Asia/Shanghai",
        "periods": [{"start_minute": s, "end_minute": e, "level": lv, "electricity_price": ep, "service_price": sp}
                    for s, e, lv, ep, sp in TOU]}


def bj(text):
    """Beijing wall-clock 'YYYY-MM-DD HH:MM[:SS]' → naive UTC."""
    fmt = "%Y-%m-%d %H:%M:%S" if text.count(":") == 2 else "%Y-%m-%d %H:%M"
    return datetime.strptime(text, fmt) - timedelta(hours=8)


def rows(bd: Breakdown):
    return [(p.level, p.energy, p.electricity_fee, p.service_fee) for p in bd.periods]


def test_one_period():
    samples = [(bj("2024-03-11 02:00"), D("0")), (bj("2024-03-11 02:15"), D("2.5000")),
               (bj("2024-03-11 02:45"), D("7.5000")), (bj("2024-03-11 03:00"), D("10.0000"))]
    bd = price_samples(SNAP, samples)
    assert rows(bd) == [("valley", D("10.0000"), D("3.1000"), D("5.0000"))]
    assert (bd.energy, bd.electricity_fee, bd.service_fee, bd.total_amount) == (
        D("10.0000"), D("3.1000"), D("5.0000"), D("8.1000"))
    assert bd.periods[0].start_at == datetime(2024, 3, 10, 18, 0) and bd.periods[0].end_at == datetime(2024, 3, 10, 19)


def test_two_periods_split_by_interpolation():
    # 09:50 → 4 kWh, 10:10 → 10 kWh: at the 10:00 boundary the meter read 4 + 6 × 10/20 = 7 kWh
    samples = [(bj("2024-03-11 09:30"), D("0")), (bj("2024-03-11 09:50"), D("4.0000")),
               (bj("2024-03-11 10:10"), D("10.0000")), (bj("2024-03-11 10:30"), D("12.0000"))]
    bd = price_samples(SNAP, samples)
    assert rows(bd) == [("flat", D("7.0000"), D("4.3400"), D("4.2000")),
                        ("peak", D("5.0000"), D("5.2500"), D("3.5000"))]
    assert bd.total_amount == D("17.2900") and bd.energy == D("12.0000")
    assert bd.periods[0].end_at == bd.periods[1].start_at == bj("2024-03-11 10:00")


def test_across_midnight():
    samples = [(bj("2024-03-11 23:00"), D("0")), (bj("2024-03-12 00:30"), D("15.0000")),
               (bj("2024-03-12 01:00"), D("20.0000"))]
    bd = price_samples(SNAP, samples)
    assert rows(bd) == [("flat", D("10.0000"), D("6.2000"), D("6.0000")),
                        ("valley", D("10.0000"), D("3.1000"), D("5.0000"))]
    assert bd.total_amount == D("20.3000")
    # UTC rows: 15:00-16:00 and 16:00-17:00 (Beijing midnight is 16:00 UTC)
    assert [(p.start_at, p.end_at) for p in bd.periods] == [
        (datetime(2024, 3, 11, 15), datetime(2024, 3, 11, 16)), (datetime(2024, 3, 11, 16), datetime(2024, 3, 11, 17))]


def test_all_four_levels_and_several_periods():
    start = bj("2024-03-11 07:00")
    samples = [(start + timedelta(hours=h), D(10 * h)) for h in range(14)]          # 10 kW, 07:00-20:00
    bd = price_samples(SNAP, samples)
    assert rows(bd) == [
        ("valley", D("10.0000"), D("3.1000"), D("5.0000")),
        ("flat", D("20.0000"), D("12.4000"), D("12.0000")),
        ("peak", D("40.0000"), D("42.0000"), D("28.0000")),
        ("flat", D("30.0000"), D("18.6000"), D("18.0000")),
        ("sharp", D("20.0000"), D("25.0000"), D("16.0000")),
        ("peak", D("10.0000"), D("10.5000"), D("7.0000")),
    ]
    assert {p.level for p in bd.periods} == {"sharp", "peak", "flat", "valley"}
    assert (bd.energy, bd.electricity_fee, bd.service_fee, bd.total_amount) == (
        D("130.0000"), D("111.6000"), D("86.0000"), D("197.6000"))


def test_rounding_half_up_on_fees():
    # 1.0001 kWh × 0.50000 = 0.50005 → 0.5001 (half up; half-even would give 0.5000)
    samples = [(bj("2024-03-11 03:00"), D("0")), (bj("2024-03-11 03:30"), D("1.0001"))]
    bd = price_samples(SNAP, samples)
    assert rows(bd) == [("valley", D("1.0001"), D("0.3100"), D("0.5001"))]
    assert D("0.50005").quantize(D("0.0001"), rounding=ROUND_HALF_EVEN) == D("0.5000")


def test_rounding_half_up_at_a_boundary_reading():
    # 07:59 → 0, 08:01 → 0.0001: the 08:00 reading is 0.00005 → 0.0001 (half up) — all of it is valley
    samples = [(bj("2024-03-11 07:59"), D("0")), (bj("2024-03-11 08:01"), D("0.0001"))]
    bd = price_samples(SNAP, samples)
    assert rows(bd) == [("valley", D("0.0001"), D("0.0000"), D("0.0001")),
                        ("flat", D("0.0000"), D("0.0000"), D("0.0000"))]
    # totals are sums of the rounded period figures, period energies add up exactly
    assert bd.energy == D("0.0001") and bd.total_amount == D("0.0001")


def test_period_energies_sum_exactly_to_the_meter():
    samples = [(bj("2024-03-11 09:59:47"), D("0")), (bj("2024-03-11 10:00:13"), D("0.3333")),
               (bj("2024-03-11 13:59:59"), D("80.1234")), (bj("2024-03-11 14:00:07"), D("80.2001"))]
    bd = price_samples(SNAP, samples)
    assert sum(p.energy for p in bd.periods) == D("80.2001") == bd.energy
    assert bd.total_amount == sum(p.electricity_fee + p.service_fee for p in bd.periods)


def test_start_end_and_closing_reading():
    # live readings end at 10:29; the pile's bill closes the curve at the 10:30 stop with 12.2 kWh
    samples = [(bj("2024-03-11 09:45"), D("1.0000")), (bj("2024-03-11 10:29"), D("11.9000"))]
    bd = price_samples(SNAP, samples, started_at=bj("2024-03-11 09:40"), ended_at=bj("2024-03-11 10:30"),
                       final_energy=D("12.2000"))
    assert bd.energy == D("12.2000")
    assert bd.periods[0].start_at == bj("2024-03-11 09:40") and bd.periods[-1].end_at == bj("2024-03-11 10:30")


def test_meter_glitch_never_goes_back():
    samples = [(bj("2024-03-11 03:00"), D("0")), (bj("2024-03-11 03:10"), D("5.0000")),
               (bj("2024-03-11 03:20"), D("0.0000")), (bj("2024-03-11 03:30"), D("6.0000"))]
    assert price_samples(SNAP, samples).energy == D("6.0000")


def test_floats_are_refused():
    with pytest.raises(TypeError):
        price_samples(SNAP, [(bj("2024-03-11 03:00"), 0.0), (bj("2024-03-11 03:30"), 1.5)])


def test_no_samples():
    with pytest.raises(PricingError):
        price_samples(SNAP, [])


def test_price_by_level_energy_from_the_bill():
    assert rate_index_prices(SNAP) == {0: ("sharp", D("1.25000"), D("0.80000")),
                                       1: ("peak", D("1.05000"), D("0.70000")),
                                       2: ("flat", D("0.62000"), D("0.60000")),
                                       3: ("valley", D("0.31000"), D("0.50000"))}
    bd = price_by_level_energy(SNAP, [D("1"), D("2"), D("3"), D("4")])
    assert rows(bd) == [("sharp", D("1.0000"), D("1.2500"), D("0.8000")),
                        ("peak", D("2.0000"), D("2.1000"), D("1.4000")),
                        ("flat", D("3.0000"), D("1.8600"), D("1.8000")),
                        ("valley", D("4.0000"), D("1.2400"), D("2.0000"))]
    assert bd.total_amount == D("12.4500")
    with pytest.raises(PricingError):   # a flat-only tariff has no sharp rate
        flat = {**SNAP, "periods": [{"start_minute": 0, "end_minute": 1440, "level": "flat",
                                     "electricity_price": "0.65000", "service_price": "0.55000"}]}
        price_by_level_energy(flat, {0: D("1")})


def test_agreeing_with_the_pile_within_tolerance():
    samples = [(bj("2024-03-11 09:30"), D("0")), (bj("2024-03-11 10:30"), D("20.0000"))]
    bd = price_samples(SNAP, samples)           # flat 10 + peak 10 = 12.20 + 17.50 = 29.70
    assert bd.total_amount == D("29.7000")
    ok = compare_with_pile(bd, D("29.7300"), D("20.0000"), tolerance_amount="0.05", tolerance_ratio="0")
    assert ok.ok and ok.reason is None and ok.amount_diff == D("-0.0300")
    # the ratio widens the tolerance for big bills: 0.5 % of 29.73 = 0.1487
    assert compare_with_pile(bd, D("29.8000"), D("20.0000"), tolerance_amount="0.05", tolerance_ratio="0.005").ok


def test_disagreeing_with_the_pile():
    samples = [(bj("2024-03-11 09:30"), D("0")), (bj("2024-03-11 10:30"), D("20.0000"))]
    bd = price_samples(SNAP, samples)
    bad = compare_with_pile(bd, D("29.7600"), D("20.0000"), tolerance_amount="0.05", tolerance_ratio="0")
    assert not bad.ok and "Amount differs" in bad.reason and bad.amount_diff == D("-0.0600")
    bad_energy = compare_with_pile(bd, D("29.7000"), D("21.0000"), tolerance_amount="0.05", tolerance_ratio="0",
                                   tolerance_energy="0.05")
    assert not bad_energy.ok and "Energy differs" in bad_energy.reason


@pytest.mark.parametrize("minutes,unit,expected", [
    (25, "minute", (25, 10, D("1.0000"))),          # 15 free + 10 billable × 0.10
    (15, "minute", (15, 0, D("0.0000"))),
    (400, "minute", (400, 385, D("30.0000"))),      # capped at 30
    (76, "hour", (76, 61, D("4.0000"))),            # 61 billable minutes = 2 started hours × 2.00
])
def test_occupancy_fee(minutes, unit, expected):
    price = D("0.10000") if unit == "minute" else D("2.00000")
    start = datetime(2024, 3, 11, 2)
    fee = occupancy_fee(start, start + timedelta(minutes=minutes), 15, price, unit, D("30.0000"))
    assert (fee.duration_minutes, fee.billable_minutes, fee.amount) == expected


def test_occupancy_partial_minute_counts():
    start = datetime(2024, 3, 11, 2)
    fee = occupancy_fee(start, start + timedelta(minutes=25, seconds=1), 15, D("0.10000"), "minute")
    assert (fee.duration_minutes, fee.amount) == (26, D("1.1000"))
