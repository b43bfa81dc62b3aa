"""YKC billing model (计费模型) built from a station's price template.

A YKC pile knows four rates (0 sharp, 1 peak, 2 flat, 3 valley: electricity + service fee each)
and a rate index for each of the 48 half hours of the day. The template's periods are sampled at
every half hour; each distinct (electricity, service) price pair gets a rate index — the index of
its period's level when that is still free, else the lowest free one. The model id (BCD, 4 digits)
is derived from the template id and version, so every change of the template gives the pile a
model id it does not have, and its 0x05 check fails until it takes the new model.
"""

from __future__ import annotations

from decimal import Decimal

from app.models.station import PRICE_LEVEL_YKC
from app.services.price_templates import YKC_MAX_PRICE_PAIRS, price_at

SLOTS = 48
RATE_NAMES = ("sharp", "peak", "flat", "valley")
NO_MODEL = "0000"               # what a pile reports before it ever received a model
ZERO = Decimal("0.00000")


class BillingModelError(ValueError):
    """The template cannot be expressed as a YKC billing model."""


def billing_model_id(template) -> str:
    """4 digits from the template id and version; never ``0000``."""
    value = (int(template.id) * 100 + int(template.version or 0) % 100) % 10000
    return f"{value or 1:04d}"


def billing_model_fields(template) -> dict:
    """Keyword arguments for BillingModelReply / BillingModelSet (all but ``pile_code``)."""
    if not template.periods:
        raise BillingModelError(f"template {template} has no periods")
    pairs: dict[tuple[Decimal, Decimal], int] = {}
    indexes: list[int] = []
    for slot in range(SLOTS):
        period = price_at(template, slot * 30)
        pair = (Decimal(period.electricity_price), Decimal(period.service_price))
        index = pairs.get(pair)
        if index is None:
            taken = set(pairs.values())
            if len(taken) >= YKC_MAX_PRICE_PAIRS:
                raise BillingModelError(f"template {template} has more than {YKC_MAX_PRICE_PAIRS} price pairs")
            preferred = PRICE_LEVEL_YKC.get(period.level, 2)
            index = preferred if preferred not in taken else min(set(range(4)) - taken)
            pairs[pair] = index
        indexes.append(index)
    rates = {index: pair for pair, index in pairs.items()}
    fields: dict = {"billing_model_id": billing_model_id(template), "loss_ratio": 0, "rate_indexes": indexes}
    for index, name in enumerate(RATE_NAMES):
        electricity, service = rates.get(index, (ZERO, ZERO))
        fields[f"{name}_electricity_rate"] = electricity.quantize(ZERO)
        fields[f"{name}_service_rate"] = service.quantize(ZERO)
    return fields


def unit_prices(model) -> list[Decimal]:
    """Electricity + service price per rate index of a decoded 0x0A / 0x58 message."""
    return [getattr(model, f"{name}_electricity_rate") + getattr(model, f"{name}_service_rate")
            for name in RATE_NAMES]
