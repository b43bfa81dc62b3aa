"""Price template rules: 24 h coverage, gaps, overlaps, and the YKC limits — each violation
its own message; valid templates pass."""
from decimal import Decimal

import pytest

from app.services.price_templates import PriceTemplateError, parse_periods, validate_periods


def rows(*spec):
    return [{"start": s, "end": e, "level": "flat", "electricity_price": ep, "service_price": sp}
            for s, e, ep, sp in spec]


def errors(data, ykc=False):
    with pytest.raises(PriceTemplateError) as exc:
        validate_periods(parse_periods(data), ykc=ykc)
    return exc.value.messages


def test_valid_four_level_template_passes_ykc_rules():
    data = rows(("00:00", "08:00", "0.31", "0.5"), ("08:00", "10:00", "0.62", "0.6"),
                ("10:00", "14:00", "1.05", "0.7"), ("14:00", "17:00", "0.62", "0.6"),
                ("17:00", "19:00", "1.25", "0.8"), ("19:00", "24:00", "1.05", "0.7"))
    specs = validate_periods(parse_periods(data), ykc=True)
    assert [(p.start, p.end) for p in specs][0] == (0, 480)
    assert specs[-1].end == 1440
    assert specs[0].electricity_price == Decimal("0.31000")


def test_single_period_is_valid():
    assert len(validate_periods(parse_periods(rows(("00:00", "24:00", "1", "0.8"))), ykc=True)) == 1


def test_gap_is_reported():
    msgs = errors(rows(("00:00", "08:00", "1", "1"), ("09:00", "24:00", "1", "1")))
    assert msgs == ["Gap between 08:00 and 09:00: no price is set for that time."]


def test_overlap_is_reported():
    msgs = errors(rows(("00:00", "10:00", "1", "1"), ("09:00", "24:00", "1", "1")))
    assert msgs == ["Periods 00:00–10:00 and 09:00–24:00 overlap."]


def test_not_24_hours_is_reported():
    msgs = errors(rows(("00:00", "08:00", "1", "1"), ("08:00", "23:00", "1", "1")))
    assert msgs == ["The periods must cover 24 hours, from 00:00 to 24:00."]
    msgs = errors(rows(("01:00", "24:00", "1", "1")))
    assert msgs == ["The periods must cover 24 hours, from 00:00 to 24:00."]


def test_more_than_four_price_pairs_for_ykc():
    data = rows(*[(f"{h:02d}:00", f"{h + 4:02d}:00" if h + 4 < 24 else "24:00", str(h + 1), "0.5")
                  for h in range(0, 24, 4)])
    assert errors(data, ykc=True) == ["6 different price pairs: YKC piles accept at most 4."]
    validate_periods(parse_periods(data), ykc=False)  # fine for a template no YKC pile uses


def test_off_half_hour_grid_for_ykc():
    data = rows(("00:00", "08:15", "1", "1"), ("08:15", "24:00", "2", "1"))
    assert errors(data, ykc=True) == ["Times off the half-hour grid: 08:15 (YKC piles bill in half hours)."]
    validate_periods(parse_periods(data), ykc=False)


def test_several_problems_each_get_their_own_message():
    data = rows(("00:00", "07:45", "1", "1"), ("08:00", "12:00", "2", "1"), ("11:00", "16:00", "3", "1"),
                ("16:00", "20:00", "4", "1"), ("20:00", "23:00", "5", "1"))
    msgs = errors(data, ykc=True)
    assert len(msgs) == 5
    assert any(m.startswith("The periods must cover") for m in msgs)
    assert any(m.startswith("Gap between 07:45") for m in msgs)
    assert any("overlap" in m for m in msgs)
    assert any(m.startswith("5 different price pairs") for m in msgs)
    assert any(m.startswith("Times off the half-hour grid: 07:45") for m in msgs)


@pytest.mark.parametrize("bad, message", [
    ({"start": "8:xx", "end": "24:00", "electricity_price": "1", "service_price": "1"}, "Invalid time 8:xx"),
    ({"start": "00:00", "end": "24:00", "electricity_price": "-1", "service_price": "1"}, "Invalid electricity"),
    ({"start": "00:00", "end": "24:00", "electricity_price": "1.123456", "service_price": "1"},
     "electricity price has more than 5 decimals"),
    ({"start": "00:00", "end": "24:00", "electricity_price": "1", "service_price": "abc"}, "Invalid service"),
])
def test_bad_values_are_named(bad, message):
    msgs = errors([bad])
    assert msgs[0].startswith(message), msgs
