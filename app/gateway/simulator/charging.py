"""A virtual pile's charging session: power curve, SOC growth, energy and money split by the
billing model's half-hour rate indexes, and the 0x3B transaction record at the end. No I/O.

Billing like a YKC pile (``ykc-protocol.md``: prices ×10^5, energies and amounts ×10^4 in 0x3B):
the meter runs unrounded; at every change of rate index its reading is taken to 4 dp (kWh,
half up), so a period's energy is the difference of two 4-dp readings and the per-period energies
add up exactly to meter stop − meter start. Each rate's amount = its unit price (electricity +
service, 5 dp) × its energy, rounded half up to 4 dp, once; the total amount is the sum of those.
A step of charging that crosses a half-hour boundary is split over both periods in proportion to
time (constant power within a step)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from app.gateway.ykc import BillingModelReply, BillingModelSet, RealtimeData, TransactionRecord, utc_to_beijing
from app.services.money import q_amount, q_energy  # the pile rounds like the platform: half up
from app.services.ykc_pricing import RATE_NAMES, unit_prices

FLAT = 2
DEFAULT_UNIT_PRICE = Decimal("1.00000")       # before the pile received any billing model

STOP_REMOTE = 0x40
STOP_SOC_FULL = 0x41
STOP_AMOUNT_REACHED = 0x43
STOP_TIME_REACHED = 0x44
STOP_MANUAL = 0x45
STOP_NO_BALANCE = 0x6E
STOP_EMERGENCY = 0x72

FLAG_APP = 0x01
FLAG_CARD = 0x02
FLAG_OFFLINE_CARD = 0x04


def rate_index_at(model: BillingModelReply | BillingModelSet | None, when: datetime) -> int:
    """Rate index (0 sharp ... 3 valley) in force at naive-UTC ``when`` (Beijing half hours)."""
    if model is None:
        return FLAT
    local = utc_to_beijing(when)
    slot = (local.hour * 60 + local.minute) // 30
    return model.rate_indexes[slot]


def rate_pieces(model, start: datetime, end: datetime) -> list[tuple[int, timedelta]]:
    """[(rate index, duration)] of the window [start, end) cut at the model's half-hour slots."""
    if model is None or end <= start:
        return [(rate_index_at(model, end), end - start)]
    out: list[tuple[int, timedelta]] = []
    t = start
    while t < end:
        local = utc_to_beijing(t)
        slot = local.replace(minute=local.minute // 30 * 30, second=0, microsecond=0)
        piece_end = min(t + (slot + timedelta(minutes=30) - local), end)
        index = rate_index_at(model, t)
        if out and out[-1][0] == index:
            out[-1] = (index, out[-1][1] + (piece_end - t))
        else:
            out.append((index, piece_end - t))
        t = piece_end
    return out


@dataclass
class ChargeSession:
    """One charge on one gun. ``advance`` integrates power over elapsed (simulated) time."""

    serial: str
    started_at: datetime                       # naive UTC
    meter_start: Decimal
    max_power_kw: float = 60.0
    battery_kwh: float = 60.0
    soc: float = 30.0
    balance: Decimal | None = None             # yuan; None = unlimited (card/offline start)
    flag: int = FLAG_APP
    vin: str = ""
    card: bytes = bytes(8)
    energy_by_rate: list[Decimal] = field(default_factory=lambda: [Decimal(0)] * 4)    # unrounded
    price_by_rate: list[Decimal] = field(default_factory=lambda: [Decimal(0)] * 4)
    # per-rate energy of the finished periods (differences of 4-dp meter readings) and the open one
    closed_energy: list[Decimal] = field(default_factory=lambda: [Decimal(0)] * 4)
    open_index: int | None = None
    open_reading: Decimal = Decimal(0)
    seconds: float = 0.0
    power_kw: float = 0.0
    voltage: float = 0.0
    current: float = 0.0
    stop_reason: int | None = None

    @property
    def energy(self) -> Decimal:
        return sum(self.energy_by_rate, Decimal(0))

    @property
    def amount(self) -> Decimal:
        return sum(self.billed()[1], Decimal(0))

    def _enter(self, index: int) -> None:
        """The meter passes into rate ``index``: close the open period at the 4-dp reading."""
        if self.open_index == index:
            return
        reading = q_energy(self.energy)
        if self.open_index is not None:
            self.closed_energy[self.open_index] += reading - self.open_reading
        self.open_index, self.open_reading = index, reading

    def billed(self) -> tuple[list[Decimal], list[Decimal]]:
        """Per-rate (energies kWh 4 dp, amounts yuan 4 dp) as the pile bills them now."""
        energies = list(self.closed_energy)
        if self.open_index is not None:
            energies[self.open_index] += q_energy(self.energy) - self.open_reading
        return energies, [q_amount(e * p) for e, p in zip(energies, self.price_by_rate, strict=True)]

    def advance(self, seconds: float, now: datetime, model, power_limit_pct: int = 100,
                rng: random.Random | None = None) -> None:
        """Charge for ``seconds`` ending at ``now``; sets ``stop_reason`` when the charge must end."""
        if seconds <= 0 or self.stop_reason is not None:
            return
        rng = rng or random
        taper = 1.0 if self.soc < 80 else max(0.05, (100 - self.soc) / 20)
        power = self.max_power_kw * power_limit_pct / 100 * taper * rng.uniform(0.95, 1.0)
        self.power_kw = power
        self.voltage = round(350 + self.soc * 1.2, 1)
        self.current = round(power * 1000 / self.voltage, 1)
        kwh = Decimal(str(round(power * seconds / 3600, 6)))
        if model is not None:
            self.price_by_rate = unit_prices(model)
        pieces = rate_pieces(model, now - timedelta(seconds=seconds), now)
        total = sum((d for _, d in pieces), timedelta(0))
        left = kwh
        for n, (index, duration) in enumerate(pieces):
            if model is None:
                self.price_by_rate[index] = DEFAULT_UNIT_PRICE
            part = left if n == len(pieces) - 1 else kwh * Decimal(duration / timedelta(microseconds=1)) / Decimal(
                total / timedelta(microseconds=1))
            self._enter(index)
            self.energy_by_rate[index] += part
            left -= part
        self.seconds += seconds
        self.soc = min(100.0, self.soc + float(kwh) / self.battery_kwh * 100)
        if self.soc >= 100:
            self.stop_reason = STOP_SOC_FULL
        elif self.balance is not None and self.amount >= self.balance:
            self.stop_reason = STOP_NO_BALANCE

    def realtime(self, pile_code: str, gun: str, status: int = 3, faults: int = 0) -> RealtimeData:
        return RealtimeData(
            transaction_serial=self.serial, pile_code=pile_code, gun=gun, status=status, gun_homed=0,
            gun_plugged=1, output_voltage=Decimal(str(self.voltage)), output_current=Decimal(str(self.current)),
            gun_temperature=35 + int(self.power_kw // 10), soc=int(self.soc), battery_max_temperature=32,
            charged_minutes=int(self.seconds // 60),
            remaining_minutes=int((100 - self.soc) / 100 * self.battery_kwh / max(self.power_kw, 1) * 60),
            energy=q_energy(self.energy), lossy_energy=q_energy(self.energy), amount=q_amount(self.amount),
            hardware_faults=faults)

    def bill(self, pile_code: str, gun: str, ended_at: datetime, stop_reason: int) -> TransactionRecord:
        """The 0x3B record: per-rate energies and amounts, totals equal to their sums."""
        fields = {}
        energies, amounts = self.billed()
        for index, name in enumerate(RATE_NAMES):
            fields[f"{name}_price"] = self.price_by_rate[index]
            fields[f"{name}_energy"] = energies[index]
            fields[f"{name}_lossy_energy"] = energies[index]
            fields[f"{name}_amount"] = amounts[index]
        total = sum(energies, Decimal(0))
        return TransactionRecord(
            transaction_serial=self.serial, pile_code=pile_code, gun=gun, start_time=self.started_at,
            end_time=ended_at, meter_start=self.meter_start, meter_stop=self.meter_start + total,
            total_energy=total, total_lossy_energy=total, total_amount=sum(amounts, Decimal(0)),
            vin=self.vin, transaction_flag=self.flag, transaction_time=ended_at, stop_reason=stop_reason,
            physical_card=self.card, **fields)
