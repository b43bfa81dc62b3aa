"""Price template (计费模版) rules.

Periods are local clock times [start, end) in minutes. A template's periods must cover
00:00–24:00 exactly: no gap, no overlap. A template used by YKC piles must also reduce to at
most 4 distinct (electricity, service) price pairs, and its period boundaries must lie on the
half-hour grid (YKC sends 48 half-hour slots). Every violation gets its own message.
"""
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from flask_babel import lazy_gettext as _l

from app.models.station import PRICE_LEVEL
from app.services.money import PRICE_Q, has_places, q_price

LEVELS = [v for v, _ in PRICE_LEVEL]
YKC_MAX_PRICE_PAIRS = 4


class PriceTemplateError(ValueError):
    """Carries every problem found, each as its own message."""

    def __init__(self, messages):
        self.messages = [str(m) for m in messages]
        self.errors = {"periods": self.messages}  # REST answers 422 with it, keyed by the field
        super().__init__("; ".join(self.messages))


@dataclass
class PeriodSpec:
    start: int  # minutes since local midnight
    end: int
    level: str
    electricity_price: Decimal
    service_price: Decimal


def fmt_minute(m):
    return f"{m // 60:02d}:{m % 60:02d}"


def parse_clock(text, allow_24=False):
    try:
        hh, mm = str(text).strip().split(":")
        h, m = int(hh), int(mm)
    except (ValueError, AttributeError):
        raise PriceTemplateError([_l("Invalid time %(value)s: use HH:MM.", value=text)]) from None
    if not (0 <= m < 60) or not (0 <= h <= 24) or (h == 24 and (m or not allow_24)):
        raise PriceTemplateError([_l("Invalid time %(value)s: use HH:MM.", value=text)])
    return h * 60 + m


def parse_price(value, label):
    try:
        price = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise PriceTemplateError([_l("Invalid %(what)s: %(value)s.", what=label, value=value)]) from None
    if not price.is_finite() or price < 0:
        raise PriceTemplateError([_l("Invalid %(what)s: %(value)s.", what=label, value=value)])
    if not has_places(price, PRICE_Q):
        raise PriceTemplateError([_l("%(what)s has more than 5 decimals: %(value)s.", what=label, value=value)])
    return q_price(price)


def parse_periods(rows):
    """rows: list of dicts {start, end, level, electricity_price, service_price} (strings ok),
    or a JSON text of such a list. Returns [PeriodSpec] sorted by start."""
    if isinstance(rows, str):
        try:
            rows = json.loads(rows or "[]")
        except ValueError:
            raise PriceTemplateError([_l("The periods could not be read.")]) from None
    if not isinstance(rows, list) or not rows:
        raise PriceTemplateError([_l("Add at least one period.")])
    specs, errors = [], []
    for row in rows:
        try:
            start = parse_clock(row.get("start"))
            end = parse_clock(row.get("end"), allow_24=True)
            level = row.get("level") or "flat"
            if level not in LEVELS:
                raise PriceTemplateError([_l("Unknown price level %(value)s.", value=level)])
            specs.append(PeriodSpec(start, end, level,
                                    parse_price(row.get("electricity_price"), _l("electricity price")),
                                    parse_price(row.get("service_price"), _l("service price"))))
        except PriceTemplateError as exc:
            errors.extend(exc.messages)
        except AttributeError:
            errors.append(str(_l("The periods could not be read.")))
    if errors:
        raise PriceTemplateError(errors)
    return sorted(specs, key=lambda p: (p.start, p.end))


def validate_periods(specs, ykc=False):
    """Raise PriceTemplateError listing every problem; return specs when valid."""
    errors = []
    for p in specs:
        if p.end <= p.start:
            errors.append(_l("Period %(start)s–%(end)s ends before it starts.",
                             start=fmt_minute(p.start), end=fmt_minute(p.end)))
    if specs[0].start != 0 or max(p.end for p in specs) != 1440:
        errors.append(_l("The periods must cover 24 hours, from 00:00 to 24:00."))
    for a, b in zip(specs, specs[1:], strict=False):
        if b.start > a.end:
            errors.append(_l("Gap between %(a)s and %(b)s: no price is set for that time.",
                             a=fmt_minute(a.end), b=fmt_minute(b.start)))
        elif b.start < a.end:
            errors.append(_l("Periods %(a)s and %(b)s overlap.",
                             a=f"{fmt_minute(a.start)}–{fmt_minute(a.end)}",
                             b=f"{fmt_minute(b.start)}–{fmt_minute(b.end)}"))
    if ykc:
        pairs = {(p.electricity_price, p.service_price) for p in specs}
        if len(pairs) > YKC_MAX_PRICE_PAIRS:
            errors.append(_l("%(n)d different price pairs: YKC piles accept at most 4.", n=len(pairs)))
        off = sorted({m for p in specs for m in (p.start, p.end) if m % 30})
        if off:
            errors.append(_l("Times off the half-hour grid: %(times)s (YKC piles bill in half hours).",
                             times=", ".join(fmt_minute(m) for m in off)))
    if errors:
        raise PriceTemplateError(errors)
    return specs


def periods_to_rows(periods):
    return [{"start": fmt_minute(p.start_minute), "end": fmt_minute(p.end_minute), "level": p.level,
             "electricity_price": str(p.electricity_price), "service_price": str(p.service_price)}
            for p in sorted(periods, key=lambda p: p.start_minute)]


def used_by_ykc_piles(session, template):
    """True when a station using ``template`` has a YKC pile."""
    if template.id is None:
        return False
    from sqlalchemy import exists, select

    from app.models import Pile, Station

    q = select(exists().where(Station.price_template_id == template.id, Pile.station_id == Station.id,
                              Pile.protocol.like("ykc%")))
    return bool(session.execute(q).scalar())


def apply_periods(session, template, rows):
    """Validate ``rows`` for ``template`` and replace its periods (no commit)."""
    from app.models import PricePeriod

    specs = validate_periods(parse_periods(rows), ykc=used_by_ykc_piles(session, template))
    if template.periods:
        # old rows go first: (template_id, start_minute) is unique and the new rows reuse the starts
        template.periods.clear()
        session.flush()
    template.periods = [PricePeriod(start_minute=p.start, end_minute=p.end, level=p.level,
                                    electricity_price=p.electricity_price, service_price=p.service_price)
                        for p in specs]
    template.version = (template.version or 0) + 1
    return template


NOT_GIVEN = object()


def save_template(session, template, rows=NOT_GIVEN, creating=False):
    """The write command of a price template, for the admin form and REST alike (no commit).

    ``rows``: the periods (list of {start, end, level, electricity_price, service_price} or its JSON
    text). A new template needs them; an update without them keeps the periods it has. Raises
    :class:`PriceTemplateError` with every problem; returns True when the periods were replaced
    (the template then has a new version and its piles need the new price: :func:`template_saved`).
    """
    if rows is NOT_GIVEN:
        if not creating:
            return False
        rows = None
    apply_periods(session, template, rows)
    return True


def template_saved(template, periods_replaced):
    """After a template write is committed: the piles of the stations using it get the new
    billing model (0x58) once idle."""
    if periods_replaced and template.id is not None:
        from app.services import masterdata

        return masterdata.push_price(template_id=template.id)
    return None


def price_at(template, minute):
    """The period of ``template`` in force at local minute-of-day ``minute``."""
    for p in template.periods:
        if p.start_minute <= minute < p.end_minute:
            return p
    raise LookupError(minute)
