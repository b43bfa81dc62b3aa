"""YKC billing model from a price template: 48 half-hour slots, rate index per price pair, model id."""

from decimal import Decimal

import pytest

from app.gateway.ykc import BillingModelReply, decode_frame, encode_frame
from app.models import PricePeriod, PriceTemplate
from app.services.ykc_pricing import BillingModelError, billing_model_fields, billing_model_id, unit_prices


def template(rows, id=7, version=3):
    tpl = PriceTemplate(code="T", name="T")
    tpl.id, tpl.version = id, version
    tpl.periods = [PricePeriod(start_minute=s, end_minute=e, level=lv, electricity_price=Decimal(ep),
                               service_price=Decimal(sp)) for s, e, lv, ep, sp in rows]
    return tpl


TOU = [(0, 480, "valley", "0.31", "0.5"), (480, 600, "flat", "0.62", "0.6"), (600, 840, "peak", "1.05", "0.7"),
       (840, 1020, "flat", "0.62", "0.6"), (1020, 1140, "sharp", "1.25", "0.8"), (1140, 1260, "peak", "1.05", "0.7"),
       (1260, 1440, "flat", "0.62", "0.6")]


def test_time_of_use_template_maps_to_levels():
    fields = billing_model_fields(template(TOU))
    assert fields["billing_model_id"] == "0703"
    idx = fields["rate_indexes"]
    assert len(idx) == 48
    assert idx[:16] == [3] * 16 and idx[16:20] == [2] * 4 and idx[20:28] == [1] * 8
    assert idx[34:38] == [0] * 4 and idx[42:] == [2] * 6
    assert (fields["sharp_electricity_rate"], fields["sharp_service_rate"]) == (Decimal("1.25000"), Decimal("0.80000"))
    assert (fields["valley_electricity_rate"], fields["valley_service_rate"]) == (Decimal("0.31"), Decimal("0.5"))
    msg = BillingModelReply(pile_code="32010600019236", **fields)
    _, back = decode_frame(encode_frame(msg, 1))
    assert back == msg
    assert unit_prices(back) == [Decimal("2.05"), Decimal("1.75"), Decimal("1.22"), Decimal("0.81")]


def test_pairs_sharing_a_level_get_free_indexes_and_unused_rates_are_zero():
    rows = [(0, 720, "flat", "0.5", "0.5"), (720, 1440, "flat", "0.9", "0.5")]
    fields = billing_model_fields(template(rows))
    assert fields["rate_indexes"] == [2] * 24 + [0] * 24
    assert fields["sharp_electricity_rate"] == Decimal("0.9") and fields["peak_electricity_rate"] == 0


def test_more_than_four_price_pairs_is_refused():
    rows = [(i * 240, (i + 1) * 240, "flat", f"0.{i + 1}", "0.5") for i in range(6)]
    with pytest.raises(BillingModelError):
        billing_model_fields(template(rows))


def test_model_id_changes_with_the_version_and_is_never_zero():
    assert billing_model_id(template(TOU, id=7, version=3)) != billing_model_id(template(TOU, id=7, version=4))
    assert billing_model_id(template(TOU, id=100, version=0)) == "0001"
    assert len(billing_model_id(template(TOU, id=123456, version=99))) == 4
