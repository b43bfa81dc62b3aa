"""The one money module: every quantizer of the platform, each with an explicit rounding mode.

Convention (DESIGN "Money, time and identifiers", the pile's YKC 0x3B convention, see
``app/services/pricing.py``): money is ``Decimal``, never ``float``; amounts to 4 decimals (yuan),
energy to 4 decimals (kWh), prices to 5 decimals (yuan/kWh); **round half up, once, where a figure
is final**. The one exception is what a pile is told it may spend: rounded *down* to the fen, so it
is never more than the wallet holds.

No other module in ``app/`` calls ``Decimal.quantize`` (``tests/unit/test_money_time_modules.py``
scans for it): a figure is rounded here or not at all.
"""
from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

__all__ = [
    "AMOUNT_Q", "ENERGY_Q", "PRICE_Q", "RATE_Q", "ZHE_Q", "FEN_Q", "HUNDREDTH_Q", "POWER_Q", "LIVE_POWER_Q",
    "ZERO",
    "to_decimal", "quantize", "has_places",
    "q_amount", "q_energy", "q_price", "q_rate", "q_zhe", "q_pile_balance", "q_hundredth", "q_power",
    "q_live_power",
]

AMOUNT_Q = Decimal("0.0001")  # yuan, Money() = Numeric(14, 4); the pile's amounts ×10^4
ENERGY_Q = Decimal("0.0001")  # kWh, Energy() = Numeric(14, 4); the pile's meter ×10^4
PRICE_Q = Decimal("0.00001")  # yuan/kWh, Price() = Numeric(10, 5); the pile's prices ×10^5
RATE_Q = Decimal("0.0001")  # discount rate, Numeric(5, 4) (0.9500 = 9.5 折)
ZHE_Q = Decimal("0.001")  # a discount shown in 折 (9.125)
FEN_Q = Decimal("0.01")  # yuan on the pile's wire (balance, 2 decimals)
HUNDREDTH_Q = Decimal("0.01")  # report figures: hours, percentages
POWER_Q = Decimal("0.001")  # kW of a realtime sample (the charging curve)
LIVE_POWER_Q = Decimal("0.01")  # kW of a gun's live state (monitor cards)
ZERO = Decimal("0")


def to_decimal(value, what: str = "value") -> Decimal:
    """``value`` (str, int, Decimal) as a Decimal. A float is refused: it has already lost the figure."""
    if isinstance(value, float):
        raise TypeError(f"{what} must not be a float")
    return value if isinstance(value, Decimal) else Decimal(str(value))


def quantize(value, exp: Decimal, rounding: str = ROUND_HALF_UP, what: str = "value") -> Decimal:
    """``value`` rounded to the places of ``exp`` with ``rounding`` (always explicit)."""
    return to_decimal(value, what).quantize(exp, rounding=rounding)


def has_places(value, exp: Decimal) -> bool:
    """True when ``value`` has no more decimal places than ``exp`` (rounding would not change it)."""
    value = to_decimal(value)
    return value == value.quantize(exp, rounding=ROUND_HALF_UP)


def q_amount(value, what: str = "value") -> Decimal:
    """Money, yuan to 4 decimals, half up."""
    return quantize(value, AMOUNT_Q, ROUND_HALF_UP, what)


def q_energy(value, what: str = "value") -> Decimal:
    """Energy, kWh to 4 decimals, half up."""
    return quantize(value, ENERGY_Q, ROUND_HALF_UP, what)


def q_price(value, what: str = "value") -> Decimal:
    """Unit price, yuan/kWh to 5 decimals, half up."""
    return quantize(value, PRICE_Q, ROUND_HALF_UP, what)


def q_rate(value, what: str = "value") -> Decimal:
    """Discount rate to 4 decimals, half up."""
    return quantize(value, RATE_Q, ROUND_HALF_UP, what)


def q_zhe(value) -> Decimal:
    """A discount rate in 折 (rate × 10) to 3 decimals, half up, trailing zeros dropped (0.95 -> 9.5)."""
    return quantize(to_decimal(value) * 10, ZHE_Q, ROUND_HALF_UP).normalize()


def q_pile_balance(value) -> Decimal:
    """What a pile is told it may spend: yuan rounded **down** to the fen, never more than there is."""
    return quantize(value, FEN_Q, ROUND_DOWN, "balance")


def q_hundredth(value) -> Decimal:
    """A report figure (hours, percent) to 2 decimals, half up."""
    return quantize(value, HUNDREDTH_Q, ROUND_HALF_UP)


def q_power(value) -> Decimal:
    """Power of a realtime sample, kW to 3 decimals, half up."""
    return quantize(value, POWER_Q, ROUND_HALF_UP)


def q_live_power(value) -> Decimal:
    """Power shown as a gun's live state, kW to 2 decimals, half up."""
    return quantize(value, LIVE_POWER_Q, ROUND_HALF_UP)
