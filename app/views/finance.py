"""财务管理: invoices, channels, members, payment gateways, organizations, charge cards,
financial bills and occupancy bills."""

import uuid

from flask import abort, flash, g, redirect, request, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.forms import DynamicForm
from flask_appbuilder.models.sqla.filters import FilterNotEqual
from flask_appbuilder.security.decorators import permission_name
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape
from sqlalchemy import or_
from wtforms import DecimalField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, Regexp, ValidationError

from app.extensions import db
from app.models import (
    Card,
    Channel,
    ChargeOrder,
    Invoice,
    Member,
    OccupancyOrder,
    Organization,
    PaymentGateway,
    WalletEntry,
)
from app.models.member import (
    CARD_STATUS,
    CARD_TYPE,
    CHANNEL_TYPE,
    GATEWAY_TYPE,
    INVOICE_STATUS,
    INVOICE_TITLE_TYPE,
    INVOICE_TYPE,
    MEMBER_STATUS,
    WALLET_KIND,
)
from app.models.order import OCCUPANCY_STATUS, ORDER_STATUS, PAY_STATUS, PAY_TYPE, REFUND_STATUS, START_METHOD
from app.services import invoices, masterdata, members, wallet
from app.views.base import CpmsModelView, ScopedSQLAInterface
from app.views.fields import Range
from app.views.orders import (
    OCCUPANCY_LABELS,
    ORDER_EXTRA_SEARCH,
    ORDER_LABELS,
    READ_ONLY,
    CappedScopedSQLAInterface,
    ExtraSearchMixin,
    OrderScreenMixin,
    StatusNotIn,
    related_filter,
)
from app.views.stations import labels
from app.views.write_hooks import CardWrite, MemberWrite

PHONE = Regexp(r"^1\d{10}$", message=_l("A mobile number is 11 digits starting with 1."))


# ----- 发票管理 --------------------------------------------------------------------------------
def _orders_table(orders):
    if not orders:
        return ""
    head = "".join(
        f"<th>{escape(h)}</th>"
        for h in (
            _l("Order no."),
            _l("Station"),
            _l("Start time"),
            _l("Energy (kWh)"),
            _l("Electricity fee (yuan)"),
            _l("Service fee (yuan)"),
            _l("Order amount (yuan)"),
            _l("Paid (yuan)"),
        )
    )
    from app.views.base import local_time

    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{escape(v)}</td>"
            for v in (
                o.order_no,
                o.station,
                local_time(o.started_at),
                o.energy,
                o.electricity_fee,
                o.service_fee,
                o.total_amount,
                o.paid_amount,
            )
        )
        + "</tr>"
        for o in orders
    )
    return Markup(
        f'<table class="table table-condensed cpms-invoice-orders"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


class _DecisionCheck:
    """Form-level rule of the issue form, reported on the field it concerns."""

    def __init__(self, field):
        self.field = field

    def __call__(self, form, field):
        errors = invoices.decision_errors(form.status.data, form.invoice_no.data, form.reject_reason.data)
        if self.field in errors:
            raise ValidationError(errors[self.field])


class InvoiceView(CpmsModelView):
    datamodel = ScopedSQLAInterface(Invoice)
    list_title = _l("Invoices")
    show_title = _l("Invoice details")
    edit_title = _l("Issue invoice")
    base_permissions = ["can_list", "can_show", "can_edit", "can_export"]
    choice_columns = {
        "title_type": INVOICE_TITLE_TYPE,
        "invoice_type": INVOICE_TYPE,
        "status": INVOICE_STATUS,
    }
    list_columns = [
        "id",
        "member.member_no",
        "title_type",
        "title",
        "amount",
        "electricity_amount",
        "service_amount",
        "invoice_type",
        "status",
        "operator",
        "created_at",
    ]
    search_columns = ["title", "status", "operator", "title_type", "created_at"]
    order_columns = ["id", "created_at", "amount"]
    base_order = ("created_at", "desc")
    edit_columns = ["status", "invoice_no", "reject_reason", "remark"]
    show_fieldsets = [
        (
            _l("Invoice"),
            {
                "fields": [
                    "id",
                    "member",
                    "member.member_no",
                    "invoice_type",
                    "title_type",
                    "title",
                    "tax_no",
                    "company_address",
                    "company_phone",
                    "bank_name",
                    "bank_account",
                    "amount",
                    "electricity_amount",
                    "service_amount",
                ]
            },
        ),
        (_l("Delivery"), {"fields": ["email", "phone"]}),
        (
            _l("Handling"),
            {
                "fields": [
                    "status",
                    "invoice_no",
                    "reject_reason",
                    "issued_at",
                    "remark",
                    "operator",
                    "created_at",
                ]
            },
        ),
        (_l("Charging orders"), {"fields": ["orders"]}),
    ]
    label_columns = labels(
        id=_l("Invoice no."),
        member=_l("Member"),
        **{"member.member_no": _l("Member no.")},
        title_type=_l("Title type"),
        title=_l("Invoice title"),
        tax_no=_l("Tax no."),
        company_address=_l("Company address"),
        company_phone=_l("Company phone"),
        bank_name=_l("Bank"),
        bank_account=_l("Bank account"),
        invoice_type=_l("Invoice type"),
        amount=_l("Invoice amount (yuan)"),
        electricity_amount=_l("Electricity amount (yuan)"),
        service_amount=_l("Service amount (yuan)"),
        status=_l("Invoice status"),
        email=_l("Email"),
        phone=_l("Phone"),
        invoice_no=_l("Issued invoice no."),
        reject_reason=_l("Reject reason"),
        issued_at=_l("Handled at"),
        orders=_l("Charging orders"),
        created_at=_l("Applied at"),
    )
    formatters_columns = {"orders": _orders_table}
    edit_form_extra_fields = {
        "status": SelectField(
            _l("Invoice status"),
            choices=[("issued", _l("Issued")), ("rejected", _l("Rejected"))],
            validators=[DataRequired(), _DecisionCheck("status")],
        ),
        "invoice_no": StringField(
            _l("Issued invoice no."), validators=[_DecisionCheck("invoice_no"), Length(max=32)]
        ),
        "reject_reason": StringField(
            _l("Reject reason"), validators=[_DecisionCheck("reject_reason"), Length(max=255)]
        ),
    }

    def pre_update(self, item):
        super().pre_update(item)
        invoices.apply_decision(item, g.user)


# ----- 渠道管理 --------------------------------------------------------------------------------
class ChannelView(CpmsModelView):
    datamodel = ScopedSQLAInterface(Channel)
    list_title = _l("Channels")
    show_title = add_title = edit_title = _l("Channel")
    choice_columns = {"channel_type": CHANNEL_TYPE}
    list_columns = ["id", "name", "channel_type", "rate", "identifier", "operator", "enabled"]
    search_columns = ["channel_type", "identifier", "name", "operator", "enabled"]
    order_columns = ["id", "name", "channel_type"]
    base_order = ("id", "asc")
    add_columns = edit_columns = [
        "code",
        "name",
        "channel_type",
        "rate",
        "identifier",
        "operator",
        "enabled",
        "remark",
    ]
    show_columns = [
        "id",
        "code",
        "name",
        "channel_type",
        "rate",
        "identifier",
        "operator",
        "enabled",
        "remark",
        "created_at",
        "updated_at",
    ]
    label_columns = labels(
        id=_l("Channel no."),
        code=_l("Channel code"),
        name=_l("Channel name"),
        channel_type=_l("Channel type"),
        rate=_l("Channel rate"),
        identifier=_l("Channel identifier"),
    )
    description_columns = {
        "rate": _l("A fraction of the amount: 0.006 = 0.6 percent."),
        "identifier": _l("E.g. the WeChat appid or the partner's name."),
    }
    add_form_extra_fields = edit_form_extra_fields = {
        "rate": DecimalField(
            _l("Channel rate"), places=6, default=0, validators=[Optional(), Range(0, 1, _l("Channel rate"))]
        ),
    }

    def pre_add(self, item):
        masterdata.prepare_channel(item)
        super().pre_add(item)

    def pre_update(self, item):
        masterdata.prepare_channel(item)
        super().pre_update(item)


# ----- 会员管理 --------------------------------------------------------------------------------
class AdjustForm(DynamicForm):
    amount = DecimalField(_l("Amount (yuan)"), places=2,
                          description=_l("Positive adds to the balance, negative deducts from it."),
                          validators=[InputRequired(), NumberRange(min=-100000, max=100000)])
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=255)])
    request_key = HiddenField()


class MemberView(MemberWrite, CpmsModelView):
    """Balance is the wallet ledger's cache: shown, never edited here; it changes by a ledger entry
    only (a manual adjustment is one, with its reason, who and when: ``wallet.adjust``)."""

    show_template = "finance/member_show.html"

    datamodel = ScopedSQLAInterface(Member)
    list_title = _l("Members")
    show_title = edit_title = _l("Member")
    base_permissions = ["can_list", "can_show", "can_edit", "can_export", "can_adjust"]
    choice_columns = {"status": MEMBER_STATUS}
    list_columns = [
        "member_no",
        "username",
        "nickname",
        "phone",
        "balance",
        "organization",
        "created_at",
        "operator",
        "status",
    ]
    search_columns = ["member_no", "phone", "nickname", "status", "organization", "operator", "created_at"]
    order_columns = ["member_no", "created_at"]
    base_order = ("created_at", "desc")
    edit_columns = ["nickname", "username", "phone", "status", "organization", "plate_no", "vin", "remark"]
    show_columns = [
        "member_no",
        "username",
        "nickname",
        "phone",
        "balance",
        "status",
        "organization",
        "channel",
        "plate_no",
        "vin",
        "last_login_at",
        "operator",
        "remark",
        "created_at",
    ]
    label_columns = labels(
        member_no=_l("Member no."),
        username=_l("Username"),
        nickname=_l("Nickname"),
        phone=_l("Phone"),
        balance=_l("Balance (yuan)"),
        organization=_l("Organization"),
        channel=_l("Registered through"),
        plate_no=_l("Plate no."),
        vin=_l("VIN"),
        status=_l("Account status"),
        last_login_at=_l("Last login"),
        created_at=_l("Registered at"),
    )
    edit_form_extra_fields = {
        "phone": StringField(_l("Phone"), validators=[Optional(), PHONE]),
        "vin": StringField(
            _l("VIN"),
            validators=[
                Optional(),
                Regexp(
                    r"^[A-HJ-NPR-Z0-9]{17}$",
                    message=_l("A VIN is 17 characters (digits and capital letters, no I, O, Q)."),
                ),
            ],
        ),
        "plate_no": StringField(_l("Plate no."), validators=[Optional(), Length(max=16)]),
    }

    @expose("/adjust/<pk>", methods=["GET", "POST"])
    @has_access
    @permission_name("adjust")
    def adjust(self, pk):
        """Manual adjustment of the member's balance (its own permission: operator admins)."""
        member = self.datamodel.get(pk, self._base_filters)       # in the caller's data scope
        if member is None:
            abort(404)
        form = AdjustForm.refresh()
        if request.method == "GET":
            form.request_key.data = uuid.uuid4().hex                 # one booking per opened form
        elif form.validate():
            try:
                wallet.adjust(member.id, form.amount.data, form.reason.data, g.user.id,
                              form.request_key.data or uuid.uuid4().hex)
            except wallet.WalletError as exc:
                flash(str(exc), "danger")
            else:
                flash(_("The balance of %(no)s was adjusted by %(amount)s yuan.", no=member.member_no,
                        amount=f"{form.amount.data:+.2f}"), "success")
                return redirect(url_for("MemberView.show", pk=member.id))
        return self.render_template("finance/member_adjust.html", member=member, form=form,
                                    back_url=url_for("MemberView.show", pk=member.id))


class WalletEntryView(CpmsModelView):
    """余额明细: the wallet ledger (append-only: no add, edit or delete anywhere)."""

    datamodel = ScopedSQLAInterface(WalletEntry)
    list_title = _l("Balance details")
    show_title = _l("Ledger entry")
    base_permissions = READ_ONLY
    choice_columns = {"kind": WALLET_KIND}
    list_columns = ["created_at", "member.member_no", "member.phone", "kind", "amount", "balance_after",
                    "order.order_no", "remark", "created_by.username", "operator"]
    show_columns = ["created_at", "member", "kind", "amount", "balance_after", "order", "payment",
                    "remark", "created_by", "operator"]
    search_columns = ["member", "kind", "created_at", "operator", "remark"]
    order_columns = ["created_at", "amount"]
    base_order = ("id", "desc")
    label_columns = labels(
        created_at=_l("Time"),
        member=_l("Member"),
        kind=_l("Type"),
        amount=_l("Amount (yuan)"),
        balance_after=_l("Balance after (yuan)"),
        order=_l("Charging order"),
        payment=_l("Payment"),
        remark=_l("Reason / remark"),
        created_by=_l("Operated by"),
        **{"member.member_no": _l("Member no."), "member.phone": _l("Phone"),
           "order.order_no": _l("Charging order no."), "created_by.username": _l("Operated by")},
    )


# ----- 支付网关 --------------------------------------------------------------------------------
class PaymentGatewayView(CpmsModelView):
    """Global catalogue: tenants read it, platform admins maintain it."""

    datamodel = ScopedSQLAInterface(PaymentGateway)
    list_title = _l("Payment gateways")
    show_title = add_title = edit_title = _l("Payment gateway")
    choice_columns = {"gateway_type": GATEWAY_TYPE}
    list_columns = ["code", "gateway_type", "name", "display_name", "sort", "enabled", "remark"]
    search_columns = ["gateway_type", "name", "display_name", "enabled"]
    order_columns = ["code", "sort", "name"]
    base_order = ("sort", "asc")
    add_columns = edit_columns = ["code", "gateway_type", "name", "display_name", "sort", "enabled", "remark"]
    show_columns = [
        "code",
        "gateway_type",
        "name",
        "display_name",
        "sort",
        "enabled",
        "remark",
        "created_at",
        "updated_at",
    ]
    label_columns = labels(
        code=_l("Gateway no."),
        gateway_type=_l("Gateway type"),
        name=_l("Gateway name"),
        display_name=_l("Display name"),
    )


# ----- 电卡管理 --------------------------------------------------------------------------------
class _CardNo:
    def __init__(self, column):
        self.column = column

    def __call__(self, form, field):
        check = members.logical_no_error if self.column == "logical_no" else members.physical_no_error
        error = check(field.data)
        if error:
            raise ValidationError(error)
        value = (
            field.data.strip() if self.column == "logical_no" else members.normalize_physical_no(field.data)
        )
        if members.card_number_taken(db.session, self.column, value, getattr(form, "_id", None)):
            raise ValidationError(_l("Another card already has this number."))


class CardView(CardWrite, CpmsModelView):
    datamodel = ScopedSQLAInterface(Card)
    list_title = _l("Charge cards")
    show_title = add_title = edit_title = _l("Charge card")
    choice_columns = {"card_type": CARD_TYPE, "status": CARD_STATUS}
    list_columns = [
        "logical_no",
        "physical_no",
        "card_type",
        "status",
        "member",
        "organization",
        "balance",
        "operator",
        "created_at",
    ]
    search_columns = ["logical_no", "physical_no", "card_type", "status", "organization", "operator"]
    order_columns = ["logical_no", "created_at"]
    base_order = ("created_at", "desc")
    add_columns = edit_columns = [
        "logical_no",
        "physical_no",
        "card_type",
        "status",
        "organization",
        "member",
        "operator",
        "remark",
    ]
    show_columns = [
        "logical_no",
        "physical_no",
        "card_type",
        "status",
        "member",
        "organization",
        "balance",
        "operator",
        "remark",
        "created_at",
        "updated_at",
    ]
    label_columns = labels(
        logical_no=_l("Logical card no."),
        physical_no=_l("Physical card no."),
        card_type=_l("Card type"),
        status=_l("Card status"),
        member=_l("Member"),
        organization=_l("Organization"),
        balance=_l("Offline balance (yuan)"),
    )
    description_columns = {
        "logical_no": _l("16 digits, printed on the card."),
        "physical_no": _l("16 hexadecimal characters read from the chip (0-9, A-F)."),
    }
    add_form_extra_fields = edit_form_extra_fields = {
        "logical_no": StringField(_l("Logical card no."), validators=[DataRequired(), _CardNo("logical_no")]),
        "physical_no": StringField(
            _l("Physical card no."), validators=[DataRequired(), _CardNo("physical_no")]
        ),
    }


# ----- 组织机构 --------------------------------------------------------------------------------
def _organization_links(pk):
    members_url = url_for("MemberView.list", _flt_0_organization=pk)
    cards_url = url_for("CardView.list", _flt_0_organization=pk)
    return Markup(
        f'{escape(pk)} <span class="cpms-org-links">'
        f'<a class="btn btn-xs btn-default" href="{escape(members_url)}">{escape(_l("Members"))}</a> '
        f'<a class="btn btn-xs btn-default" href="{escape(cards_url)}">{escape(_l("Cards"))}</a></span>'
    )


class OrganizationView(CpmsModelView):
    datamodel = ScopedSQLAInterface(Organization)
    list_title = _l("Organizations")
    show_title = add_title = edit_title = _l("Organization")
    related_views = [MemberView, CardView]
    list_columns = ["id", "name", "code", "company_name", "contact", "phone", "operator", "enabled"]
    search_columns = ["name", "company_name", "contact", "phone", "operator", "enabled"]
    order_columns = ["id", "name"]
    base_order = ("id", "asc")
    add_columns = edit_columns = [
        "name",
        "code",
        "company_name",
        "contact",
        "phone",
        "operator",
        "enabled",
        "remark",
    ]
    show_columns = [
        "id",
        "name",
        "code",
        "company_name",
        "contact",
        "phone",
        "operator",
        "enabled",
        "remark",
        "created_at",
    ]
    label_columns = labels(
        id=_l("Organization no."),
        name=_l("Organization name"),
        code=_l("Organization code"),
        company_name=_l("Company name"),
    )
    formatters_columns = {"id": _organization_links}
    add_form_extra_fields = edit_form_extra_fields = {
        "phone": StringField(_l("Phone"), validators=[Optional(), PHONE]),
        "code": StringField(_l("Organization code"), validators=[Optional(), Length(max=32)]),
    }

    def _export_value(self, item, column):
        if column == "id":
            return item.id
        return super()._export_value(item, column)

    def pre_add(self, item):
        masterdata.prepare_organization(item)
        super().pre_add(item)

    def pre_update(self, item):
        masterdata.prepare_organization(item)
        super().pre_update(item)


# ----- 财务账单 / 占位账单 -------------------------------------------------------------------------
class _SettledOrPaid(StatusNotIn):
    name = "Settled or paid"

    def apply(self, query, value):
        return query.filter(or_(ChargeOrder.status == "settled", ChargeOrder.pay_status != "unpaid"))


class FinancialBillView(OrderScreenMixin, ExtraSearchMixin, CpmsModelView):
    """Manual §2.5.6: 订单号, 电站名称, 订单渠道, 账单时间 (paid_at, local time) + pay type, pile code.
    Export: the filtered set, streamed (yield_per + openpyxl write-only; bench/export_stream.py)."""

    datamodel = CappedScopedSQLAInterface(ChargeOrder)
    base_permissions = READ_ONLY
    list_title = _l("Financial bills")
    show_title = _l("Financial bill")
    base_filters = [["status", _SettledOrPaid, None]]
    choice_columns = {
        "status": ORDER_STATUS,
        "pay_status": PAY_STATUS,
        "pay_type": PAY_TYPE,
        "start_method": START_METHOD,
    }
    list_columns = [
        "order_no",
        "channel",
        "partner_order_no",
        "station",
        "pile.name",
        "connector.name",
        "total_amount",
        "paid_amount",
        "discount_total",
        "energy",
        "electricity_fee",
        "discount_electricity",
        "service_fee",
        "discount_service",
        "pay_type",
        "paid_at",
        "settled_at",
    ]
    search_columns = ["order_no", "station", "channel", "pay_type", "paid_at", "settled_at"]
    extra_search = {"pile_code": ORDER_EXTRA_SEARCH["pile_code"]}
    list_template = "orders/list.html"
    order_columns = ["order_no", "paid_at", "settled_at", "created_at"]
    base_order = ("created_at", "desc")
    show_columns = list_columns + ["member", "pay_status", "refunded_amount", "status", "operator"]
    label_columns = dict(ORDER_LABELS, paid_at=_l("Bill time"))


class OccupancyBillView(OrderScreenMixin, ExtraSearchMixin, CpmsModelView):
    """Manual §2.5.7: 订单号, 电站名称, 订单渠道, 账单时间 (paid_at, local time)."""

    datamodel = CappedScopedSQLAInterface(OccupancyOrder)
    base_permissions = READ_ONLY
    list_title = _l("Occupancy bills")
    show_title = _l("Occupancy bill")
    base_filters = [["status", FilterNotEqual, "ongoing"]]
    choice_columns = {
        "status": OCCUPANCY_STATUS,
        "pay_status": PAY_STATUS,
        "pay_type": PAY_TYPE,
        "refund_status": REFUND_STATUS,
    }
    list_columns = [
        "charge_order",
        "order_no",
        "duration_minutes",
        "channel",
        "station",
        "pile.name",
        "connector.name",
        "amount",
        "paid_amount",
        "paid_at",
        "settlement_amount",
        "income_amount",
        "split_amount",
    ]
    search_columns = ["order_no", "station", "channel", "paid_at", "started_at"]
    list_template = "orders/list.html"
    extra_search = {
        "charge_order_no": (
            _l("Charging order no."),
            [related_filter(_l("Equal to"), "charge_order_id", ChargeOrder.order_no)],
        )
    }
    order_columns = ["order_no", "paid_at", "started_at", "created_at"]
    base_order = ("created_at", "desc")
    show_columns = list_columns + [
        "member",
        "started_at",
        "ended_at",
        "discount_amount",
        "refunded_amount",
        "pay_status",
        "pay_type",
        "refund_status",
        "status",
        "operator",
    ]
    label_columns = dict(OCCUPANCY_LABELS, paid_at=_l("Bill time"), amount=_l("Bill amount (yuan)"))
