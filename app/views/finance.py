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
from flask_wtf import FlaskForm
from markupsafe import Markup, escape
from sqlalchemy import or_
from wtforms import DecimalField, HiddenField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, Regexp, ValidationError
from wtforms.widgets import PasswordInput

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
    CARD_PAY_MODE,
    CARD_STATUS,
    CARD_TYPE,
    CHANNEL_TYPE,
    GATEWAY_TYPE,
    INVOICE_STATUS,
    INVOICE_TITLE_TYPE,
    INVOICE_TYPE,
    MEMBER_STATUS,
    PAY_MODE,
    WALLET_KIND,
)
from app.models.order import OCCUPANCY_STATUS, ORDER_STATUS, PAY_STATUS, PAY_TYPE, REFUND_STATUS, START_METHOD
from app.services import campaigns, invoices, masterdata, members, organizations, wallet, wechat_login
from app.views.base import CpmsModelView, ScopedSQLAInterface
from app.views.fields import Range
from app.views.marketing import DiscountField
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
from app.views.organizations import OrganizationAccountForm, OrganizationEntryView
from app.views.payments import GatewayCredentialsMixin
from app.views.stations import labels
from app.views.write_hooks import CardWrite, MemberWrite

PHONE = Regexp(r"^1\d{10}$", message=_l("A mobile number is 11 digits starting with 1."))


class _AppSecret:
    def __call__(self, form, field):
        error = wechat_login.app_secret_error((field.data or "").strip())
        if error:
            raise ValidationError(error)


# ----- 发票管理 --------------------------------------------------------------------------------
def _orders_table(orders):
    """开票明细: the invoice's orders with their figures and the part of each that is invoiced,
    under a summary line (订单量, 订单金额, 订单电费, 订单服务费, 订单电量) as in the manual."""
    if not orders:
        return "-"
    from app.views.base import local_time

    head = "".join(
        f"<th>{escape(h)}</th>"
        for h in (
            _l("Order no."),
            _l("Station"),
            _l("Connector"),
            _l("Start time"),
            _l("End time"),
            _l("Energy (kWh)"),
            _l("Electricity fee (yuan)"),
            _l("Service fee (yuan)"),
            _l("Order amount (yuan)"),
            _l("Discount (yuan)"),
            _l("Paid (yuan)"),
            _l("Invoiced electricity (yuan)"),
            _l("Invoiced service (yuan)"),
        )
    )
    body = []
    for o in orders:
        split = invoices.order_split(o)
        cells = (o.order_no, o.station or "-", o.connector.code if o.connector else "-",
                 local_time(o.started_at) or "-", local_time(o.ended_at) or "-", o.energy, o.electricity_fee,
                 o.service_fee, o.total_amount, o.discount_total, o.paid_amount, split.electricity, split.service)
        body.append("<tr>" + "".join(f"<td>{escape(v)}</td>" for v in cells) + "</tr>")
    total = invoices.total_split(orders)
    summary = " · ".join(f"{escape(label)}: {escape(value)}" for label, value in (
        (_l("Orders"), len(orders)),
        (_l("Order amount (yuan)"), sum((o.total_amount or 0 for o in orders), 0)),
        (_l("Electricity fee (yuan)"), sum((o.electricity_fee or 0 for o in orders), 0)),
        (_l("Service fee (yuan)"), sum((o.service_fee or 0 for o in orders), 0)),
        (_l("Energy (kWh)"), sum((o.energy or 0 for o in orders), 0)),
        (_l("Invoice amount (yuan)"), total.amount),
    ))
    return Markup(
        f'<p class="cpms-invoice-summary">{summary}</p>'
        f'<table class="table table-condensed cpms-invoice-orders"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


class InvoiceIssueForm(FlaskForm):
    invoice_no = StringField(_l("Issued invoice no."), validators=[DataRequired(), Length(max=32)])


class InvoiceRejectForm(FlaskForm):
    reject_reason = TextAreaField(_l("Reject reason"), validators=[DataRequired(), Length(max=255)])


class InvoiceView(ExtraSearchMixin, CpmsModelView):
    """发票管理 (manual §2.5.1): members' requests; 开票明细 on the detail page; 开票 (issue, with the
    invoice number) or 驳回 (reject, with a reason) once, each its own permission (operator admins),
    through app/services/invoices.py. History: no add, edit or delete."""

    datamodel = ScopedSQLAInterface(Invoice)
    list_title = _l("Invoices")
    show_title = _l("Invoice details")
    show_template = "finance/invoice_show.html"
    exclude_route_methods = {"add", "edit"}
    base_permissions = ["can_list", "can_show", "can_export", "can_issue", "can_reject"]
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
    # manual filters: 用户编号, 发票抬头, 发票状态, 运营商 (+ title type and applied time)
    search_columns = ["member_no", "title", "status", "operator", "title_type", "created_at"]
    extra_search = {"member_no": (_l("Member no."), [related_filter(_l("Equal to"), "member_id", Member.member_no)])}
    order_columns = ["id", "created_at", "amount"]
    base_order = ("created_at", "desc")
    show_fieldsets = [
        (
            _l("Invoice information"),
            {
                "fields": [
                    "id",
                    "member",
                    "member.member_no",
                    "invoice_type",
                    "title_type",
                    "title",
                    "tax_no",
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
                    "issued_by",
                    "issued_at",
                    "operator",
                    "created_at",
                ]
            },
        ),
        (_l("Invoice details (orders)"), {"fields": ["orders"]}),
    ]
    label_columns = labels(
        id=_l("Invoice no."),
        member=_l("Member"),
        **{"member.member_no": _l("Member no.")},
        title_type=_l("Title type"),
        title=_l("Invoice title"),
        tax_no=_l("Tax no."),
        invoice_type=_l("Invoice type"),
        amount=_l("Invoice amount (yuan)"),
        electricity_amount=_l("Electricity amount (yuan)"),
        service_amount=_l("Service amount (yuan)"),
        status=_l("Invoice status"),
        email=_l("Email"),
        phone=_l("Phone"),
        invoice_no=_l("Issued invoice no."),
        reject_reason=_l("Reject reason"),
        issued_by=_l("Handled by"),
        issued_at=_l("Handled at"),
        orders=_l("Charging orders"),
        created_at=_l("Applied at"),
    )
    formatters_columns = {"orders": _orders_table}

    def _decision(self, pk, form, decide, *, heading, field_name, button):
        """The issue / reject form (finance/invoice_decision.html): one decision on an applied request."""
        invoice = invoices.get_in_scope(pk)
        if invoice is None:
            abort(404)
        if invoice.status == "applied" and form.validate_on_submit():
            try:
                decide(invoice)
            except invoices.InvoiceError as exc:
                flash(str(exc.message), "danger")
            else:
                return redirect(url_for("InvoiceView.show", pk=pk))
        elif invoice.status != "applied":
            flash(_("This invoice has already been handled."), "warning")
        return self.render_template("finance/invoice_decision.html", invoice=invoice, form=form, heading=heading,
                                    field_name=field_name, button=button,
                                    title_types=dict(INVOICE_TITLE_TYPE), invoice_types=dict(INVOICE_TYPE))

    @expose("/issue/<int:pk>", methods=["GET", "POST"])
    @has_access
    @permission_name("issue")
    def issue(self, pk):
        """开票: confirm the request (开票详情) and record the number of the issued invoice."""
        form = InvoiceIssueForm()

        def decide(invoice):
            invoices.issue_invoice(invoice.id, g.user, form.invoice_no.data)
            flash(_("Invoice issued."), "success")

        return self._decision(pk, form, decide, heading=_("Issue invoice"), field_name="invoice_no",
                              button=_("Confirm issue"))

    @expose("/reject/<int:pk>", methods=["GET", "POST"])
    @has_access
    @permission_name("reject")
    def reject(self, pk):
        """驳回: refuse the request with a reason; its orders can be requested again."""
        form = InvoiceRejectForm()

        def decide(invoice):
            invoices.reject_invoice(invoice.id, g.user, form.reject_reason.data)
            flash(_("Invoice request rejected."), "success")

        return self._decision(pk, form, decide, heading=_("Reject invoice request"), field_name="reject_reason",
                              button=_("Reject"))


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
        "app_secret",
        "qr_prefix",
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
        "qr_prefix",
        "operator",
        "enabled",
        "remark",
        "created_at",
        "updated_at",
    ]
    label_columns = labels(
        id=_l("Channel no."),
        qr_prefix=_l("QR code prefix"),
        code=_l("Channel code"),
        name=_l("Channel name"),
        channel_type=_l("Channel type"),
        rate=_l("Channel rate"),
        identifier=_l("Channel identifier"),
        app_secret=_l("WeChat AppSecret"),
    )
    description_columns = {
        "rate": _l("A fraction of the amount: 0.006 = 0.6 percent."),
        "identifier": _l("E.g. the WeChat appid or the partner's name."),
        "qr_prefix": _l("A gun's QR code says this prefix followed by the 16-digit gun code, e.g. "
                        "https://example.com/q?c= (ASCII, no spaces)."),
        "app_secret": _l("Mini program channels: the AppSecret for WeChat login. Never shown again; "
                         "leave empty to keep the stored one."),
    }
    add_form_extra_fields = edit_form_extra_fields = {
        "rate": DecimalField(
            _l("Channel rate"), places=6, default=0, validators=[Optional(), Range(0, 1, _l("Channel rate"))]
        ),
        # write-only (app/services/wechat_login.py): never prefilled, empty keeps the stored value
        "app_secret": StringField(_l("WeChat AppSecret"), validators=[Optional(), _AppSecret()],
                                  widget=PasswordInput(hide_value=True)),
    }

    def prefill_form(self, form, pk):
        form.app_secret.data = ""

    def process_form(self, form, is_created):
        g.cpms_channel_app_secret = form.app_secret.data
        del form.app_secret            # populate_obj must not write the raw input

    def pre_add(self, item):
        wechat_login.apply_app_secret(item, g.pop("cpms_channel_app_secret", None))
        masterdata.prepare_channel(item)
        super().pre_add(item)

    def pre_update(self, item):
        wechat_login.apply_app_secret(item, g.pop("cpms_channel_app_secret", None))
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
class PaymentGatewayView(GatewayCredentialsMixin, CpmsModelView):
    """Global catalogue: tenants read it, platform admins maintain it. WeChat Pay credentials: write-only
    (GatewayCredentialsMixin, app/views/payments.py)."""

    datamodel = ScopedSQLAInterface(PaymentGateway)
    list_title = _l("Payment gateways")
    show_title = add_title = edit_title = _l("Payment gateway")
    choice_columns = {"gateway_type": GATEWAY_TYPE}
    list_columns = ["code", "gateway_type", "name", "display_name", "sort", "enabled", "remark"]
    search_columns = ["gateway_type", "name", "display_name", "enabled"]
    order_columns = ["code", "sort", "name"]
    base_order = ("sort", "asc")
    add_columns = edit_columns = ["code", "gateway_type", "name", "display_name", "sort", "enabled", "remark",
                                  *GatewayCredentialsMixin.credential_columns[:4], "api_v3_key", "private_key",
                                  "platform_public_key", "api_base_url"]
    add_form_extra_fields = edit_form_extra_fields = dict(GatewayCredentialsMixin.credential_fields)
    description_columns = dict(GatewayCredentialsMixin.credential_descriptions)
    formatters_columns = dict(GatewayCredentialsMixin.credential_formatters)
    show_columns = [
        "code",
        "gateway_type",
        "name",
        "display_name",
        "sort",
        "enabled",
        "remark",
        *GatewayCredentialsMixin.credential_show_columns,
        "created_at",
        "updated_at",
    ]
    label_columns = labels(
        code=_l("Gateway no."),
        gateway_type=_l("Gateway type"),
        name=_l("Gateway name"),
        display_name=_l("Display name"),
        **GatewayCredentialsMixin.credential_labels,
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
    # pay_mode: who pays the card's charging (empty = as its organization says; default member wallet)
    choice_columns = {"card_type": CARD_TYPE, "status": CARD_STATUS,
                      "pay_mode": CARD_PAY_MODE}
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
        "pay_mode",
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
        "pay_mode",
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
        pay_mode=_l("Paid from"),
    )
    description_columns = {
        "pay_mode": _l("The member's wallet or the organization's account; empty: as the organization says."),
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
    """组织机构 with its account: ``balance`` is the OrganizationEntry ledger's cache (shown, never edited
    here; a staff top-up or adjustment is a ledger entry with reason, who and when:
    ``organizations.top_up`` / ``organizations.adjust``), its agreed discount (折, like campaigns) and
    who pays its cards' charging by default."""

    show_template = "finance/organization_show.html"
    datamodel = ScopedSQLAInterface(Organization)
    list_title = _l("Organizations")
    show_title = add_title = edit_title = _l("Organization")
    related_views = [MemberView, CardView, OrganizationEntryView]
    choice_columns = {"pay_mode": PAY_MODE}
    list_columns = ["id", "name", "code", "company_name", "contact", "phone", "balance", "operator", "enabled"]
    search_columns = ["name", "company_name", "contact", "phone", "operator", "enabled"]
    order_columns = ["id", "name"]
    base_order = ("id", "asc")
    add_columns = edit_columns = [
        "name",
        "code",
        "company_name",
        "contact",
        "phone",
        "electricity_rate",
        "service_rate",
        "pay_mode",
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
        "balance",
        "electricity_rate",
        "service_rate",
        "pay_mode",
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
        balance=_l("Account balance (yuan)"),
        electricity_rate=_l("Electricity discount (折)"),
        service_rate=_l("Service fee discount (折)"),
        pay_mode=_l("Cards paid from"),
    )
    description_columns = {
        "electricity_rate": _l("Agreed discount in 折: 9.5 = pay 95 percent; 0 < x ≤ 10; empty or 10 = none."),
        "service_rate": _l("Agreed discount in 折: 9.5 = pay 95 percent; 0 < x ≤ 10; empty or 10 = none."),
        "pay_mode": _l("Who pays its cards' charging unless a card says otherwise."),
    }
    formatters_columns = {"id": _organization_links,
                          "electricity_rate": lambda v: "-" if v is None else campaigns.rate_to_zhe(v),
                          "service_rate": lambda v: "-" if v is None else campaigns.rate_to_zhe(v)}
    add_form_extra_fields = edit_form_extra_fields = {
        "phone": StringField(_l("Phone"), validators=[Optional(), PHONE]),
        "code": StringField(_l("Organization code"), validators=[Optional(), Length(max=32)]),
        "electricity_rate": DiscountField(_l("Electricity discount (折)")),
        "service_rate": DiscountField(_l("Service fee discount (折)")),
    }

    @expose("/account/<pk>", methods=["GET", "POST"])
    @has_access
    @permission_name("adjust")
    def account(self, pk):
        """Top-up (a bank transfer received) or manual adjustment of the organization's account (its own
        permission: operator admins); a ledger entry with reason, source, who and when."""
        org = self.datamodel.get(pk, self._base_filters)           # in the caller's data scope
        if org is None:
            abort(404)
        form = OrganizationAccountForm.refresh()
        if request.method == "GET":
            form.request_key.data = uuid.uuid4().hex                 # one booking per opened form
        elif form.validate():
            book = organizations.top_up if form.kind.data == "topup" else organizations.adjust
            try:
                book(org.id, form.amount.data, form.reason.data, g.user.id,
                     form.request_key.data or uuid.uuid4().hex, source=form.source.data)
            except organizations.OrganizationError as exc:
                flash(str(exc), "danger")
            else:
                flash(_("The account of %(name)s was changed by %(amount)s yuan.", name=org.name,
                        amount=f"{form.amount.data:+.2f}"), "success")
                return redirect(url_for("OrganizationView.show", pk=org.id))
        return self.render_template("finance/organization_account.html", organization=org, form=form,
                                    back_url=url_for("OrganizationView.show", pk=org.id))

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
