"""YKC billing model (计费模型) built from a station's price template.

A YKC pile knows four rates (0 sharp, 1 peak, 2 flat, 3 valley: electricity + service fee each)
and a rate index for each of the 48 half hours of the day. The template's periods are sampled at
every half hour; each distinct (electricity, service) price pair gets a rate index — the index of
its period's level when that is still free, else the lowest free one.

The model id (BCD 2 bytes: 4 digits, ``0001``-``9999``) of a stored template is handed out once
per (template id, version) and kept in Redis (:func:`assign_model_id`): no two pushed models share
an id (template 1 v3 and template 101 v3 used to be both ``0103``), and a number a pile still
holds is never given to another model. Every change of the template gives the pile a model id it
does not have, so its 0x05 check fails until it takes the new model. Should Redis lose the table,
models get fresh numbers (never one a pile holds): piles only download their model once more.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select

from app.extensions import db, get_redis
from app.models import Pile
from app.models.station import PRICE_LEVEL_YKC
from app.services.money import q_price
from app.services.price_templates import YKC_MAX_PRICE_PAIRS, price_at

SLOTS = 48
RATE_NAMES = ("sharp", "peak", "flat", "valley")
NO_MODEL = "0000"               # what a pile reports before it ever received a model
ZERO = Decimal("0.00000")


class BillingModelError(ValueError):
    """The template cannot be expressed as a YKC billing model."""


MAX_MODEL_ID = 9999
MODEL_IDS_KEY = "cpms:ykc:model:ids"        # hash "template:version" -> "0042"
MODEL_PAIRS_KEY = "cpms:ykc:model:pairs"    # hash "0042" -> "template:version"
MODEL_SEQ_KEY = "cpms:ykc:model:seq"        # the last number handed out (the next search starts after it)

# KEYS: ids, pairs, seq. ARGV: pair, max, then the numbers piles hold. The next number after the last
# one handed out that is neither taken nor held; when all are taken, the next one not held is
# taken back from its old model (the least recently handed out).
_ASSIGN = """
local got = redis.call('hget', KEYS[1], ARGV[1])
if got then return got end
local max = tonumber(ARGV[2])
local held = {}
for i = 3, #ARGV do held[ARGV[i]] = true end
local n = tonumber(redis.call('get', KEYS[3]) or '0')
for pass = 1, 2 do
  for step = 1, max do
    n = n % max + 1
    local id = string.format('%04d', n)
    if not held[id] and (pass == 2 or redis.call('hexists', KEYS[2], id) == 0) then
      local old = redis.call('hget', KEYS[2], id)
      if old then redis.call('hdel', KEYS[1], old) end
      redis.call('hset', KEYS[1], ARGV[1], id)
      redis.call('hset', KEYS[2], id, ARGV[1])
      redis.call('set', KEYS[3], n)
      return id
    end
  end
end
return false
"""


def derived_model_id(template) -> str:
    """4 digits from the id and version, for a template that is not stored (previews, pricing
    checks): such a model is never pushed. Not unique (template 1 v3 and 101 v3 are both 0103)."""
    value = (int(template.id or 0) * 100 + int(template.version or 0) % 100) % 10000
    return f"{value or 1:04d}"


def held_model_ids() -> set[str]:
    """Model ids piles report holding (as recorded in the database)."""
    rows = db.session.scalars(select(Pile.billing_model_id).where(Pile.billing_model_id.is_not(None)).distinct())
    return {f"{int(value):04d}" for value in rows if 0 < int(value) <= MAX_MODEL_ID}


def assign_model_id(template_id: int, version: int, held: set[str] | None = None) -> str:
    """The model id of (template id, version): the same on every call and every process; handed out
    on the first call, never ``0000``, never one another model has or a pile still holds
    (``held``: default :func:`held_model_ids`)."""
    redis = get_redis()
    pair = f"{int(template_id)}:{int(version or 0)}"
    got = redis.hget(MODEL_IDS_KEY, pair)
    if got is None:
        held = held_model_ids() if held is None else held
        got = redis.eval(_ASSIGN, 3, MODEL_IDS_KEY, MODEL_PAIRS_KEY, MODEL_SEQ_KEY, pair, MAX_MODEL_ID, *sorted(held))
        if not got:
            raise BillingModelError("every billing model id is held by a pile")
    return got.decode() if isinstance(got, bytes) else str(got)


def _stored(template) -> bool:
    state = sa_inspect(template, raiseerr=False)
    return state is not None and state.has_identity


def billing_model_id(template) -> str:
    """The 4-digit model id pushed for the template's current version (:func:`assign_model_id`);
    :func:`derived_model_id` for a template object that is not stored."""
    if not _stored(template):
        return derived_model_id(template)
    return assign_model_id(template.id, template.version)


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
        fields[f"{name}_electricity_rate"] = q_price(electricity)
        fields[f"{name}_service_rate"] = q_price(service)
    return fields


def unit_prices(model) -> list[Decimal]:
    """Electricity + service price per rate index of a decoded 0x0A / 0x58 message."""
    return [getattr(model, f"{name}_electricity_rate") + getattr(model, f"{name}_service_rate")
            for name in RATE_NAMES]
