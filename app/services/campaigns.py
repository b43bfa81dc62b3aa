"""Marketing rules: discounts entered as 折 (9.5 = 95 %), campaign windows, coupon templates.

Rates are stored as multipliers (0.9500); staff type 折 values (0 < x ≤ 10, 10 = no discount).
"""

import json
from decimal import Decimal, InvalidOperation

from flask_babel import lazy_gettext as _l

from app.services.money import RATE_Q, has_places, q_rate, q_zhe

ZHE_MAX = Decimal("10")


class CampaignError(ValueError):
    """A marketing rule was broken; the message is shown to the user."""


def zhe_to_rate(value):
    """``9.5`` (折) -> ``Decimal("0.9500")``. Empty -> ``1`` (no discount)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return Decimal("1.0000")
    try:
        zhe = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise CampaignError(_l("The discount must be a number of 折, e.g. 9.5.")) from None
    if not zhe.is_finite() or zhe <= 0 or zhe > ZHE_MAX:
        raise CampaignError(
            _l("The discount must be greater than 0 and at most 10 折 (9.5 = 95 percent, 10 = no discount).")
        )
    rate = zhe / ZHE_MAX
    if not has_places(rate, RATE_Q):  # Numeric(5, 4)
        raise CampaignError(_l("The discount may have at most 3 decimal places (e.g. 9.125)."))
    return q_rate(rate)


def rate_to_zhe(rate):
    """``0.95`` -> ``Decimal("9.5")`` for the form; ``None`` stays ``None``."""
    if rate is None:
        return None
    return q_zhe(Decimal(str(rate)))


def check_window(start, end):
    if start and end and not start < end:
        raise CampaignError(_l("The end time must be after the start time."))


COUPON_NAME_MAX = 15


def check_coupon_template(
    coupon_type, discount_rate, face_value, threshold, validity_mode, valid_from, valid_to, valid_days
):
    """Field-keyed error messages of a coupon template ({field: message}); empty when valid."""
    errors = {}
    if coupon_type == "discount" and discount_rate is None:
        errors["discount_rate"] = _l("A discount coupon needs a discount (折).")
    if coupon_type in ("full_reduction", "deduction") and (face_value is None or face_value <= 0):
        errors["face_value"] = _l("This coupon type needs a face value greater than 0.")
    if (
        coupon_type == "full_reduction"
        and face_value is not None
        and threshold is not None
        and threshold > 0
        and face_value > threshold
    ):
        errors["face_value"] = _l("The amount taken off cannot exceed the spending threshold.")
    if validity_mode == "fixed":
        if not valid_from or not valid_to:
            errors["valid_to"] = _l("Fixed-date coupons need a start and an end time.")
        elif not valid_from < valid_to:
            errors["valid_to"] = _l("The end time must be after the start time.")
    elif validity_mode == "relative" and (not valid_days or valid_days <= 0):
        errors["valid_days"] = _l("Give the number of days the coupon stays valid after receipt.")
    return errors


# ----- time-of-day campaign periods (分时段折扣) -------------------------------------------------------


def parse_campaign_periods(rows):
    """Rows ``{start, end, electricity_rate, service_rate}`` (times HH:MM, rates in 折; a list or its JSON
    text) -> sorted ``[(start_minute, end_minute, electricity rate, service rate)]``. Windows are local
    clock times [start, end), every day; they may leave gaps (no discount there) but must not overlap;
    ``end`` 24:00 is the end of the day. Raises :class:`CampaignError` with every problem, one per line."""
    from app.services.price_templates import PriceTemplateError, fmt_minute, parse_clock

    if isinstance(rows, str):
        try:
            rows = json.loads(rows or "[]")
        except ValueError:
            raise CampaignError(_l("The periods could not be read.")) from None
    if not isinstance(rows, list):
        raise CampaignError(_l("The periods could not be read."))
    out, errors = [], []
    for row in rows:
        if not isinstance(row, dict):
            errors.append(str(_l("The periods could not be read.")))
            continue
        try:
            start = parse_clock(row.get("start"))
            end = parse_clock(row.get("end"), allow_24=True)
        except PriceTemplateError as exc:
            errors.extend(exc.messages)
            continue
        if end <= start:
            errors.append(str(_l("Period %(start)s-%(end)s: the end must be after the start.",
                                 start=fmt_minute(start), end=fmt_minute(end))))
            continue
        try:
            e_rate = zhe_to_rate(row.get("electricity_rate"))
            s_rate = zhe_to_rate(row.get("service_rate"))
        except CampaignError as exc:
            errors.append(str(exc))
            continue
        out.append((start, end, e_rate, s_rate))
    out.sort()
    for a, b in zip(out, out[1:], strict=False):
        if b[0] < a[1]:
            errors.append(str(_l("Periods %(a)s and %(b)s overlap.", a=f"{fmt_minute(a[0])}-{fmt_minute(a[1])}",
                                 b=f"{fmt_minute(b[0])}-{fmt_minute(b[1])}")))
    if errors:
        raise CampaignError("\n".join(errors))
    return out


def check_campaign_benefit(discount_mode, periods):
    """A time-of-day campaign needs at least one period."""
    if discount_mode == "time_of_day" and not periods:
        raise CampaignError(_l("A time-of-day discount needs at least one period."))


def periods_to_rows(periods):
    """CampaignPeriod rows -> editor rows (rates back in 折)."""
    from app.services.price_templates import fmt_minute

    return [{"start": fmt_minute(int(p.start_minute)), "end": fmt_minute(int(p.end_minute)),
             "electricity_rate": str(rate_to_zhe(p.electricity_rate)), "service_rate": str(rate_to_zhe(p.service_rate))}
            for p in sorted(periods, key=lambda p: p.start_minute)]
