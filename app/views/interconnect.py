"""互联互通: partner platforms (T/CEC 102 keys, both sides) and the push/exchange log.

Secrets are masked (first 2 characters + ****) in the list, the show page and the export unless
the user holds ``can_show_secrets`` on PartnerView; the secrets page shows them in full to those
who do. In the edit form an empty secret input keeps the stored value.
"""

import json

from flask import abort, current_app, flash, g, redirect, request, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.actions import action
from flask_appbuilder.models.sqla.filters import FilterEqual
from flask_appbuilder.security.decorators import permission_name
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import URL, DataRequired, Length, Optional, Regexp, ValidationError

from app.models import Partner, PushLog
from app.models.partner import FIELD_SPELLING, MONEY_FIELD, PARTNER_TYPE, PUSH_DIRECTION, PUSH_STATUS
from app.services import partners
from app.views.base import SCOPE_FILTERS, CpmsModelView, ScopedSQLAInterface
from app.views.stations import labels

SECRET_LABELS = {
    "operator_secret": _l("Operator secret"),
    "data_secret": _l("Data secret"),
    "data_secret_iv": _l("Data secret IV"),
    "sig_secret": _l("Signature secret"),
    "our_operator_secret": _l("Our operator secret"),
    "our_data_secret": _l("Our data secret"),
    "our_data_secret_iv": _l("Our data secret IV"),
    "our_sig_secret": _l("Our signature secret"),
}


def can_see_secrets():
    return bool(current_app.appbuilder.sm.has_access("can_show_secrets", "PartnerView"))


def _secret_formatter(value):
    return value if can_see_secrets() else partners.mask(value)


class _OperatorID:
    def __call__(self, form, field):
        error = partners.operator_id_error(field.data)
        if error:
            raise ValidationError(error)


class _Secret:
    def __call__(self, form, field):
        error = partners.secret_error(field.name, (field.data or "").strip())
        if error:
            raise ValidationError(error)


class _AllowList:
    def __call__(self, form, field):
        error = partners.ip_allowlist_error(field.data)
        if error:
            raise ValidationError(error)


class SecretField(StringField):
    """Never written by populate_obj: the view applies the secrets through the service."""

    def populate_obj(self, obj, name):
        pass


def _id_with_secrets_link(pk):
    if not can_see_secrets():
        return pk
    href = url_for("PartnerView.secrets", pk=pk)
    return Markup(
        f'{escape(pk)} <a class="btn btn-xs btn-default cpms-secrets" href="{escape(href)}">'
        f'<i class="fa fa-key"></i> {escape(_l("Secrets"))}</a>'
    )


def _secret_fields(required):
    out = {}
    for name, label in SECRET_LABELS.items():
        validators = [DataRequired() if required else Optional(), _Secret()]
        out[name] = SecretField(
            label,
            validators=validators,
            description="" if required else _l("Leave empty to keep the current value."),
        )
    return out


_COMMON_FIELDS = {
    "partner_operator_code": StringField(
        _l("Partner OperatorID"), validators=[DataRequired(), _OperatorID()]
    ),
    "our_operator_code": StringField(_l("Our OperatorID"), validators=[DataRequired(), _OperatorID()]),
    "base_url": StringField(
        _l("Interface URL"),
        validators=[
            Optional(),
            URL(require_tld=False, message=_l("Enter an http(s) URL, e.g. https://host/evcs/v1.0/")),
        ],
    ),
    "ip_allowlist": TextAreaField(_l("IP allow-list"), validators=[Optional(), _AllowList()]),
    "tenant_id": StringField(_l("Tenant ID"), validators=[Optional(), Length(max=32)]),
    # dialect: left out of a post, the T/CEC standard is kept (partners.normalize)
    "field_spelling": SelectField(_l("Service field spelling"), choices=[(v, _l(t)) for v, t in FIELD_SPELLING],
                                  validators=[Optional()]),
    "money_field": SelectField(_l("Charging money field"), choices=[(v, _l(t)) for v, t in MONEY_FIELD],
                               validators=[Optional()]),
    "base_path": StringField(
        _l("Base path"),
        default="/evcs/v1.0/",
        validators=[
            Optional(),
            Length(max=64),
            Regexp(r"^/[A-Za-z0-9._/-]*$", message=_l("A path starting with /, e.g. /evcs/v1.0/")),
        ],
    ),
}


class PartnerView(CpmsModelView):
    datamodel = ScopedSQLAInterface(Partner)
    list_title = _l("Partners")
    show_title = add_title = edit_title = _l("Partner")
    choice_columns = {"partner_type": PARTNER_TYPE, "field_spelling": FIELD_SPELLING, "money_field": MONEY_FIELD}
    list_columns = [
        "id",
        "partner_operator_code",
        "name",
        "operator_secret",
        "data_secret",
        "data_secret_iv",
        "sig_secret",
        "base_url",
        "our_operator_code",
        "our_operator_secret",
        "our_data_secret",
        "our_data_secret_iv",
        "our_sig_secret",
        "channel.id",
        "channel",
        "ip_allowlist",
        "partner_type",
        "tenant_id",
        "remark",
    ]
    search_columns = ["channel", "operator", "name", "partner_operator_code", "partner_type", "enabled"]
    order_columns = ["id", "name", "partner_operator_code"]
    base_order = ("id", "asc")
    _form = [
        "name",
        "partner_type",
        "partner_operator_code",
        "operator_secret",
        "data_secret",
        "data_secret_iv",
        "sig_secret",
        "base_url",
        "our_operator_code",
        "our_operator_secret",
        "our_data_secret",
        "our_data_secret_iv",
        "our_sig_secret",
        "channel",
        "ip_allowlist",
        "tenant_id",
        "field_spelling",
        "money_field",
        "base_path",
        "status_as_array",
        "push_enabled",
        "enabled",
        "operator",
        "remark",
    ]
    add_columns = edit_columns = _form
    show_fieldsets = [
        (
            _l("Partner"),
            {
                "fields": [
                    "id",
                    "name",
                    "partner_type",
                    "channel",
                    "tenant_id",
                    "operator",
                    "enabled",
                    "push_enabled",
                    "remark",
                ]
            },
        ),
        (
            _l("Their keys"),
            {
                "fields": [
                    "partner_operator_code",
                    "operator_secret",
                    "data_secret",
                    "data_secret_iv",
                    "sig_secret",
                    "base_url",
                ]
            },
        ),
        (
            _l("Our keys"),
            {
                "fields": [
                    "our_operator_code",
                    "our_operator_secret",
                    "our_data_secret",
                    "our_data_secret_iv",
                    "our_sig_secret",
                    "ip_allowlist",
                ]
            },
        ),
        (
            _l("Dialect"),
            {"fields": ["field_spelling", "money_field", "base_path", "status_as_array"]},
        ),
    ]
    label_columns = labels(
        id=_l("Key"),
        name=_l("Operator name"),
        partner_type=_l("Interconnect type"),
        partner_operator_code=_l("Partner OperatorID"),
        base_url=_l("Interface URL"),
        our_operator_code=_l("Our OperatorID"),
        channel=_l("Channel name"),
        **{"channel.id": _l("Channel no.")},
        ip_allowlist=_l("IP allow-list"),
        tenant_id=_l("Tenant ID"),
        push_enabled=_l("Push enabled"),
        field_spelling=_l("Service field spelling"),
        money_field=_l("Charging money field"),
        base_path=_l("Base path"),
        status_as_array=_l("Station status as array"),
        **SECRET_LABELS,
    )
    description_columns = {
        "partner_operator_code": _l("9 characters, digits or capital letters."),
        "our_operator_code": _l("9 characters, digits or capital letters."),
        "data_secret": _l("Exactly 16 characters (AES-128 key)."),
        "data_secret_iv": _l("Exactly 16 characters (AES-128 IV)."),
        "our_data_secret": _l("Exactly 16 characters (AES-128 key)."),
        "our_data_secret_iv": _l("Exactly 16 characters (AES-128 IV)."),
        "ip_allowlist": _l("IP addresses or CIDR ranges, one per line or comma separated; empty = any."),
        "field_spelling": _l("SevicePrice/SeviceMoney (T/CEC standard) or ServicePrice/ServiceMoney."),
        "money_field": _l("Name of the electricity money field in charging status data."),
        "base_path": _l("Path of the partner's interfaces, e.g. /evcs/v1.0/ or /evcs/v1/."),
        "status_as_array": _l("Send ConnectorStatusInfo as an array in station status pushes."),
    }
    formatters_columns = dict({name: _secret_formatter for name in SECRET_LABELS}, id=_id_with_secrets_link)
    _interconnect_channels = {"channel": SCOPE_FILTERS + [["channel_type", FilterEqual, "interconnect"]]}
    add_form_query_rel_fields = edit_form_query_rel_fields = _interconnect_channels
    add_form_extra_fields = dict(_COMMON_FIELDS, **_secret_fields(required=True))
    edit_form_extra_fields = dict(_COMMON_FIELDS, **_secret_fields(required=False))

    def _export_value(self, item, column):
        if column == "id":
            return item.id
        if column in SECRET_LABELS:  # never in a file that leaves the system, whoever exports
            return partners.mask(getattr(item, column, None))
        return super()._export_value(item, column)

    def prefill_form(self, form, pk):
        if not can_see_secrets():
            for name in SECRET_LABELS:
                form[name].data = ""

    def process_form(self, form, is_created):
        g.cpms_partner_secrets = {name: form[name].data for name in SECRET_LABELS}

    def _apply(self, item, creating):
        submitted = getattr(g, "cpms_partner_secrets", {})
        partners.apply_secrets(item, submitted, creating=creating)
        partners.normalize(item)
        partners.validate(item)  # the rules REST runs too (the form already reported them per field)

    def pre_add(self, item):
        self._apply(item, creating=True)
        super().pre_add(item)

    def pre_update(self, item):
        self._apply(item, creating=False)
        super().pre_update(item)

    @expose("/secrets/<int:pk>")
    @has_access
    @permission_name("show_secrets")
    def secrets(self, pk):
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            abort(404)
        rows = [
            (self.label_columns.get(n, n), getattr(item, n))
            for n in [
                "partner_operator_code",
                *partners.THEIR_SECRETS,
                "our_operator_code",
                *partners.OUR_SECRETS,
            ]
        ]
        return self.render_template(
            "cpms/interconnect_secrets.html", partner=item, rows=rows, back=request.referrer
        )


def _json_block(value):
    """Decrypted request/response (personal data already masked when it was logged) as a JSON block."""
    if value in (None, "", {}):
        return ""
    return Markup('<pre class="cpms-json">{}</pre>').format(json.dumps(value, ensure_ascii=False, indent=2))


class PushLogView(CpmsModelView):
    """推送日志: every exchange with partners (both directions), no delete. 重新推送 (``resend``) queues
    the same interface and business object again for pushes we sent (a new row)."""

    datamodel = ScopedSQLAInterface(PushLog)
    list_title = _l("Push log")
    show_title = _l("Exchange")
    base_permissions = ["can_list", "can_show", "can_export", "resend"]
    formatters_columns = {"request_body": _json_block, "response_body": _json_block}

    @action("resend", _l("Resend"), _l("Send the selected pushes again?"), "fa-repeat")
    def resend(self, items):
        from app.services import interconnect_push

        items = [it for it in (items if isinstance(items, list) else [items]) if it is not None]
        sent = 0
        for item in items:
            try:
                interconnect_push.resend(item.id)
                sent += 1
            except interconnect_push.PushRefused as exc:
                self.datamodel.session.rollback()
                flash(f"{item}: {exc}", "warning")
        if sent:
            flash(_("%(n)d push(es) queued again.", n=sent), "success")
        self.update_redirect()
        return redirect(self.get_redirect())
    choice_columns = {"direction": PUSH_DIRECTION, "status": PUSH_STATUS}
    list_columns = [
        "created_at",
        "partner",
        "direction",
        "interface",
        "business_key",
        "status",
        "http_status",
        "ret",
        "msg",
        "attempts",
        "duration_ms",
        "next_retry_at",
    ]
    search_columns = ["partner", "direction", "interface", "status", "business_key", "created_at"]
    order_columns = ["created_at", "next_retry_at"]
    base_order = ("created_at", "desc")
    show_columns = [
        "created_at",
        "updated_at",
        "partner",
        "direction",
        "interface",
        "seq",
        "business_key",
        "status",
        "http_status",
        "ret",
        "msg",
        "attempts",
        "next_retry_at",
        "duration_ms",
        "request_body",
        "response_body",
    ]
    label_columns = labels(
        partner=_l("Partner"),
        direction=_l("Direction"),
        interface=_l("Interface"),
        seq=_l("Seq"),
        business_key=_l("Business key"),
        http_status=_l("HTTP status"),
        ret=_l("Ret"),
        msg=_l("Message"),
        attempts=_l("Attempts"),
        next_retry_at=_l("Next retry"),
        duration_ms=_l("Duration (ms)"),
        request_body=_l("Request data"),
        response_body=_l("Response data"),
        created_at=_l("Time"),
    )
