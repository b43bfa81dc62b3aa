"""卡券: the member's coupons, the coupons usable at a gun with what each would save, and the campaigns of
a station (app/services/coupons.py, app/services/discounts.py).

``GET /coupons`` (paged, by status), ``GET /coupons/usable?connector_id=``, ``GET /stations/<id>/campaigns``.
A coupon is chosen at start with ``coupon_id`` (the charging endpoint). Amounts are strings with 4
decimals; discount rates are multipliers (``"0.9000"`` = 9 折).
"""
from decimal import Decimal

from flask import jsonify
from flask_babel import force_locale
from flask_babel import gettext as _
from marshmallow import Schema, fields, validate
from sqlalchemy import func, select

from app.extensions import db
from app.member_api import bp, dump, load
from app.member_api.auth import current_member, member_required
from app.member_api.errors import ApiError, api_locale
from app.member_api.openapi import errors
from app.member_api.schemas import Money, PageMeta, PageQuery, UtcDateTime
from app.models.marketing import COUPON_SOURCE, COUPON_STATUS, COUPON_TARGET, COUPON_TYPE
from app.services import clock, coupons, member_queries

STATUSES = ("unused", "locked", "used", "expired", "void")
#: the energy the savings of ``/coupons/usable`` are estimated on (kWh)
ESTIMATE_KWH = Decimal("20")


def _label(choices, code):
    text = dict(choices).get(code)
    return _(text) if text else (code or "")


def _type_label(c):
    """优惠类型 as the manual writes it, e.g. 服务费抵扣券 = target + type."""
    return f"{_label(COUPON_TARGET, c.target)} · {_label(COUPON_TYPE, c.coupon_type)}"


class CouponSchema(Schema):
    id = fields.Integer(required=True)
    code = fields.String(required=True)
    name = fields.Function(lambda c: c.template.name if c.template else c.code, required=True,
                           metadata={"type": "string"})
    description = fields.Function(lambda c: c.template.description if c.template else None, allow_none=True,
                                  metadata={"type": "string"})
    coupon_type = fields.String(required=True, metadata={"description": "discount, full_reduction or deduction"})
    target = fields.String(required=True, metadata={"description": "total (charging fee) or service (fee)"})
    type_label = fields.Function(_type_label, required=True, metadata={"type": "string"})
    discount_rate = Money(allow_none=True,
                                   metadata={"description": "discount coupons: multiplier, 0.9000 = 9 折"})
    threshold = Money(required=True, metadata={"description": "spend at least (full-reduction)"})
    face_value = Money(allow_none=True, metadata={"description": "amount taken off (full-reduction, deduction)"})
    max_discount = Money(allow_none=True, metadata={"description": "cap of a discount coupon"})
    status = fields.Function(lambda c: coupons.effective_status(c), required=True,
                             metadata={"type": "string", "description": "unused, locked, used, expired or void"})
    status_label = fields.Function(lambda c: _label(COUPON_STATUS, coupons.effective_status(c)), required=True,
                                   metadata={"type": "string"})
    source = fields.String(required=True, metadata={"description": "manual, register, order_finished or claim"})
    source_label = fields.Function(lambda c: _label(COUPON_SOURCE, c.source), required=True,
                                   metadata={"type": "string"})
    all_stations = fields.Function(lambda c: bool(c.template.all_stations) if c.template else True, required=True,
                                   metadata={"type": "boolean"})
    valid_from = UtcDateTime(allow_none=True)
    valid_to = UtcDateTime(allow_none=True, metadata={"description": "end of validity (exclusive)"})
    received_at = UtcDateTime(attribute="created_at", allow_none=True)
    used_at = UtcDateTime(allow_none=True)
    order_id = fields.Integer(allow_none=True, metadata={"description": "the order that used or locked it"})
    discount_amount = Money(required=True, metadata={"description": "what it took off (used coupons)"})


class CouponPage(PageMeta):
    items = fields.List(fields.Nested(CouponSchema), required=True)


class CouponQuery(PageQuery):
    status = fields.String(load_default=None, validate=validate.OneOf(STATUSES),
                           metadata={"description": "unused, locked, used, expired or void (empty: all)"})


class UsableQuery(Schema):
    connector_id = fields.Integer(required=True, validate=validate.Range(min=1, max=2**31 - 1),
                                  metadata={"description": "the gun the member is about to start"})


class UsableCouponSchema(CouponSchema):
    saving = Money(required=True, metadata={"description": f"estimated saving on a {ESTIMATE_KWH} kWh charge "
                                                           "at the gun's current prices, after campaigns"})


class UsableCoupons(Schema):
    connector_id = fields.Integer(required=True)
    estimate_kwh = Money(required=True)
    best_coupon_id = fields.Integer(allow_none=True, metadata={"description": "the coupon that saves the most"})
    items = fields.List(fields.Nested(UsableCouponSchema), required=True)


class StationCampaignSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    tag = fields.String(allow_none=True)
    description = fields.String(allow_none=True)
    discount_mode = fields.String(required=True, metadata={"description": "fixed or time_of_day"})
    electricity_rate = Money(required=True,
                             metadata={"description": "fixed mode: multiplier, 0.9000 = 9 折"})
    service_rate = Money(required=True,
                         metadata={"description": "fixed mode: multiplier, 0.8000 = 8 折"})
    start_at = UtcDateTime(required=True)
    end_at = UtcDateTime(required=True)


class StationCampaigns(Schema):
    station_id = fields.Integer(required=True)
    items = fields.List(fields.Nested(StationCampaignSchema), required=True)


def _answer(schema_cls, obj):
    with force_locale(api_locale()):
        return jsonify(dump(schema_cls, obj))


@bp.get("/coupons")
@member_required
def coupon_list():
    """My coupons, newest first, optionally by status (an unused coupon past its end is expired).
    ---
    get:
      summary: My coupons
      parameters:
      - in: query
        schema: CouponQuery
      responses:
        200:
          description: a page of coupons
          content:
            application/json:
              schema: CouponPage
    """
    args = load(CouponQuery, location="args")
    q = coupons.member_coupons_query(current_member(), args["status"])
    total = db.session.scalar(select(func.count()).select_from(q.order_by(None).subquery()))
    rows = db.session.scalars(q.limit(args["page_size"]).offset((args["page"] - 1) * args["page_size"])).all()
    return _answer(CouponPage, {"page": args["page"], "page_size": args["page_size"], "total": total, "items": rows})


@bp.get("/coupons/usable")
@member_required
@errors("connector_not_found")
def coupon_usable():
    """The coupons I can use at a gun now, each with what it would save; the best first.
    ---
    get:
      summary: Coupons usable at a gun
      parameters:
      - in: query
        schema: UsableQuery
      responses:
        200:
          description: usable coupons and their savings
          content:
            application/json:
              schema: UsableCoupons
    """
    args = load(UsableQuery, location="args")
    connector = member_queries.connector(args["connector_id"])
    if connector is None:
        raise ApiError("connector_not_found")
    from app.services import discounts

    member = current_member()
    now = clock.utcnow()
    rows = coupons.usable_coupons(member, connector.station_id, now)
    priced = connector.station is not None and connector.station.price_template is not None
    savings = discounts.estimate_savings(member=member, connector=connector, coupons=rows, energy_kwh=ESTIMATE_KWH,
                                         at=now) if rows and priced else {}     # no prices: nothing to estimate
    for c in rows:
        c.saving = savings.get(c.id, Decimal("0.0000"))
    rows.sort(key=lambda c: (-c.saving, c.valid_to or clock.utcnow(), c.id))
    best = rows[0].id if rows and rows[0].saving > 0 else None
    return _answer(UsableCoupons, {"connector_id": connector.id, "estimate_kwh": ESTIMATE_KWH,
                                   "best_coupon_id": best, "items": rows})


@bp.get("/stations/<int:station_id>/campaigns")
@member_required
def station_campaigns(station_id):
    """The campaigns running now at a station (shown on the station page).
    ---
    get:
      summary: Campaigns of a station
      responses:
        200:
          description: the station's running campaigns, best first
          content:
            application/json:
              schema: StationCampaigns
    """
    station = member_queries.station(station_id)
    if station is None:
        raise ApiError("not_found")
    from app.services import discounts

    member = current_member()
    rows = discounts.active_campaigns(member.operator_id, station.id, channel_id=member.channel_id)
    return _answer(StationCampaigns, {"station_id": station.id, "items": rows})
