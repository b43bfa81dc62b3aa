"""YKC billing-model ids (BCD 2 bytes, 4 digits) are unique among everything pushed.

The old id was derived from the template id and version, so template 1 v3 and template 101 v3 were
both ``0103``: a pile holding one model was told it had the other. Ids are now handed out once per
(template id, version), kept in Redis, and never one a pile still holds. Real database and Redis."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from sqlalchemy import delete, func, select

from app.extensions import db, get_redis
from app.models import Operator, Pile, PricePeriod, PriceTemplate
from app.services import ykc_pricing
from app.services.ykc_pricing import (
    MODEL_IDS_KEY,
    MODEL_PAIRS_KEY,
    MODEL_SEQ_KEY,
    assign_model_id,
    billing_model_fields,
    billing_model_id,
    derived_model_id,
)

_codes = itertools.count(1)


@pytest.fixture
def templates(app):
    """make(id, version): a stored template with that id; all removed afterwards."""
    made = []

    def make(template_id, version=3):
        operator_id = db.session.scalar(select(Operator.id).order_by(Operator.id))
        tpl = PriceTemplate(id=template_id, operator_id=operator_id, code=f"BMID{next(_codes)}-{template_id}",
                            name=f"model id {template_id}", version=version)
        tpl.periods = [PricePeriod(start_minute=0, end_minute=1440, level="flat",
                                   electricity_price=Decimal("0.80000"), service_price=Decimal("0.40000"))]
        db.session.add(tpl)
        db.session.commit()
        made.append(template_id)
        return tpl

    with app.app_context():
        yield make
        db.session.rollback()
        db.session.execute(delete(PricePeriod).where(PricePeriod.template_id.in_(made)))
        db.session.execute(delete(PriceTemplate).where(PriceTemplate.id.in_(made)))
        db.session.commit()


def free_base():
    """An id far above the stored ones, a multiple of 100 (so base+1 and base+101 collided)."""
    top = db.session.scalar(select(func.max(PriceTemplate.id))) or 0
    return (top // 100 + 1000) * 100


def test_templates_1_and_101_at_version_3_get_different_ids(templates):
    base = free_base()
    one, hundred_one = templates(base + 1), templates(base + 101)
    assert derived_model_id(one) == derived_model_id(hundred_one) == "0103"     # the old collision
    first, second = billing_model_id(one), billing_model_id(hundred_one)
    assert first != second
    for model_id in (first, second):
        assert len(model_id) == 4 and model_id.isdigit() and model_id != "0000"
    assert billing_model_fields(one)["billing_model_id"] == first               # what is pushed
    assert billing_model_fields(hundred_one)["billing_model_id"] == second


def test_an_id_is_stable_and_a_new_version_gets_a_new_one(templates):
    tpl = templates(free_base() + 7, version=1)
    first = billing_model_id(tpl)
    assert billing_model_id(tpl) == first == assign_model_id(tpl.id, 1)
    tpl.version = 2
    db.session.commit()
    second = billing_model_id(tpl)
    assert second != first
    assert assign_model_id(tpl.id, 1) == first                                  # the old version keeps its id
    assert get_redis().hget(MODEL_PAIRS_KEY, second) == f"{tpl.id}:2".encode()


def test_an_id_a_pile_holds_is_never_handed_out(templates):
    redis = get_redis()
    n = int(redis.get(MODEL_SEQ_KEY) or 0)
    while True:                                                                 # the number it would take next
        n = n % 9999 + 1
        if not redis.hexists(MODEL_PAIRS_KEY, f"{n:04d}"):
            break
    pile = db.session.scalar(select(Pile).order_by(Pile.id))
    before = pile.billing_model_id
    pile.billing_model_id = n
    db.session.commit()
    try:
        assert f"{n:04d}" in ykc_pricing.held_model_ids()
        assert billing_model_id(templates(free_base() + 9)) != f"{n:04d}"
    finally:
        pile.billing_model_id = before
        db.session.commit()


def test_when_every_id_is_taken_the_least_recent_one_is_reused(app, monkeypatch):
    redis = get_redis()
    keys = {"MODEL_IDS_KEY": "test:bmid:ids", "MODEL_PAIRS_KEY": "test:bmid:pairs", "MODEL_SEQ_KEY": "test:bmid:seq"}
    redis.delete(*keys.values())
    for name, key in keys.items():
        monkeypatch.setattr(ykc_pricing, name, key)
    monkeypatch.setattr(ykc_pricing, "MAX_MODEL_ID", 3)
    with app.app_context():
        assert [assign_model_id(t, 1, held=set()) for t in (1, 2, 3)] == ["0001", "0002", "0003"]
        assert assign_model_id(4, 1, held={"0001"}) == "0002"                   # 0001 is on a pile: skipped
        assert redis.hget("test:bmid:ids", "2:1") is None                        # template 2 v1 lost its id
        assert assign_model_id(2, 1, held=set()) == "0003"
        assert assign_model_id(4, 1, held=set()) == "0002"                      # stable
        with pytest.raises(ykc_pricing.BillingModelError):
            assign_model_id(5, 1, held={"0001", "0002", "0003"})
    redis.delete(*keys.values())
    assert MODEL_IDS_KEY != keys["MODEL_IDS_KEY"]
