"""发票: the member's invoiceable orders, invoice requests and their status (app/services/invoices.py).

``GET /invoices/orders`` (paged), ``POST /invoices``, ``GET /invoices`` (paged), ``GET /invoices/<id>``.
Amounts are strings with 4 decimals; the electricity/service split is the service's (documented there).
"""
from flask import jsonify
from marshmallow import Schema, fields, validate
from sqlalchemy import func, select

from app.extensions import db
from app.member_api import bp, dump, load
from app.member_api.auth import current_member, member_required
from app.member_api.errors import ApiError
from app.member_api.openapi import errors
from app.member_api.schemas import Money, PageMeta, PageQuery, UtcDateTime
from app.services import invoices

_ORDER_ERRORS = {"order_not_invoiceable", "order_already_invoiced", "invalid_tax_no"}
MAX_ID = 2**31 - 1                                   # ids beyond the INTEGER columns never exist
ID = validate.Range(min=1, max=MAX_ID)
NO_NUL = validate.Regexp(r"^[^\x00]*$", error="NUL characters are not allowed.")


class InvoiceableOrderSchema(Schema):
    id = fields.Integer(required=True)
    order_no = fields.String(required=True)
    station = fields.Function(lambda o: o.station.name if o.station else None, allow_none=True)
    started_at = UtcDateTime(allow_none=True)
    ended_at = UtcDateTime(allow_none=True)
    energy = Money(required=True, metadata={"description": "kWh"})
    electricity_fee = Money(required=True)
    service_fee = Money(required=True)
    discount_total = Money(required=True)
    payable_amount = Money(required=True, metadata={"description": "what the member paid: invoiced"})
    electricity_amount = fields.Function(lambda o: str(invoices.order_split(o).electricity), required=True,
                                         metadata={"description": "invoiced electricity part"})
    service_amount = fields.Function(lambda o: str(invoices.order_split(o).service), required=True,
                                     metadata={"description": "invoiced service part"})


class InvoiceableOrderPage(PageMeta):
    items = fields.List(fields.Nested(InvoiceableOrderSchema), required=True)


class InvoiceRequestSchema(Schema):
    order_ids = fields.List(fields.Integer(strict=True, validate=ID), required=True,
                            validate=validate.Length(min=1, max=invoices.MAX_ORDERS))
    title_type = fields.String(required=True, validate=validate.OneOf(invoices.TITLE_TYPES),
                               metadata={"description": "person (个人) or company (企业)"})
    title = fields.String(required=True, validate=[validate.Length(min=1, max=128), NO_NUL])
    tax_no = fields.String(allow_none=True, load_default=None, validate=[validate.Length(max=32), NO_NUL],
                           metadata={"description": "统一社会信用代码 (18 characters), companies only"})
    email = fields.String(required=True, validate=[validate.Length(min=3, max=128), NO_NUL])


class InvoiceSummarySchema(Schema):
    id = fields.Integer(required=True)
    status = fields.String(required=True, metadata={"description": "applied, issued or rejected"})
    title_type = fields.String(required=True)
    title = fields.String(required=True)
    tax_no = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    invoice_type = fields.String(required=True)
    amount = Money(required=True)
    electricity_amount = Money(required=True)
    service_amount = Money(required=True)
    invoice_no = fields.String(allow_none=True, metadata={"description": "number of the issued invoice"})
    reject_reason = fields.String(allow_none=True)
    applied_at = UtcDateTime(attribute="created_at", allow_none=True)
    handled_at = UtcDateTime(attribute="issued_at", allow_none=True)
    order_count = fields.Function(lambda i: len(i.orders), required=True)


class InvoiceSchema(InvoiceSummarySchema):
    orders = fields.List(fields.Nested(InvoiceableOrderSchema), required=True)


class InvoicePage(PageMeta):
    items = fields.List(fields.Nested(InvoiceSummarySchema), required=True)


def _page(query, args):
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = db.session.scalars(query.limit(args["page_size"]).offset((args["page"] - 1) * args["page_size"])).all()
    return {"page": args["page"], "page_size": args["page_size"], "total": total, "items": rows}


@bp.get("/invoices/orders")
@member_required
def invoice_orders():
    """My orders that can be invoiced: settled, paid, not on a live invoice; newest first.
    ---
    get:
      summary: Invoiceable orders
      parameters:
      - in: query
        schema: PageQuery
      responses:
        200:
          description: a page of orders with the amounts an invoice would carry
          content:
            application/json:
              schema: InvoiceableOrderPage
    """
    args = load(PageQuery, location="args")
    return jsonify(dump(InvoiceableOrderPage, _page(invoices.invoiceable_orders_query(current_member()), args)))


@bp.post("/invoices")
@member_required
@errors("order_not_invoiceable", "order_already_invoiced", "invalid_tax_no")
def request_invoice():
    """Request an invoice over chosen orders. The amount is what was paid for them, split into
    electricity and service; a company title needs its 统一社会信用代码.
    ---
    post:
      summary: Request an invoice
      requestBody:
        required: true
        content:
          application/json:
            schema: InvoiceRequestSchema
      responses:
        201:
          description: the stored request (status applied)
          content:
            application/json:
              schema: InvoiceSchema
    """
    data = load(InvoiceRequestSchema)
    try:
        invoice = invoices.request_invoice(current_member(), data["order_ids"], data["title_type"], data["title"],
                                           data.get("tax_no"), data["email"])
    except invoices.InvoiceError as exc:
        if exc.code in _ORDER_ERRORS:
            raise ApiError(exc.code, fields={exc.field: [str(exc.message)]} if exc.field else None) from None
        raise ApiError("invalid_request", fields={exc.field or "_body": [str(exc.message)]}) from None
    return jsonify(dump(InvoiceSchema, invoice)), 201


@bp.get("/invoices")
@member_required
def invoice_list():
    """My invoice requests, newest first.
    ---
    get:
      summary: My invoices
      parameters:
      - in: query
        schema: PageQuery
      responses:
        200:
          description: a page of invoices
          content:
            application/json:
              schema: InvoicePage
    """
    args = load(PageQuery, location="args")
    return jsonify(dump(InvoicePage, _page(invoices.member_invoices_query(current_member()), args)))


@bp.get("/invoices/<int:invoice_id>")
@member_required
def invoice_detail(invoice_id):
    """One of my invoices: status, invoice number or reject reason, and its orders.
    ---
    get:
      summary: My invoice
      responses:
        200:
          description: the invoice
          content:
            application/json:
              schema: InvoiceSchema
    """
    invoice = invoices.member_invoice(current_member(), invoice_id) if invoice_id <= MAX_ID else None
    if invoice is None:
        raise ApiError("not_found")
    return jsonify(dump(InvoiceSchema, invoice))
