"""Per-period amounts follow the pile's rounding (YKC 0x3B: prices 5 dp, energies 4 dp, amounts 4 dp):
amount = energy × (electricity + service price) rounded half up once; the electricity fee is rounded
on its own and the service fee is the remainder. Worked examples in Decimal, then many random
sessions billed by the simulator's own pile model and priced by the platform from the 0x13 samples:
the whole orders agree to 0.0001."""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal as D
from random import Random

import pytest

from app.gateway.simulator.charging import ChargeSession
from app.gateway.ykc import BillingModelReply
from app.services.pricing import RATE_NAMES, period_fees, price_samples

# a YKC-expressible tariff: valley 00:00-08:00 Beijing (0.30000 + 0.20000), peak afterwards (1.00000 + 0.50000)
SNAP = {"template_id": 1, "code": "T", "name": "T", "version": 1, "timezone": "Asia/Shanghai", "periods": [
    {"start_minute": 0, "end_minute": 480, "level": "valley", "electricity_price": "0.30000",
     "service_price": "0.20000"},
    {"start_minute": 480, "end_minute": 1440, "level": "peak", "electricity_price": "1.00000",
     "service_price": "0.50000"}]}
MODEL = BillingModelReply(pile_code="1" * 14, billing_model_id="0101",
                          peak_electricity_rate=D("1.00000"), peak_service_rate=D("0.50000"),
                          valley_electricity_rate=D("0.30000"), valley_service_rate=D("0.20000"),
                          rate_indexes=[3] * 16 + [1] * 32)


class FullPower:
    """A random source that always draws the top of the range (full power, fixed figures)."""

    def uniform(self, a, b):
        return b


# --- worked examples -----------------------------------------------------------------------------------------


def test_period_amount_is_rounded_once_on_the_unit_price():
    # 12.3457 kWh at 0.62000 + 0.60000: amount 12.3457 × 1.22 = 15.061754 → 15.0618 (the pile's figure)
    electricity, service = period_fees(D("12.3457"), D("0.62000"), D("0.60000"))
    assert (electricity, service) == (D("7.6543"), D("7.4075"))        # 7.654334 → 7.6543; 15.0618 − 7.6543
    assert electricity + service == D("15.0618")
    # rounding the two fees on their own gives 7.6543 + 7.4074 (7.40742) = 15.0617: one fen-hundredth short
    assert (D("12.3457") * D("0.60000")).quantize(D("0.0001")) == D("7.4074")


@pytest.mark.parametrize("energy,ep,sp,fees", [
    (D("0.3083"), D("1.00000"), D("0.50000"), (D("0.3083"), D("0.1542"))),     # 0.46245 → 0.4625 (half up)
    (D("1.0001"), D("0.33333"), D("0.66667"), (D("0.3334"), D("0.6667"))),     # 1.0001 × 1.00000 = 1.0001
    (D("7.7777"), D("0.00000"), D("0.88888"), (D("0.0000"), D("6.9134"))),     # 6.91344...: service only
    (D("5.5555"), D("1.11111"), D("0.00000"), (D("6.1728"), D("0.0000"))),     # 6.17283...: electricity only
    (D("0.0000"), D("1.23456"), D("0.65432"), (D("0.0000"), D("0.0000"))),
])
def test_period_fee_examples(energy, ep, sp, fees):
    assert period_fees(energy, ep, sp) == fees
    assert sum(fees) == (energy * (ep + sp)).quantize(D("0.0001"), rounding="ROUND_HALF_UP")


def test_samples_breakdown_worked_example():
    # Beijing 07:58:30-08:00:30; readings 0.6167 at 07:59:30 and 1.2333 at 08:00:30, bill total 1.2333
    start = datetime(2024, 4, 30, 23, 58, 30)
    samples = [(start + timedelta(seconds=60), D("0.6167")), (start + timedelta(seconds=120), D("1.2333"))]
    b = price_samples(SNAP, samples, started_at=start, ended_at=start + timedelta(seconds=120),
                      final_energy=D("1.2333"))
    rows = [(p.level, p.energy, p.electricity_fee, p.service_fee) for p in b.periods]
    # 08:00 reading: 0.6167 + (1.2333 − 0.6167) × 30/60 = 0.9250; valley 0.9250 × 0.5 = 0.4625,
    # peak 0.3083 × 1.5 = 0.46245 → 0.4625 (electricity 0.3083, service 0.4625 − 0.3083 = 0.1542)
    assert rows == [("valley", D("0.9250"), D("0.2775"), D("0.1850")),
                    ("peak", D("0.3083"), D("0.3083"), D("0.1542"))]
    assert (b.energy, b.total_amount) == (D("1.2333"), D("0.9250"))


def test_simulator_bill_worked_example():
    # 37 kW for 60 s = 0.616667 kWh per minute; the second minute crosses 08:00 Beijing (30 s each side)
    charge = ChargeSession(serial="1" * 32, started_at=datetime(2024, 4, 30, 23, 58, 30), meter_start=D("100"),
                           max_power_kw=37.0, battery_kwh=1000)
    charge.advance(60, datetime(2024, 4, 30, 23, 59, 30), MODEL, rng=FullPower())
    assert charge.realtime("1" * 14, "01").energy == D("0.6167")
    charge.advance(60, datetime(2024, 5, 1, 0, 0, 30), MODEL, rng=FullPower())
    bill = charge.bill("1" * 14, "01", datetime(2024, 5, 1, 0, 0, 30), 0x40)
    # meter at 08:00: 0.616667 + 0.3083335 = 0.9250005 → 0.9250; at the end 1.233334 → 1.2333
    assert (bill.valley_energy, bill.peak_energy, bill.total_energy) == (D("0.9250"), D("0.3083"), D("1.2333"))
    assert (bill.valley_price, bill.peak_price) == (D("0.50000"), D("1.50000"))
    # valley 0.9250 × 0.5 = 0.4625; peak 0.3083 × 1.5 = 0.46245 → 0.4625 (half up, once)
    assert (bill.valley_amount, bill.peak_amount, bill.total_amount) == (D("0.4625"), D("0.4625"), D("0.9250"))
    assert bill.meter_stop - bill.meter_start == bill.total_energy
    assert charge.realtime("1" * 14, "01").amount == bill.total_amount


# --- many random orders: the simulator's pile vs the platform -----------------------------------------------


def random_tariff(rng: Random):
    """(snapshot, billing model): 2-6 periods on half-hour boundaries, each of its own level/rate."""
    cuts = sorted(rng.sample(range(1, 48), rng.randint(1, 5)))
    bounds = [0] + cuts + [48]
    levels = list(range(4))
    rng.shuffle(levels)
    prices = {i: (D(rng.randint(10000, 150000)) / 100000, D(rng.randint(0, 120000)) / 100000) for i in range(4)}
    periods, slots = [], []
    for n, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        index = levels[n % 4] if n < 4 else levels[(n + 1) % 4]       # never the same rate twice in a row
        ep, sp = prices[index]
        periods.append({"start_minute": a * 30, "end_minute": b * 30, "level": RATE_NAMES[index],
                        "electricity_price": f"{ep:.5f}", "service_price": f"{sp:.5f}"})
        slots += [index] * (b - a)
    rates = {}
    for index, name in enumerate(RATE_NAMES):
        ep, sp = prices[index]
        rates[f"{name}_electricity_rate"], rates[f"{name}_service_rate"] = ep, sp
    snap = {"template_id": 1, "code": "R", "name": "R", "version": 1, "timezone": "Asia/Shanghai",
            "periods": periods}
    return snap, BillingModelReply(pile_code="1" * 14, billing_model_id="0001", rate_indexes=slots, **rates)


def simulate(rng: Random, model):
    """One session: 0x13 samples every ``step`` s (steps divide 30 min and start on a step, so every
    period boundary has a sample, as a pile's 15 s realtime frames do at :00/:15/:30/:45), and its bill."""
    step = rng.choice([15, 20, 30, 60, 90, 120])
    day = datetime(2024, 5, 1) + timedelta(days=rng.randint(0, 30))
    start = day + timedelta(seconds=step * rng.randrange(24 * 3600 // step))
    charge = ChargeSession(serial="2" * 32, started_at=start, meter_start=D("1000"),
                           max_power_kw=rng.choice([7.0, 22.0, 60.0, 120.0, 160.0]), battery_kwh=10000,
                           soc=rng.uniform(0, 50))
    samples, now = [], start
    for _ in range(rng.randint(1, 6 * 3600 // step)):
        now += timedelta(seconds=step)
        charge.advance(step, now, model, power_limit_pct=rng.choice([30, 60, 100]), rng=rng)
        rt = charge.realtime("1" * 14, "01")
        samples.append((now, rt.energy))
        if charge.stop_reason is not None:
            break
    return start, now, samples, charge


def rates_visited(model, start, end):
    seq = []
    t = start
    while t < end:
        local = t + timedelta(hours=8)
        index = model.rate_indexes[(local.hour * 60 + local.minute) // 30]
        if not seq or seq[-1] != index:
            seq.append(index)
        t += timedelta(minutes=30) - timedelta(minutes=local.minute % 30, seconds=local.second)
    return seq


def test_platform_and_pile_agree_on_many_random_orders():
    rng = Random(20240501)
    checked = 0
    for _ in range(400):
        snap, model = random_tariff(rng)
        start, end, samples, charge = simulate(rng, model)
        bill = charge.bill("1" * 14, "01", end, 0x40)
        breakdown = price_samples(snap, samples, started_at=start, ended_at=end, final_energy=bill.total_energy)
        visited = rates_visited(model, start, end)
        assert breakdown.energy == bill.total_energy
        if len(visited) != len(set(visited)):
            # a rate passed twice (flat, peak, flat): the pile bills its summed energy once, the platform
            # each occurrence — then (and only then) each extra occurrence may cost 0.0001
            assert abs(breakdown.total_amount - bill.total_amount) <= D("0.0001") * (len(visited) - len(set(visited)))
            continue
        checked += 1
        per_rate = {}
        for p in breakdown.periods:
            per_rate[p.level] = per_rate.get(p.level, D(0)) + p.amount
        for name in RATE_NAMES:
            assert per_rate.get(name, D("0.0000")) == getattr(bill, f"{name}_amount"), (name, start, end)
        assert breakdown.total_amount == bill.total_amount, (start, end, breakdown.as_dict(), bill)
        assert breakdown.total_amount == breakdown.electricity_fee + breakdown.service_fee
    assert checked >= 300
