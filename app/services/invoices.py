"""发票管理: a member's invoice request over chosen orders, and the staff decision (issue / reject).

Request (:func:`request_invoice`, the one write path of the member API and any other caller)
-------------------------------------------------------------------------------------------------
* Orders: the member's own (same member, same operator), ``settled``, paid in full (``pay_status``
  ``paid`` or ``partial_refund`` — the latter is a prepayment whose unused part was refunded — and
  ``paid_amount >= payable_amount``), with something to invoice (``payable_amount > 0``) and not on a
  live invoice. Any chosen order failing this refuses the whole request (:class:`InvoiceError`
  ``order_not_invoiceable`` / ``order_already_invoiced``); nothing is written.
* Amounts: the invoice is over what the member paid, the orders' payable amounts
  (``payable = electricity_fee + service_fee − discounts``). Each order's payable is split in two:

  - electricity part ``e = min(max(electricity_fee − discount_electricity, 0), payable)``;
  - service part ``s = payable − e``.

  So a campaign/coupon discount reduces the fee it was given on (the order keeps
  ``discount_electricity`` and ``discount_service`` apart), and a discount the order does not attribute
  to either fee (``discount_total`` larger than the two parts) comes off the service part first; the two
  parts always add up to the payable. ``amount`` = Σ payable, ``electricity_amount`` = Σ e,
  ``service_amount`` = Σ s (4 decimals, as stored on the orders: nothing is rounded here).
  Example: electricity 10.0000 (discount 1.0000), service 5.0000 (discount 0.5000), payable 13.5000 →
  e = 9.0000, s = 4.5000.
* Title: ``person`` (个人: a name, no tax number — any given is dropped) or ``company`` (企业: the
  company name and its 18-character 统一社会信用代码 with a valid check character, GB 32100-2015).
  E-mail (收票邮箱) is required and checked.
* Races: the member's row is locked first (one request of a member at a time, both dialects), and
  the database has the last word: the partial unique index ``uq_ev_invoice_order_live`` (one live link per
  order, see ``app/models/member.py``) refuses a second invoice over an order, so of two concurrent
  requests over the same order exactly one is stored; the other gets ``order_already_invoiced``.

Decision (staff, operator admins)
---------------------------------
Only an ``applied`` invoice is decided, once: :func:`issue_invoice` (the invoice number is required)
or :func:`reject_invoice` (the reason is required). Rejecting releases the invoice's orders
(``released_at`` on its links) so the member can request them again; the rejected invoice keeps
showing them. Invoices are history: never deleted.

Each write runs in :func:`app.services.order_state.savepoint` and commits; an error undoes only the
service's own work.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, exists, select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import ChargeOrder, Invoice, Member
from app.models.base import utcnow
from app.models.member import invoice_order
from app.security.scope import apply_scope
from app.services import order_state, wallet
from app.services.money import q_amount

ZERO = Decimal("0.0000")
TITLE_TYPES = ("person", "company")
PAID_STATUSES = ("paid", "partial_refund")
MAX_ORDERS = 200
# 统一社会信用代码 (GB 32100-2015): 18 characters of this set, the last one a check character
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z0-9-]{2,}$")


class InvoiceError(Exception):
    """A refused request or decision. ``code`` is stable (the member API maps it to its error code);
    ``field`` names the input it concerns; ``order_ids`` the orders at fault, if any."""

    def __init__(self, code, message, field=None, order_ids=None):
        super().__init__(str(message))
        self.code = code
        self.message = message
        self.field = field
        self.order_ids = list(order_ids or [])


@dataclass
class Split:
    amount: Decimal
    electricity: Decimal
    service: Decimal


# ----- rules ----------------------------------------------------------------------------------------
def valid_tax_no(tax_no: str | None) -> bool:
    """Is ``tax_no`` a 统一社会信用代码: 18 characters of USCC_CHARS with the right check character."""
    code = (tax_no or "").strip().upper()
    if len(code) != 18 or any(c not in USCC_CHARS for c in code):
        return False
    total = sum(USCC_CHARS.index(c) * w for c, w in zip(code[:17], USCC_WEIGHTS, strict=True))
    check = (31 - total % 31) % 31
    return USCC_CHARS[check] == code[17]


def valid_email(email: str | None) -> bool:
    text = (email or "").strip()
    return 0 < len(text) <= 128 and bool(EMAIL.match(text))


def order_split(order) -> Split:
    """The payable of ``order`` split into electricity and service (module docstring)."""
    payable = q_amount(order.payable_amount or 0)
    elec = q_amount(order.electricity_fee or 0) - q_amount(order.discount_electricity or 0)
    elec = min(max(elec, ZERO), payable)
    return Split(payable, elec, payable - elec)


def total_split(orders) -> Split:
    parts = [order_split(o) for o in orders]
    return Split(sum((p.amount for p in parts), ZERO), sum((p.electricity for p in parts), ZERO),
                 sum((p.service for p in parts), ZERO))


def _live_link(order_id_col):
    return exists().where(and_(invoice_order.c.order_id == order_id_col, invoice_order.c.released_at.is_(None)))


def invoiceable_filter(member):
    """SQL conditions of the orders ``member`` may request an invoice over."""
    return and_(
        ChargeOrder.member_id == member.id,
        ChargeOrder.operator_id == member.operator_id,
        ChargeOrder.status == "settled",
        ChargeOrder.pay_status.in_(PAID_STATUSES),
        ChargeOrder.payable_amount > 0,
        ChargeOrder.paid_amount >= ChargeOrder.payable_amount,
        ~_live_link(ChargeOrder.id),
    )


def invoiceable_orders_query(member):
    """select() of the member's invoiceable orders, newest first (the caller pages it)."""
    return (select(ChargeOrder).where(invoiceable_filter(member))
            .order_by(ChargeOrder.settled_at.desc(), ChargeOrder.id.desc()))


def live_invoice_order_ids(order_ids) -> set[int]:
    if not order_ids:
        return set()
    rows = db.session.execute(select(invoice_order.c.order_id).where(
        invoice_order.c.order_id.in_(list(order_ids)), invoice_order.c.released_at.is_(None)))
    return {r[0] for r in rows}


# ----- the member's request ---------------------------------------------------------------------------
def _clean_request(title_type, title, tax_no, email):
    if title_type not in TITLE_TYPES:
        raise InvoiceError("invalid_title_type", _l("Choose an individual or a company title."), "title_type")
    title = (title or "").strip()
    if not title or len(title) > 128:
        raise InvoiceError("invalid_title", _l("Enter the invoice title (at most 128 characters)."), "title")
    if title_type == "company":
        tax_no = (tax_no or "").strip().upper()
        if not valid_tax_no(tax_no):
            raise InvoiceError("invalid_tax_no",
                               _l("A company title needs its 18-character unified social credit code."), "tax_no")
    else:
        tax_no = None
    email = (email or "").strip()
    if not valid_email(email):
        raise InvoiceError("invalid_email", _l("Enter a valid e-mail address."), "email")
    return title, tax_no, email


def request_invoice(member, order_ids, title_type, title, tax_no=None, email=None, *, phone=None,
                    remark=None, session=None) -> Invoice:
    """Store the member's request over ``order_ids`` (module docstring) and commit; the Invoice."""
    session = session or db.session
    title, tax_no, email = _clean_request(title_type, title, tax_no, email)
    ids = sorted({int(i) for i in order_ids or []})
    if not ids:
        raise InvoiceError("no_orders", _l("Choose at least one order."), "order_ids")
    if len(ids) > MAX_ORDERS:
        raise InvoiceError("too_many_orders", _l("At most %(n)s orders fit on one invoice.", n=MAX_ORDERS),
                           "order_ids")
    try:
        with order_state.savepoint(session):
            # one request of a member at a time (FOR UPDATE on PostgreSQL, the write lock on SQLite);
            # the partial unique index stays the guard whatever the caller does
            wallet.lock_row(session, Member, member.id)
            orders = session.scalars(select(ChargeOrder).where(ChargeOrder.id.in_(ids), invoiceable_filter(member))
                                     .order_by(ChargeOrder.id)).all()
            if len(orders) != len(ids):
                found = {o.id for o in orders}
                missing = [i for i in ids if i not in found]
                taken = live_invoice_order_ids(missing)
                own = set(session.scalars(select(ChargeOrder.id).where(
                    ChargeOrder.id.in_(missing), ChargeOrder.member_id == member.id,
                    ChargeOrder.operator_id == member.operator_id)))
                if taken & own:
                    raise InvoiceError("order_already_invoiced", _l("An order is already on an invoice."),
                                       "order_ids", sorted(taken & own))
                raise InvoiceError("order_not_invoiceable",
                                   _l("Only your own settled and paid orders can be invoiced."), "order_ids",
                                   missing)
            split = total_split(orders)
            invoice = Invoice(operator_id=member.operator_id, member_id=member.id, title_type=title_type,
                              title=title, tax_no=tax_no, email=email, phone=phone or member.phone,
                              invoice_type="electronic", amount=split.amount,
                              electricity_amount=split.electricity, service_amount=split.service,
                              status="applied", remark=remark, orders=list(orders))
            session.add(invoice)
            session.flush()
    except IntegrityError as exc:
        if "invoice_order" not in str(exc.orig).lower() and "uq_ev_invoice_order_live" not in str(exc).lower():
            raise
        raise InvoiceError("order_already_invoiced", _l("An order is already on an invoice."), "order_ids",
                           ids) from None
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise InvoiceError("order_already_invoiced", _l("An order is already on an invoice."), "order_ids",
                           ids) from None
    return invoice


def member_invoices_query(member):
    return (select(Invoice).where(Invoice.member_id == member.id, Invoice.operator_id == member.operator_id)
            .order_by(Invoice.created_at.desc(), Invoice.id.desc()))


def member_invoice(member, invoice_id):
    """The member's own invoice ``invoice_id`` or None."""
    return db.session.scalar(member_invoices_query(member).where(Invoice.id == invoice_id))


# ----- staff decision ----------------------------------------------------------------------------------
def get_in_scope(invoice_id: int) -> Invoice | None:
    """The invoice if it exists within the caller's data scope."""
    return db.session.scalar(apply_scope(select(Invoice).where(Invoice.id == invoice_id), Invoice))


def _decide(invoice_id, user, status, *, invoice_no=None, reason=None, session=None):
    session = session or db.session
    if get_in_scope(invoice_id) is None:
        raise InvoiceError("not_found", _l("No such invoice."))
    now = utcnow()
    with order_state.savepoint(session):
        invoice = wallet.lock_row(session, Invoice, invoice_id)
        if invoice.status != "applied":
            raise InvoiceError("already_decided", _l("This invoice has already been handled."))
        invoice.status = status
        invoice.invoice_no = invoice_no
        invoice.reject_reason = reason
        invoice.issued_by_id = getattr(user, "id", None)
        invoice.issued_at = now
        if status == "rejected":
            session.execute(update(invoice_order).where(invoice_order.c.invoice_id == invoice_id,
                                                        invoice_order.c.released_at.is_(None))
                            .values(released_at=now))
        session.flush()
    session.commit()
    return invoice


def issue_invoice(invoice_id: int, user, invoice_no: str, *, session=None) -> Invoice:
    """开票: the applied invoice becomes ``issued`` with ``invoice_no``; who and when are stamped."""
    invoice_no = (invoice_no or "").strip()
    if not invoice_no:
        raise InvoiceError("invoice_no_required", _l("Enter the number of the issued invoice."), "invoice_no")
    if len(invoice_no) > 32:
        raise InvoiceError("invoice_no_required", _l("The invoice number has at most 32 characters."),
                           "invoice_no")
    return _decide(invoice_id, user, "issued", invoice_no=invoice_no, session=session)


def reject_invoice(invoice_id: int, user, reason: str, *, session=None) -> Invoice:
    """驳回: the applied invoice becomes ``rejected`` with ``reason``; its orders are released."""
    reason = (reason or "").strip()
    if not reason:
        raise InvoiceError("reason_required", _l("Enter the reason for rejecting the invoice."), "reject_reason")
    if len(reason) > 255:
        raise InvoiceError("reason_required", _l("The reason has at most 255 characters."), "reject_reason")
    return _decide(invoice_id, user, "rejected", reason=reason, session=session)
