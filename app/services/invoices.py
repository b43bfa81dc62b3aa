"""Invoice handling by staff: issue (with the invoice number) or reject (with a reason)."""

from flask_babel import lazy_gettext as _l

from app.models.base import utcnow

DECISIONS = ("issued", "rejected")


def decision_errors(status, invoice_no, reject_reason):
    """{field: message} for an issue/reject decision; empty when valid."""
    errors = {}
    if status not in DECISIONS:
        errors["status"] = _l("Choose Issued or Rejected.")
    elif status == "issued" and not (invoice_no or "").strip():
        errors["invoice_no"] = _l("Enter the number of the issued invoice.")
    elif status == "rejected" and not (reject_reason or "").strip():
        errors["reject_reason"] = _l("Enter the reason for rejecting the invoice.")
    return errors


def apply_decision(invoice, user):
    """Stamp who decided and when; clear the field that does not belong to the decision."""
    if invoice.status == "issued":
        invoice.invoice_no = invoice.invoice_no.strip()
        invoice.reject_reason = None
    elif invoice.status == "rejected":
        invoice.invoice_no = None
    invoice.issued_by_id = getattr(user, "id", None)
    invoice.issued_at = utcnow()
