"""Charging for the member: ``POST /charging/start``, ``POST /charging/<order_id>/stop``,
``GET /charging/current`` and ``GET /charging/<order_id>/live``.

Start and stop call :func:`app.services.charging.start_charge` / :func:`~app.services.charging.stop_charge`,
the same path as every other start (origin ``app``, the member's wallet, the member's channel); the
typed refusals of the charging service map to documented error codes (:data:`START_REFUSALS`). Live
figures come from the gateway's live state (:func:`app.services.member_queries.live`).
"""
from flask import g
from flask_babel import gettext as _
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.extensions import db
from app.member_api import bp, load
from app.member_api.auth import member_required
from app.member_api.errors import ApiError
from app.member_api.openapi import errors
from app.member_api.orders import ChargeOrderSchema
from app.member_api.schemas import Money, UtcDateTime
from app.member_api.stations import answer, resolve_qr
from app.models.order import ORDER_STATUS
from app.services import member_queries
from app.services.errors import (
    AccountNotActive,
    BalanceTooLow,
    ChargingError,
    CouponNotUsable,
    GunDisabled,
    GunFault,
    GunNotFree,
    PileNotOnline,
)
from app.services.member_queries import MAX_ID
from app.services.money import AMOUNT_Q, has_places

ORIGIN = "app"            # START_METHOD "App remote start" (app/models/order.py)
#: typed start refusal -> error code (the most specific type first: GunFault is a GunNotFree)
START_REFUSALS = ((GunFault, "gun_fault"), (GunNotFree, "gun_busy"), (PileNotOnline, "pile_offline"),
                  (GunDisabled, "gun_disabled"), (BalanceTooLow, "balance_too_low"),
                  (AccountNotActive, "member_disabled"))
STOPPABLE = ("starting", "charging", "stopping")
MAX_PREPAID = 1000000


class ChargeStartSchema(Schema):
    connector_id = fields.Integer(validate=validate.Range(min=1, max=MAX_ID), metadata={"description": "the gun"})
    qr_content = fields.String(validate=validate.Length(min=1, max=500),
                               metadata={"description": "or the scanned QR code of the gun"})
    prepaid_amount = fields.Decimal(as_string=True, metadata={
        "type": "string", "format": "decimal", "pattern": r"^\d{1,6}(\.\d{1,4})?$",
        "description": "stop at this amount (yuan, > 0, at most 4 decimals); default: the balance"})
    coupon_id = fields.Integer(validate=validate.Range(min=1, max=MAX_ID),
                               metadata={"description": "a coupon of mine to use"})

    @validates_schema
    def _one_gun(self, data, **_kw):
        if ("connector_id" in data) == ("qr_content" in data):
            raise ValidationError("Give either connector_id or qr_content.", "_schema")
        amount = data.get("prepaid_amount")
        if amount is not None and not (0 < amount < MAX_PREPAID and has_places(amount, AMOUNT_Q)):
            raise ValidationError("A positive amount below 1000000 with at most 4 decimals.", "prepaid_amount")


class ChargeLiveSchema(Schema):
    order_id = fields.Integer(required=True)
    order_no = fields.String(required=True)
    status = fields.String(required=True)
    status_label = fields.Function(lambda x: _(dict(ORDER_STATUS).get(x["status"], x["status"])), required=True,
                                   metadata={"type": "string"})
    energy = Money(required=True, metadata={"description": "kWh so far"})
    amount = Money(required=True, metadata={"description": "yuan so far (electricity + service)"})
    power = Money(allow_none=True, metadata={"description": "kW"})
    voltage = Money(allow_none=True, metadata={"description": "V"})
    current = Money(allow_none=True, metadata={"description": "A"})
    soc = fields.Integer(allow_none=True, metadata={"description": "battery %"})
    remaining_minutes = fields.Integer(allow_none=True)
    duration_seconds = fields.Integer(required=True)
    updated_at = UtcDateTime(allow_none=True, metadata={"description": "time of the figures"})
    started_at = UtcDateTime(allow_none=True)
    prepaid_amount = Money(allow_none=True)
    connector_id = fields.Integer(required=True)
    station_id = fields.Integer(required=True)


class CurrentChargesSchema(Schema):
    items = fields.List(fields.Nested(ChargeLiveSchema), required=True)


class ChargeStopSchema(Schema):
    order = fields.Nested(ChargeOrderSchema, required=True)
    stop_confirmed = fields.Boolean(required=True, metadata={
        "description": "the pile acknowledged the stop; false: the platform repeats it until the pile does"})


def _connector_for(args):
    if "connector_id" in args:
        connector = member_queries.connector(args["connector_id"])
        if connector is None:
            raise ApiError("not_found")
        return connector.id
    target = resolve_qr(args["qr_content"])
    if target["selected_connector_id"] is None:
        raise ApiError("gun_not_selected")
    return target["selected_connector_id"]


def _refusal(exc):
    for cls, code in START_REFUSALS:
        if isinstance(exc, cls):
            return ApiError(code)
    if isinstance(exc, CouponNotUsable):
        return ApiError("coupon_not_usable", message=_("This coupon cannot be used for this charge: %(reason)s",
                                                       reason=_(str(exc))))
    return ApiError("start_failed", message=_("The charge could not be started: %(reason)s", reason=_(str(exc))))


@bp.post("/charging/start")
@member_required
@errors("not_found", "qr_not_recognized", "gun_not_selected", "gun_disabled", "pile_offline", "gun_busy",
        "gun_fault", "balance_too_low", "coupon_not_usable", "start_failed")
def charging_start():
    """Start charging on a gun, paid from my wallet.
    ---
    post:
      summary: Start charging
      description: The gun by connector_id or by the scanned QR code. The order is 'starting' until the
        pile reports charging; watch it with GET /charging/{order_id}/live.
      requestBody:
        required: true
        content:
          application/json:
            schema: ChargeStartSchema
      responses:
        200:
          description: the new order
          content:
            application/json:
              schema: ChargeOrderSchema
    """
    from app.services import charging

    args = load(ChargeStartSchema)
    connector_id = _connector_for(args)
    member = g.member
    extra = {"coupon_id": args["coupon_id"]} if args.get("coupon_id") else {}
    try:
        order = charging.start_charge(connector_id, origin=ORIGIN, member_id=member.id,
                                      prepaid_amount=args.get("prepaid_amount"), channel_id=member.channel_id,
                                      **extra)
    except ChargingError as exc:
        db.session.rollback()
        raise _refusal(exc) from None
    return answer(ChargeOrderSchema, order)


def _own_order(order_id):
    order = member_queries.member_order(g.member.id, order_id)
    if order is None:
        raise ApiError("not_found")
    return order


@bp.post("/charging/<int:order_id>/stop")
@member_required
@errors("order_not_active")
def charging_stop(order_id):
    """Stop my charge.
    ---
    post:
      summary: Stop charging
      description: The order goes to 'stopping'; the pile's bill finishes it (then it is settled).
        stop_confirmed false means the pile has not acknowledged yet (offline, no answer); the stop is
        repeated until it does.
      responses:
        200:
          description: the order
          content:
            application/json:
              schema: ChargeStopSchema
    """
    from app.services import charging

    order = _own_order(order_id)
    if order.status not in STOPPABLE:
        raise ApiError("order_not_active")
    confirmed = True
    try:
        order = charging.stop_charge(order.id, by="member")
    except ChargingError:
        db.session.rollback()
        order = _own_order(order_id)
        if order.status not in STOPPABLE and order.status not in ("finished", "settled"):
            raise ApiError("order_not_active") from None
        confirmed = order.status in ("finished", "settled")
    return answer(ChargeStopSchema, {"order": order, "stop_confirmed": confirmed})


@bp.get("/charging/current")
@member_required
def charging_current():
    """My charges in progress with their live figures.
    ---
    get:
      summary: Current charges
      responses:
        200:
          description: the orders in progress (pending, starting, charging, stopping), newest first
          content:
            application/json:
              schema: CurrentChargesSchema
    """
    items = [member_queries.live(order) for order in member_queries.active_orders(g.member.id)]
    return answer(CurrentChargesSchema, {"items": items})


@bp.get("/charging/<int:order_id>/live")
@member_required
def charging_live(order_id):
    """Live figures of my order: status, kWh, amount so far, power, SOC, duration.
    ---
    get:
      summary: Live order
      description: While charging, the figures the gateway keeps from the pile's realtime data; once the
        order ended, its final figures.
      responses:
        200:
          description: the figures
          content:
            application/json:
              schema: ChargeLiveSchema
    """
    return answer(ChargeLiveSchema, member_queries.live(_own_order(order_id)))
