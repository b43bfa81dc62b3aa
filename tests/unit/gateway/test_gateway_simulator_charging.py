"""The simulator's charging model: energy split by the billing model's periods, bill totals."""

from datetime import datetime
from decimal import Decimal
from random import Random

from app.gateway.simulator.charging import STOP_NO_BALANCE, STOP_SOC_FULL, ChargeSession, rate_index_at
from app.gateway.ykc import BillingModelReply, TransactionRecord, decode_frame, encode_frame

# valley 00:00-08:00 Beijing, peak afterwards
MODEL = BillingModelReply(pile_code="1" * 14, billing_model_id="0101",
                          peak_electricity_rate=Decimal("1.0"), peak_service_rate=Decimal("0.5"),
                          valley_electricity_rate=Decimal("0.3"), valley_service_rate=Decimal("0.2"),
                          rate_indexes=[3] * 16 + [1] * 32)


def session(**kw):
    return ChargeSession(serial="1" * 14 + "01" + "2405010000000001", started_at=datetime(2024, 4, 30, 23, 50),
                         meter_start=Decimal("100"), **kw)


def test_rate_index_follows_beijing_half_hours():
    assert rate_index_at(MODEL, datetime(2024, 4, 30, 23, 59)) == 3          # 07:59 Beijing
    assert rate_index_at(MODEL, datetime(2024, 5, 1, 0, 0)) == 1             # 08:00 Beijing
    assert rate_index_at(None, datetime(2024, 5, 1)) == 2


def test_energy_is_split_across_periods_and_the_bill_adds_up():
    charge = session(max_power_kw=60, battery_kwh=1000)
    rng = Random(1)
    charge.advance(600, datetime(2024, 4, 30, 23, 59), MODEL, rng=rng)      # 10 min in the valley
    charge.advance(600, datetime(2024, 5, 1, 0, 10), MODEL, rng=rng)        # 10 min in the peak
    assert charge.energy_by_rate[3] > 9 and charge.energy_by_rate[1] > 9
    bill = charge.bill("1" * 14, "01", datetime(2024, 5, 1, 0, 10), 0x40)
    assert bill.valley_price == Decimal("0.5") and bill.peak_price == Decimal("1.5")
    assert bill.total_energy == bill.valley_energy + bill.peak_energy
    assert bill.total_amount == bill.valley_amount + bill.peak_amount
    assert abs(bill.peak_amount - bill.peak_energy * Decimal("1.5")) < Decimal("0.0002")
    assert bill.meter_stop - bill.meter_start == bill.total_energy
    _, back = decode_frame(encode_frame(bill, 1))
    assert isinstance(back, TransactionRecord) and back.total_amount == bill.total_amount
    rt = charge.realtime("1" * 14, "01")
    assert rt.energy == bill.total_energy and rt.status == 3 and rt.soc >= 30


def test_charge_stops_at_full_battery_or_empty_balance():
    full = session(battery_kwh=1, soc=99)
    full.advance(600, datetime(2024, 5, 1), MODEL)
    assert full.stop_reason == STOP_SOC_FULL
    broke = session(balance=Decimal("0.10"), battery_kwh=1000)
    broke.advance(600, datetime(2024, 5, 1), MODEL)
    assert broke.stop_reason == STOP_NO_BALANCE
