"""The member's own orders: ``GET /orders``, ``GET /orders/<id>`` (with the period breakdown),
``GET /occupancy-orders`` and ``GET /occupancy-orders/<id>``.

Only the member's own rows (:mod:`app.services.member_queries`, scoped to the member's operator and
filtered by member): anyone else's order is ``not_found``.
"""
from flask import g
from flask_babel import gettext as _
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.member_api import bp, load
from app.member_api.auth import member_required
from app.member_api.errors import ApiError
from app.member_api.schemas import Money, PageMeta, PageQuery, UtcDateTime
from app.member_api.stations import answer
from app.models.order import OCCUPANCY_STATUS, ORDER_STATUS, PAY_STATUS, START_METHOD
from app.models.station import OCCUPANCY_UNIT, PRICE_LEVEL
from app.services import clock, member_queries


def _label(choices, attr):
    labels = dict(choices)

    def read(obj):
        code = getattr(obj, attr) if not isinstance(obj, dict) else obj.get(attr)
        text = labels.get(code)
        return _(text) if text else (code or "")

    return fields.Function(read, required=True, metadata={"type": "string"})


def _text(attr):
    """A stored English reason (a msgid) in the caller's language."""
    def read(obj):
        value = getattr(obj, attr)
        return _(value) if value else None

    return fields.Function(read, allow_none=True, metadata={"type": "string"})


def _rel(path, type_="string"):
    def read(obj):
        value = obj
        for name in path.split("."):
            value = getattr(value, name, None) if value is not None else None
        return value

    return fields.Function(read, allow_none=True, metadata={"type": type_})


def _local(attr):
    return fields.Function(lambda o: clock.format_local(getattr(o, attr)) or None, allow_none=True,
                           metadata={"type": "string", "description": "local time (YYYY-MM-DD HH:MM:SS)"})


class ChargeOrderSchema(Schema):
    id = fields.Integer(required=True)
    order_no = fields.String(required=True)
    status = fields.String(required=True, metadata={"description": ", ".join(c for c, _x in ORDER_STATUS)})
    status_label = _label(ORDER_STATUS, "status")
    station_id = fields.Integer(required=True)
    station_name = _rel("station.name")
    pile_code = _rel("pile.code")
    connector_id = fields.Integer(required=True)
    connector_code = _rel("connector.code")
    connector_name = _rel("connector.name")
    start_method = fields.String(required=True)
    start_method_label = _label(START_METHOD, "start_method")
    created_at = UtcDateTime(allow_none=True)
    started_at = UtcDateTime(allow_none=True)
    ended_at = UtcDateTime(allow_none=True)
    started_local = _local("started_at")
    ended_local = _local("ended_at")
    duration_seconds = fields.Integer(required=True)
    energy = Money(required=True, metadata={"description": "kWh"})
    electricity_fee = Money(required=True)
    service_fee = Money(required=True)
    total_amount = Money(required=True, metadata={"description": "electricity + service fee"})
    discount_total = Money(required=True)
    payable_amount = Money(required=True, metadata={"description": "total - discounts"})
    paid_amount = Money(required=True)
    prepaid_amount = Money(allow_none=True)
    pay_status = fields.String(required=True)
    pay_status_label = _label(PAY_STATUS, "pay_status")
    stop_reason = _text("stop_reason")
    failure_reason = _text("failure_reason")


class OrderPeriodSchema(Schema):
    seq = fields.Integer(required=True)
    start_at = UtcDateTime(required=True)
    end_at = UtcDateTime(required=True)
    start_local = _local("start_at")
    end_local = _local("end_at")
    level = fields.String(allow_none=True)
    level_label = _label(PRICE_LEVEL, "level")
    energy = Money(required=True, metadata={"description": "kWh"})
    electricity_price = Money(required=True, metadata={"description": "yuan per kWh"})
    service_price = Money(required=True, metadata={"description": "yuan per kWh"})
    electricity_fee = Money(required=True)
    service_fee = Money(required=True)
    amount = fields.Function(lambda p: str(p.electricity_fee + p.service_fee), required=True,
                             metadata={"type": "string", "description": "electricity + service fee"})
    discount_electricity = Money(required=True)
    discount_service = Money(required=True)


class ChargeOrderDetailSchema(ChargeOrderSchema):
    discount_electricity = Money(required=True)
    discount_service = Money(required=True)
    refunded_amount = Money(required=True)
    coupon_id = fields.Integer(allow_none=True)
    campaign_name = _rel("campaign.name")
    plate_no = fields.String(allow_none=True)
    start_soc = fields.Integer(allow_none=True)
    end_soc = fields.Integer(allow_none=True)
    paid_at = UtcDateTime(allow_none=True)
    settled_at = UtcDateTime(allow_none=True)
    periods = fields.List(fields.Nested(OrderPeriodSchema), required=True)


class ChargeOrderPageSchema(PageMeta):
    items = fields.List(fields.Nested(ChargeOrderSchema), required=True)


class OccupancyOrderSchema(Schema):
    id = fields.Integer(required=True)
    order_no = fields.String(required=True)
    charge_order_id = fields.Integer(allow_none=True)
    charge_order_no = _rel("charge_order.order_no")
    station_id = fields.Integer(required=True)
    station_name = _rel("station.name")
    connector_id = fields.Integer(required=True)
    connector_code = _rel("connector.code")
    status = fields.String(required=True, metadata={"description": ", ".join(c for c, _x in OCCUPANCY_STATUS)})
    status_label = _label(OCCUPANCY_STATUS, "status")
    started_at = UtcDateTime(required=True)
    ended_at = UtcDateTime(allow_none=True)
    started_local = _local("started_at")
    ended_local = _local("ended_at")
    duration_minutes = fields.Integer(required=True)
    free_minutes = fields.Integer(required=True)
    price = Money(required=True, metadata={"description": "yuan per unit"})
    unit = fields.String(required=True)
    unit_label = _label(OCCUPANCY_UNIT, "unit")
    cap = Money(allow_none=True, metadata={"description": "most the occupation costs (null: no cap)"})
    amount = Money(required=True)
    discount_amount = Money(required=True)
    paid_amount = Money(required=True)
    refunded_amount = Money(required=True)
    pay_status = fields.String(required=True)
    pay_status_label = _label(PAY_STATUS, "pay_status")
    paid_at = UtcDateTime(allow_none=True)


class OccupancyOrderPageSchema(PageMeta):
    items = fields.List(fields.Nested(OccupancyOrderSchema), required=True)


class _RangeQuery(PageQuery):
    date_from = fields.Date(metadata={"description": "first local day (YYYY-MM-DD)"})
    date_to = fields.Date(metadata={"description": "last local day (YYYY-MM-DD), included"})

    @validates_schema
    def _range(self, data, **_kw):
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise ValidationError("date_from is after date_to.", "date_from")


class OrdersQuerySchema(_RangeQuery):
    status = fields.String(validate=validate.OneOf([c for c, _x in ORDER_STATUS]))


class OccupancyQuerySchema(_RangeQuery):
    status = fields.String(validate=validate.OneOf([c for c, _x in OCCUPANCY_STATUS]))


def _page(rows, total, args):
    return {"items": rows, "total": total, "page": args["page"], "page_size": args["page_size"]}


@bp.get("/orders")
@member_required
def orders_list():
    """My charging orders, newest first.
    ---
    get:
      summary: My orders
      parameters:
        - in: query
          schema: OrdersQuerySchema
      responses:
        200:
          description: a page of orders
          content:
            application/json:
              schema: ChargeOrderPageSchema
    """
    args = load(OrdersQuerySchema, location="args")
    rows, total = member_queries.member_orders(g.member.id, status=args.get("status"), date_from=args.get("date_from"),
                                               date_to=args.get("date_to"), page=args["page"],
                                               page_size=args["page_size"])
    return answer(ChargeOrderPageSchema, _page(rows, total, args))


@bp.get("/orders/<int:order_id>")
@member_required
def order_detail(order_id):
    """One of my charging orders with its breakdown by tariff period.
    ---
    get:
      summary: My order
      responses:
        200:
          description: the order; the periods' amounts add up to total_amount
          content:
            application/json:
              schema: ChargeOrderDetailSchema
    """
    order = member_queries.member_order(g.member.id, order_id)
    if order is None:
        raise ApiError("not_found")
    return answer(ChargeOrderDetailSchema, order)


@bp.get("/occupancy-orders")
@member_required
def occupancy_orders_list():
    """My occupancy orders (the space kept after charging), newest first.
    ---
    get:
      summary: My occupancy orders
      parameters:
        - in: query
          schema: OccupancyQuerySchema
      responses:
        200:
          description: a page of occupancy orders
          content:
            application/json:
              schema: OccupancyOrderPageSchema
    """
    args = load(OccupancyQuerySchema, location="args")
    rows, total = member_queries.member_occupancy_orders(
        g.member.id, status=args.get("status"), date_from=args.get("date_from"), date_to=args.get("date_to"),
        page=args["page"], page_size=args["page_size"])
    return answer(OccupancyOrderPageSchema, _page(rows, total, args))


@bp.get("/occupancy-orders/<int:occupancy_id>")
@member_required
def occupancy_order_detail(occupancy_id):
    """One of my occupancy orders.
    ---
    get:
      summary: My occupancy order
      responses:
        200:
          description: the occupancy order
          content:
            application/json:
              schema: OccupancyOrderSchema
    """
    order = member_queries.member_occupancy_order(g.member.id, occupancy_id)
    if order is None:
        raise ApiError("not_found")
    return answer(OccupancyOrderSchema, order)
