"""The member's wallet (reading): ``GET /wallet`` (balance) and ``GET /wallet/entries`` (the ledger).
Top-up and refunds are the payments area's."""
from datetime import date

from flask import jsonify
from flask_babel import force_locale
from flask_babel import gettext as _
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.member_api import bp, dump, load
from app.member_api.auth import current_member, member_required
from app.member_api.errors import api_locale
from app.member_api.schemas import Money, PageMeta, PageQuery, UtcDateTime
from app.models.member import WALLET_KIND

KIND_LABELS = dict(WALLET_KIND)
_DAYS = validate.Range(min=date(2000, 1, 1), max=date(2099, 12, 31))


class WalletBalanceSchema(Schema):
    balance = Money(required=True, metadata={"description": "yuan, 4 decimals"})


class WalletEntriesQuery(PageQuery):
    kind = fields.String(validate=validate.OneOf([k for k, _label in WALLET_KIND]))
    date_from = fields.Date(validate=_DAYS, metadata={"description": "first local day (YYYY-MM-DD), inclusive"})
    date_to = fields.Date(validate=_DAYS, metadata={"description": "last local day (YYYY-MM-DD), inclusive"})

    @validates_schema
    def _range(self, data, **_kw):
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise ValidationError("date_from is after date_to.", "date_to")


class WalletEntrySchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True, metadata={"description": "recharge, consume, refund, ..."})
    kind_label = fields.Function(lambda e: _(KIND_LABELS.get(e.kind, e.kind)), required=True)
    amount = Money(required=True, metadata={"description": "signed: + credit, - debit"})
    balance_after = Money(required=True)
    remark = fields.String(allow_none=True)
    order_no = fields.String(allow_none=True)
    created_at = UtcDateTime(required=True)


class WalletEntryPage(Schema):
    items = fields.List(fields.Nested(WalletEntrySchema), required=True)
    meta = fields.Nested(PageMeta, required=True)


@bp.get("/wallet")
@member_required
def wallet():
    """My wallet balance.
    ---
    get:
      summary: My wallet
      responses:
        200:
          description: the balance
          content:
            application/json:
              schema: WalletBalanceSchema
    """
    return jsonify(dump(WalletBalanceSchema, current_member()))


@bp.get("/wallet/entries")
@member_required
def wallet_entries():
    """My wallet ledger, newest first, by kind and local date range.
    ---
    get:
      summary: My wallet ledger
      parameters:
      - in: query
        schema: WalletEntriesQuery
      responses:
        200:
          description: a page of ledger entries
          content:
            application/json:
              schema: WalletEntryPage
    """
    from app.services import member_accounts

    args = load(WalletEntriesQuery, location="args")
    rows, total = member_accounts.wallet_entries(
        current_member().id, kind=args.get("kind"), date_from=args.get("date_from"), date_to=args.get("date_to"),
        page=args["page"], page_size=args["page_size"])
    with force_locale(api_locale()):
        body = dump(WalletEntryPage, {"items": rows, "meta": {"page": args["page"], "page_size": args["page_size"],
                                                              "total": total}})
    return jsonify(body)
