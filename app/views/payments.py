"""支付记录 (payments) and 退款记录 (refunds): read-only money history, plus the retry of a failed refund; and the
WeChat Pay credential fields of 支付网关 (write-only, stored sealed: app/services/secrets_box.py)."""
from flask import flash, g, redirect
from flask_appbuilder.actions import action
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import StringField, TextAreaField
from wtforms.validators import Length, Optional
from wtforms.widgets import PasswordInput

from app.models import Payment, Refund
from app.models.member import PAYMENT_PURPOSE, PAYMENT_STATUS
from app.models.payment import REFUND_KIND, REFUND_STATE
from app.services import payments
from app.views.base import CpmsModelView, ScopedSQLAInterface
from app.views.orders import READ_ONLY
from app.views.stations import labels

SECRET_FIELDS = ("api_v3_key", "private_key", "platform_public_key")


def _is_set(value):
    return _("Set") if value else "-"


class GatewayCredentialsMixin:
    """WeChat Pay merchant credentials on the gateway form: the secrets are write-only (never prefilled, an
    empty input keeps the stored value) and shown as "Set"."""

    credential_columns = ["mchid", "appid", "merchant_serial_no", "platform_public_key_id", "api_base_url"]
    credential_show_columns = ["mchid", "appid", "merchant_serial_no", "api_v3_key_enc", "private_key_enc",
                               "platform_public_key_enc", "platform_public_key_id", "api_base_url"]
    credential_labels = dict(
        mchid=_l("Merchant ID (mchid)"),
        appid=_l("AppID"),
        merchant_serial_no=_l("Merchant certificate serial no."),
        api_v3_key=_l("API v3 key"),
        api_v3_key_enc=_l("API v3 key"),
        private_key=_l("Merchant API private key (PEM)"),
        private_key_enc=_l("Merchant API private key (PEM)"),
        platform_public_key=_l("WeChat Pay public key (PEM)"),
        platform_public_key_enc=_l("WeChat Pay public key (PEM)"),
        platform_public_key_id=_l("WeChat Pay public key ID"),
        api_base_url=_l("API address"),
    )
    credential_descriptions = {
        "api_v3_key": _l("Never shown again; leave empty to keep the stored one."),
        "private_key": _l("Never shown again; leave empty to keep the stored one."),
        "platform_public_key": _l("Never shown again; leave empty to keep the stored one."),
        "api_base_url": _l("Leave empty for the official WeChat Pay address."),
    }
    credential_fields = {
        "api_v3_key": StringField(_l("API v3 key"), validators=[Optional(), Length(min=32, max=32)],
                                  widget=PasswordInput(hide_value=True)),
        "private_key": TextAreaField(_l("Merchant API private key (PEM)"), validators=[Optional(), Length(max=8000)]),
        "platform_public_key": TextAreaField(_l("WeChat Pay public key (PEM)"),
                                             validators=[Optional(), Length(max=4000)]),
    }
    credential_formatters = {"api_v3_key_enc": _is_set, "private_key_enc": _is_set,
                             "platform_public_key_enc": _is_set}

    def prefill_form(self, form, pk):
        for name in SECRET_FIELDS:
            getattr(form, name).data = ""

    def process_form(self, form, is_created):
        g.cpms_gateway_secrets = {name: getattr(form, name).data for name in SECRET_FIELDS}
        for name in SECRET_FIELDS:
            delattr(form, name)          # populate_obj must not write the raw input

    def _apply_secrets(self, item):
        secrets = g.pop("cpms_gateway_secrets", None) or {}
        payments.set_credentials(item, **{k: v for k, v in secrets.items() if v})

    def pre_add(self, item):
        self._apply_secrets(item)
        super().pre_add(item)

    def pre_update(self, item):
        self._apply_secrets(item)
        super().pre_update(item)


class PaymentView(CpmsModelView):
    """支付记录: every payment through a gateway (top-ups, prepayments), read only."""

    datamodel = ScopedSQLAInterface(Payment)
    list_title = _l("Payment records")
    show_title = _l("Payment record")
    base_permissions = READ_ONLY
    choice_columns = {"status": PAYMENT_STATUS, "purpose": PAYMENT_PURPOSE}
    list_columns = ["payment_no", "created_at", "member.member_no", "member.phone", "purpose", "amount",
                    "refunded_amount", "status", "gateway", "gateway_trade_no", "paid_at", "operator"]
    show_columns = ["payment_no", "member", "purpose", "order", "amount", "refunded_amount", "status", "gateway",
                    "gateway_trade_no", "created_at", "paid_at", "expires_at", "remark", "operator"]
    search_columns = ["created_at", "member", "status", "gateway", "purpose", "gateway_trade_no", "payment_no",
                      "operator"]
    order_columns = ["created_at", "amount", "paid_at"]
    base_order = ("id", "desc")
    show_template = "finance/payment_show.html"
    label_columns = labels(
        payment_no=_l("Payment no."),
        created_at=_l("Created at"),
        member=_l("Member"),
        purpose=_l("Purpose"),
        order=_l("Charging order"),
        amount=_l("Amount (yuan)"),
        refunded_amount=_l("Refunded (yuan)"),
        status=_l("Payment status"),
        gateway=_l("Payment gateway"),
        gateway_trade_no=_l("Gateway transaction no."),
        paid_at=_l("Paid at"),
        expires_at=_l("Expires at"),
        remark=_l("Remark"),
        **{"member.member_no": _l("Member no."), "member.phone": _l("Phone")},
    )



class RefundView(CpmsModelView):
    """退款记录: refunds of unused prepayments and of wallet balance; a failed one can be sent again."""

    datamodel = ScopedSQLAInterface(Refund)
    list_title = _l("Refund records")
    show_title = _l("Refund record")
    base_permissions = READ_ONLY + ["can_retry"]
    choice_columns = {"status": REFUND_STATE, "kind": REFUND_KIND}
    list_columns = ["refund_no", "created_at", "member.member_no", "kind", "amount", "status", "payment",
                    "order.order_no", "gateway_refund_id", "succeeded_at", "last_error", "operator"]
    show_columns = ["refund_no", "kind", "member", "payment", "order", "amount", "status", "reason",
                    "gateway_refund_id", "requested_by", "attempts", "last_error", "created_at", "succeeded_at",
                    "operator"]
    search_columns = ["created_at", "member", "status", "kind", "refund_no", "gateway_refund_id", "operator"]
    order_columns = ["created_at", "amount"]
    base_order = ("id", "desc")
    label_columns = labels(
        refund_no=_l("Refund no."),
        created_at=_l("Created at"),
        member=_l("Member"),
        kind=_l("Refund type"),
        amount=_l("Refund amount (yuan)"),
        status=_l("Refund status"),
        payment=_l("Payment no."),
        order=_l("Charging order"),
        reason=_l("Refund reason"),
        gateway_refund_id=_l("Gateway refund no."),
        requested_by=_l("Requested by"),
        attempts=_l("Attempts"),
        last_error=_l("Last error"),
        succeeded_at=_l("Refunded at"),
        **{"member.member_no": _l("Member no."), "order.order_no": _l("Charging order no.")},
    )

    @action("retry", _l("Retry refund"), _l("Send the selected failed refunds again?"), "fa-repeat", single=False)
    def retry(self, items):
        items = [it for it in (items if isinstance(items, list) else [items]) if it is not None]
        done = 0
        for item in items:
            try:
                new = payments.retry_refund(item.id, user_id=g.user.id)
            except payments.PaymentError as exc:
                flash(_("%(no)s: %(why)s", no=item.refund_no, why=_retry_error(exc.code)), "danger")
                continue
            payments.send_refund(new.id)
            done += 1
        if done:
            flash(_("%(n)d refund(s) sent again.", n=done), "success")
        self.update_redirect()
        return redirect(self.get_redirect())


def _retry_error(code):
    return {
        "not_retryable": _("only a failed refund can be retried"),
        "balance_insufficient": _("the wallet balance is not enough"),
        "nothing_refundable": _("the payment has nothing left to refund"),
    }.get(code, code)


def refund_rows(of, row_id):
    """Refunds shown on a member's, an order's or a payment's page (template global ``cpms_refunds``): dicts of
    display values. The page itself is scoped; its refunds belong to the same operator."""
    from app.views.base import local_time

    try:
        row_id = int(row_id)
    except (TypeError, ValueError):
        return []
    if of == "member":
        refunds = payments.refunds_of_member(row_id)
    elif of == "order":
        refunds = payments.refunds_of_order(row_id)
    else:
        refunds = payments.refunds_of_payment(row_id)
    kinds, states = dict(REFUND_KIND), dict(REFUND_STATE)
    return [{"refund_no": r.refund_no, "kind": _(kinds.get(r.kind, r.kind)), "amount": r.amount,
             "status": _(states.get(r.status, r.status)), "payment_no": r.payment.payment_no if r.payment else "-",
             "gateway_refund_id": r.gateway_refund_id or "-", "created_at": local_time(r.created_at),
             "succeeded_at": local_time(r.succeeded_at) if r.succeeded_at else "-", "last_error": r.last_error or "-",
             "reason": r.reason or "-"} for r in refunds]


def register(app):
    app.jinja_env.globals.setdefault("cpms_refunds", refund_rows)
