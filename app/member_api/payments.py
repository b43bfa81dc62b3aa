"""Payments of the member: wallet top-ups through WeChat Pay (``POST /wallet/top-ups`` -> the parameters of
``wx.requestPayment``; ``GET /wallet/top-ups/<payment_no>``), wallet refunds (``POST /wallet/refunds``) and the
list of payments (``GET /payments``). The wallet is credited only when WeChat Pay's notification (or the
pending-payment query) says the payment succeeded: app/services/payments.py."""
from flask import g, jsonify
from flask_babel import force_locale
from flask_babel import gettext as _
from marshmallow import Schema, fields, validate
from sqlalchemy import func, select

from app.extensions import db
from app.member_api import bp, dump, load
from app.member_api.auth import member_required
from app.member_api.errors import ApiError, api_locale
from app.member_api.openapi import errors
from app.member_api.schemas import Money, PageMeta, PageQuery, UtcDateTime
from app.models import Member, Payment, Refund
from app.models.member import PAYMENT_PURPOSE, PAYMENT_STATUS
from app.models.payment import REFUND_KIND, REFUND_STATE
from app.services import payments

STATUS_LABELS = dict(PAYMENT_STATUS)
PURPOSE_LABELS = dict(PAYMENT_PURPOSE)
REFUND_STATE_LABELS = dict(REFUND_STATE)
REFUND_KIND_LABELS = dict(REFUND_KIND)

_TOPUP_ERRORS = {"amount_invalid": "payment_amount_invalid", "no_gateway": "payment_unavailable",
                 "gateway_unavailable": "payment_unavailable", "no_openid": "wechat_not_bound",
                 "member_disabled": "member_disabled"}
_REFUND_ERRORS = {"amount_invalid": "payment_amount_invalid", "balance_insufficient": "refund_exceeds_balance",
                  "nothing_refundable": "refund_not_possible"}


class TopUpRequest(Schema):
    # the amount's rules (more than 0, whole fen, PAYMENT_MIN_TOPUP..PAYMENT_MAX_TOPUP) are the payment
    # service's: answered as payment_amount_invalid
    amount = fields.Decimal(required=True, places=None, metadata={"description": "yuan, whole fen, e.g. \"50.00\""})


class PayParamsSchema(Schema):
    appId = fields.String(required=True)  # noqa: N815  (wx.requestPayment's names)
    timeStamp = fields.String(required=True)  # noqa: N815
    nonceStr = fields.String(required=True)  # noqa: N815
    package = fields.String(required=True)
    signType = fields.String(required=True)  # noqa: N815
    paySign = fields.String(required=True)  # noqa: N815


class RefundSchema(Schema):
    refund_no = fields.String(required=True)
    kind = fields.String(required=True, metadata={"description": "wallet or order"})
    kind_label = fields.Function(lambda r: _(REFUND_KIND_LABELS.get(r.kind, r.kind)), required=True)
    amount = Money(required=True)
    status = fields.String(required=True, metadata={"description": "pending, processing, succeeded, failed, retried"})
    status_label = fields.Function(lambda r: _(REFUND_STATE_LABELS.get(r.status, r.status)), required=True)
    reason = fields.String(allow_none=True)
    created_at = UtcDateTime(required=True)
    succeeded_at = UtcDateTime(allow_none=True)


class PaymentSchema(Schema):
    payment_no = fields.String(required=True)
    purpose = fields.String(required=True, metadata={"description": "recharge, order, occupancy"})
    purpose_label = fields.Function(lambda p: _(PURPOSE_LABELS.get(p.purpose, p.purpose)), required=True)
    amount = Money(required=True)
    refunded_amount = Money(required=True)
    status = fields.String(required=True, metadata={"description": "pending, succeeded, closed, refunding, ..."})
    status_label = fields.Function(lambda p: _(STATUS_LABELS.get(p.status, p.status)), required=True)
    transaction_id = fields.String(attribute="gateway_trade_no", allow_none=True)
    created_at = UtcDateTime(required=True)
    paid_at = UtcDateTime(allow_none=True)
    refunds = fields.List(fields.Nested(RefundSchema), required=True)


class TopUpSchema(Schema):
    payment = fields.Nested(PaymentSchema, required=True)
    pay_params = fields.Nested(PayParamsSchema, required=True, metadata={"description": "for wx.requestPayment"})


class RefundRequest(Schema):
    amount = fields.Decimal(places=None, metadata={"description": "yuan, more than 0; default the whole balance"})
    reason = fields.String(required=True, validate=validate.Length(min=1, max=200))
    request_key = fields.String(validate=validate.Length(min=8, max=40),
                                metadata={"description": "the same key again books the refund once"})


class RefundResultSchema(Schema):
    balance = Money(required=True)
    refunds = fields.List(fields.Nested(RefundSchema), required=True)


class PaymentPage(Schema):
    items = fields.List(fields.Nested(PaymentSchema), required=True)
    meta = fields.Nested(PageMeta, required=True)


def _own_payment(payment_no):
    payment = db.session.scalar(select(Payment).where(Payment.payment_no == payment_no,
                                                      Payment.member_id == g.member.id))
    if payment is None:
        raise ApiError("not_found")
    return payment


@bp.post("/wallet/top-ups")
@member_required
@errors("payment_amount_invalid", "payment_unavailable", "wechat_not_bound", "member_disabled")
def topup_create():
    """Top up my wallet through WeChat Pay: the payment and the parameters of ``wx.requestPayment``. The
    balance grows when WeChat Pay confirms the payment (ask ``GET /wallet/top-ups/{payment_no}``).
    ---
    post:
      summary: Top up my wallet
      requestBody:
        required: true
        content:
          application/json:
            schema: TopUpRequest
      responses:
        201:
          description: the payment (pending) and the pay parameters
          content:
            application/json:
              schema: TopUpSchema
    """
    data = load(TopUpRequest)
    try:
        result = payments.create_topup(g.member.id, data["amount"])
    except payments.PaymentError as exc:
        raise ApiError(_TOPUP_ERRORS.get(exc.code, "payment_unavailable")) from None
    with force_locale(api_locale()):
        body = dump(TopUpSchema, {"payment": result.payment, "pay_params": result.pay_params})
    return jsonify(body), 201


@bp.get("/wallet/top-ups/<string:payment_no>")
@member_required
def topup_status(payment_no):
    """One of my payments (a top-up's status after paying).
    ---
    get:
      summary: My top-up
      responses:
        200:
          description: the payment
          content:
            application/json:
              schema: PaymentSchema
    """
    payment = _own_payment(payment_no)
    with force_locale(api_locale()):
        body = dump(PaymentSchema, payment)
    return jsonify(body)


@bp.post("/wallet/refunds")
@member_required
@errors("payment_amount_invalid", "refund_exceeds_balance", "refund_not_possible")
def wallet_refund():
    """Refund my wallet balance (all of it unless an amount is given) to the WeChat Pay payments it came from,
    newest first. The balance drops at once; the money reaches WeChat within days.
    ---
    post:
      summary: Refund my balance
      requestBody:
        required: true
        content:
          application/json:
            schema: RefundRequest
      responses:
        201:
          description: the new balance and the refunds
          content:
            application/json:
              schema: RefundResultSchema
    """
    data = load(RefundRequest)
    try:
        refunds = payments.request_wallet_refund(g.member.id, data.get("amount"), data["reason"],
                                                 request_key=data.get("request_key") and
                                                 f"{g.member.id}:{data['request_key']}")
    except payments.PaymentError as exc:
        raise ApiError(_REFUND_ERRORS.get(exc.code, "refund_not_possible")) from None
    ids = [r.id for r in refunds]
    payments.enqueue_refund_sends(ids)
    member = db.session.get(Member, g.member.id)
    db.session.refresh(member)
    rows = db.session.scalars(select(Refund).where(Refund.id.in_(ids)).order_by(Refund.id)).all()
    with force_locale(api_locale()):
        body = dump(RefundResultSchema, {"balance": member.balance, "refunds": rows})
    return jsonify(body), 201


@bp.get("/payments")
@member_required
def payments_list():
    """My payments (top-ups, prepayments) with their refunds, newest first.
    ---
    get:
      summary: My payments
      parameters:
      - in: query
        schema: PageQuery
      responses:
        200:
          description: a page of payments
          content:
            application/json:
              schema: PaymentPage
    """
    args = load(PageQuery, location="args")
    where = Payment.member_id == g.member.id
    total = db.session.scalar(select(func.count(Payment.id)).where(where))
    rows = db.session.scalars(select(Payment).where(where).order_by(Payment.id.desc())
                              .offset((args["page"] - 1) * args["page_size"]).limit(args["page_size"])).all()
    with force_locale(api_locale()):
        body = dump(PaymentPage, {"items": rows, "meta": {"page": args["page"], "page_size": args["page_size"],
                                                          "total": total}})
    return jsonify(body)
