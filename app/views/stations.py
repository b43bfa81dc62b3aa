"""电站电桩: stations, price templates, piles, connectors, manufacturers, models, fault types,
fault reports, alarms, status log, feedback."""
from flask import abort, flash, g, redirect, request, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.security.decorators import permission_name
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DecimalField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from app.models import (
    Alarm,
    Connector,
    ConnectorStatusLog,
    FaultReport,
    FaultType,
    Feedback,
    Manufacturer,
    Pile,
    PileModel,
    PriceTemplate,
    Station,
)
from app.models.pile import (
    ALARM_STATUS,
    CONNECTOR_STATUS,
    CONNECTOR_TYPE,
    FAULT_REPORT_STATUS,
    FEEDBACK_STATUS,
    LOCK_STATUS,
    NATIONAL_STANDARD,
    PARK_STATUS,
    PILE_PROTOCOL,
    PILE_TYPE,
)
from app.models.station import (
    OCCUPANCY_UNIT,
    OWNERSHIP_TYPE,
    SITE_TYPE,
    STATION_SERVICES,
    STATION_SOURCE,
    STATION_STATUS,
    STATION_TYPE,
)
from app.services import alarms, masterdata, price_templates
from app.services.order_queries import duration_text
from app.services.price_templates import periods_to_rows, used_by_ykc_piles
from app.views.base import CpmsModelView, ScopedSQLAInterface
from app.views.fields import Digits, JSONListSelectField, PeriodsField, PhotosField, Range
from app.views.formatters import period_summary
from app.views.write_hooks import ConnectorWrite, PileWrite, StationWrite

COMMON_LABELS = {
    "code": _l("Code"), "name": _l("Name"), "operator": _l("Operator"), "station": _l("Station"),
    "pile": _l("Pile"), "connector": _l("Connector"), "status": _l("Status"), "remark": _l("Remark"),
    "enabled": _l("Enabled"), "created_at": _l("Created at"), "updated_at": _l("Updated at"),
    "sort": _l("Sort"), "phone": _l("Phone"), "contact": _l("Contact"), "address": _l("Address"),
}


def labels(**extra):
    out = dict(COMMON_LABELS)
    out.update(extra)
    return out


class StationView(StationWrite, CpmsModelView):
    show_template = "stations/station_show.html"        # + QR code sheet (PDF) and 0xF0 push (QrCodeView)
    datamodel = ScopedSQLAInterface(Station)
    list_title = _l("Stations")
    show_title = _l("Station")
    add_title = _l("Add station")
    edit_title = _l("Edit station")
    choice_columns = {"station_type": STATION_TYPE, "status": STATION_STATUS, "site_type": SITE_TYPE,
                      "ownership": OWNERSHIP_TYPE, "source": STATION_SOURCE,
                      "occupancy_unit": OCCUPANCY_UNIT}
    list_columns = ["code", "name", "station_type", "status", "site_type", "source", "ownership",
                    "operator", "price_template"]
    search_columns = ["code", "name", "station_type", "status", "site_type", "operator", "ownership"]
    order_columns = ["code", "name", "status", "created_at"]
    base_order = ("code", "asc")
    _form = ["name", "code", "station_type", "status", "site_type", "ownership", "operator",
             "province", "city", "district", "area_code", "address", "lng", "lat",
             "park_nums", "park_info", "park_fee", "site_guide", "services", "photo_uploads",
             "business_hours", "station_tel", "service_tel", "price_template",
             "occupancy_enabled", "occupancy_free_minutes", "occupancy_price", "occupancy_unit",
             "occupancy_cap", "remark"]
    add_columns = edit_columns = _form
    show_fieldsets = [
        (_l("Station info"), {"fields": ["code", "name", "station_type", "status", "site_type",
                                         "ownership", "source", "operator"]}),
        (_l("Location"), {"fields": ["province", "city", "district", "area_code", "address", "lng", "lat",
                                     "park_nums", "park_info", "park_fee", "site_guide"]}),
        (_l("Operation"), {"fields": ["services", "photos", "business_hours", "station_tel", "service_tel",
                                      "price_template", "remark"]}),
        (_l("Occupancy rule"), {"fields": ["occupancy_enabled", "occupancy_free_minutes", "occupancy_price",
                                           "occupancy_unit", "occupancy_cap"]}),
    ]
    label_columns = labels(
        code=_l("Station no."), name=_l("Station name"), station_type=_l("Station type"),
        status=_l("Station status"), site_type=_l("Construction site"), ownership=_l("Ownership type"),
        source=_l("Source"), province=_l("Province"), city=_l("City"), district=_l("District"),
        area_code=_l("Area code"), address=_l("Station address"), lng=_l("Longitude (GCJ-02)"),
        lat=_l("Latitude (GCJ-02)"), park_nums=_l("Parking spaces"),
        park_info=_l("Parking floors and counts"), park_fee=_l("Parking fee"), site_guide=_l("Site guide"),
        services=_l("Site services"), photos=_l("Photos"), photo_uploads=_l("Upload photos"),
        business_hours=_l("Business hours"), station_tel=_l("Station phone"),
        service_tel=_l("Service phone"), price_template=_l("Price template"),
        occupancy_enabled=_l("Charge occupancy fee"), occupancy_free_minutes=_l("Free minutes"),
        occupancy_price=_l("Occupancy price"), occupancy_unit=_l("Occupancy unit"),
        occupancy_cap=_l("Occupancy fee cap"),
    )
    description_columns = {"code": _l("Leave empty to generate one."),
                           "lng": _l("GCJ-02, e.g. 118.778074"), "lat": _l("GCJ-02, e.g. 32.057236")}
    add_form_extra_fields = edit_form_extra_fields = {
        "code": StringField(_l("Station no."), validators=[Optional()]),
        "lng": DecimalField(_l("Longitude (GCJ-02)"), places=6,
                            validators=[DataRequired(), Range(73, 136, _l("Longitude"))]),
        "lat": DecimalField(_l("Latitude (GCJ-02)"), places=6,
                            validators=[DataRequired(), Range(3, 54, _l("Latitude"))]),
        "services": JSONListSelectField(_l("Site services"),
                                        choices=[(v, _l(lbl)) for v, lbl in STATION_SERVICES]),
        "photo_uploads": PhotosField(_l("Upload photos")),
    }


class PriceTemplateView(CpmsModelView):
    datamodel = ScopedSQLAInterface(PriceTemplate)
    list_title = _l("Price templates")
    show_title = _l("Price template")
    add_title = _l("Add price template")
    edit_title = _l("Edit price template")
    list_columns = ["code", "name", "operator", "period_summary", "version", "enabled", "updated_at"]
    search_columns = ["code", "name", "operator", "enabled"]
    order_columns = ["code", "name", "updated_at"]
    add_columns = edit_columns = ["code", "name", "operator", "periods_editor", "enabled", "remark"]
    show_columns = ["code", "name", "operator", "period_summary", "version", "enabled", "remark",
                    "created_at", "updated_at"]
    label_columns = labels(code=_l("Template code"), name=_l("Template name"),
                           periods_editor=_l("Periods"), period_summary=_l("Periods"),
                           version=_l("Version"))
    description_columns = {"periods_editor": _l(
        "Periods must cover 00:00–24:00 with no gap or overlap. For YKC piles: at most 4 different "
        "price pairs, boundaries on the half hour.")}
    formatters_columns = {"period_summary": period_summary}

    @staticmethod
    def _ykc_check(req):
        pk = (req.view_args or {}).get("pk")
        if pk is None:
            return False
        from app.extensions import db

        tpl = db.session.get(PriceTemplate, int(pk))
        return tpl is not None and used_by_ykc_piles(db.session, tpl)

    add_form_extra_fields = {"periods_editor": PeriodsField(_l("Periods"), ykc_check=None)}
    edit_form_extra_fields = {"periods_editor": PeriodsField(_l("Periods"), ykc_check=_ykc_check)}

    def prefill_form(self, form, pk):
        form.periods_editor.data = periods_to_rows(self.datamodel.get(pk).periods)

    def process_form(self, form, is_created):
        g.cpms_period_rows = form.periods_editor.data

    def pre_add(self, item):
        super().pre_add(item)
        price_templates.save_template(self.datamodel.session, item, g.cpms_period_rows, creating=True)

    def pre_update(self, item):
        super().pre_update(item)
        g.cpms_periods_replaced = price_templates.save_template(self.datamodel.session, item,
                                                                g.cpms_period_rows)

    def post_update(self, item):
        price_templates.template_saved(item, g.pop("cpms_periods_replaced", False))


class PileView(PileWrite, CpmsModelView):
    datamodel = ScopedSQLAInterface(Pile)
    show_template = "stations/pile_show.html"
    list_title = _l("Piles")
    show_title = _l("Pile")
    add_title = _l("Add pile")
    edit_title = _l("Edit pile")
    choice_columns = {"pile_type": PILE_TYPE, "protocol": PILE_PROTOCOL}
    list_columns = ["code", "station", "name", "model", "manufacturer", "commissioning_date", "pile_type",
                    "online", "last_heartbeat_at"]
    search_columns = ["code", "name", "station", "pile_type", "online", "manufacturer", "enabled"]
    order_columns = ["code", "name", "commissioning_date", "last_heartbeat_at"]
    base_order = ("code", "asc")
    add_columns = edit_columns = ["station", "code", "name", "model", "pile_type", "protocol", "power_kw",
                                  "gun_count", "production_date", "commissioning_date", "lng", "lat",
                                  "enabled", "remark"]
    show_fieldsets = [
        (_l("Pile info"), {"fields": ["code", "name", "station", "operator", "model", "manufacturer",
                                      "pile_type", "protocol", "power_kw", "gun_count", "production_date",
                                      "commissioning_date", "enabled", "remark"]}),
        (_l("Live state"), {"fields": ["online", "last_login_at", "last_heartbeat_at", "last_offline_at",
                                       "protocol_version", "firmware", "iccid", "carrier", "network_type",
                                       "billing_model_id", "billing_model_synced_at"]}),
    ]
    label_columns = labels(
        code=_l("Pile code"), name=_l("Pile name"), model=_l("Pile model"), manufacturer=_l("Manufacturer"),
        pile_type=_l("Pile type"), protocol=_l("Protocol"), power_kw=_l("Power (kW)"),
        gun_count=_l("Gun count"), production_date=_l("Production date"),
        commissioning_date=_l("Commissioning date"), lng=_l("Longitude (GCJ-02)"),
        lat=_l("Latitude (GCJ-02)"), online=_l("Online"), last_login_at=_l("Last login"),
        last_heartbeat_at=_l("Last heartbeat"), last_offline_at=_l("Last offline"),
        protocol_version=_l("Protocol version"), firmware=_l("Firmware"), iccid=_l("SIM ICCID"),
        carrier=_l("Carrier"), network_type=_l("Network"), billing_model_id=_l("Billing model id"),
        billing_model_synced_at=_l("Billing model synced"),
    )
    description_columns = {"code": _l("14 digits. Leave empty to generate one.")}
    add_form_extra_fields = edit_form_extra_fields = {
        "code": StringField(_l("Pile code"), validators=[Optional(), Digits(14)]),
    }


class StartChargeForm(FlaskForm):
    member_no = StringField(_l("Member no."), validators=[DataRequired()])
    prepaid_amount = DecimalField(_l("Prepaid amount (yuan)"), places=2, validators=[Optional()],
                                  description=_l("Leave empty to charge against the whole wallet balance."))


class ConnectorView(ConnectorWrite, CpmsModelView):
    datamodel = ScopedSQLAInterface(Connector)
    show_template = "stations/connector_show.html"
    list_title = _l("Connectors")
    show_title = _l("Connector")
    add_title = _l("Add connector")
    edit_title = _l("Edit connector")
    choice_columns = {"status": CONNECTOR_STATUS, "interface_type": CONNECTOR_TYPE,
                      "national_standard": NATIONAL_STANDARD, "park_status": PARK_STATUS,
                      "lock_status": LOCK_STATUS}
    list_columns = ["pile.code", "gun_no", "code", "name", "park_no", "interface_type", "national_standard",
                    "status", "operator", "lock_enabled"]
    search_columns = ["code", "name", "station", "pile", "status", "interface_type", "park_no"]
    order_columns = ["code", "gun_no", "status"]
    base_order = ("code", "asc")
    add_columns = ["pile", "gun_no", "name", "interface_type", "national_standard", "voltage_upper",
                   "voltage_lower", "current", "power_kw", "park_no", "lock_enabled", "lock_no", "enabled"]
    edit_columns = ["name", "interface_type", "national_standard", "voltage_upper", "voltage_lower",
                    "current", "power_kw", "park_no", "lock_enabled", "lock_no", "enabled"]
    show_columns = ["code", "gun_no", "name", "pile", "station", "operator", "status", "status_changed_at",
                    "interface_type", "national_standard", "voltage_upper", "voltage_lower", "current",
                    "power_kw", "park_no", "park_status", "lock_enabled", "lock_no", "lock_status",
                    "qr_code", "enabled"]
    label_columns = labels(
        **{"pile.code": _l("Pile code")}, gun_no=_l("Gun no."), code=_l("Connector code"),
        name=_l("Connector name"), park_no=_l("Parking no."), interface_type=_l("Interface type"),
        national_standard=_l("National standard"), status=_l("Status"), lock_enabled=_l("Ground lock bound"),
        lock_no=_l("Ground lock no."), lock_status=_l("Ground lock state"), park_status=_l("Parking state"),
        voltage_upper=_l("Max voltage (V)"), voltage_lower=_l("Min voltage (V)"), current=_l("Current (A)"),
        power_kw=_l("Power (kW)"), status_changed_at=_l("Status changed"), qr_code=_l("QR code"),
    )

    @expose("/start/<int:pk>", methods=["GET", "POST"])
    @has_access
    @permission_name("start")
    def start(self, pk):
        """Staff start a session for a member on this gun (charging.start_charge, origin 'staff')."""
        from app.services import charging

        connector = self.datamodel.get(pk)
        if connector is None:
            abort(404)
        form = StartChargeForm()
        if form.validate_on_submit():
            member = masterdata.member_by_no(connector.operator_id, form.member_no.data)
            if member is None:
                form.member_no.errors.append(_("No member with this number at this operator."))
            else:
                try:
                    order = charging.start_charge(connector.id, origin="staff", member_id=member.id,
                                                  prepaid_amount=form.prepaid_amount.data, user_id=g.user.id)
                except charging.ChargingError as exc:
                    flash(str(exc), "danger")
                    return redirect(url_for("ConnectorView.show", pk=pk))
                flash(_("Order %(no)s is starting.", no=order.order_no), "success")
                return redirect(url_for("RealtimeOrderView.list"))
        status_label = dict(CONNECTOR_STATUS).get(connector.status, connector.status)
        return self.render_template("stations/start_charge.html", connector=connector, form=form,
                                    status_label=_(status_label))


class ManufacturerView(CpmsModelView):
    datamodel = ScopedSQLAInterface(Manufacturer)
    list_title = _l("Manufacturers")
    show_title = add_title = edit_title = _l("Manufacturer")
    list_columns = ["id", "code", "name", "address", "contact", "phone"]
    add_columns = edit_columns = show_columns = ["code", "name", "address", "contact", "phone", "remark"]
    search_columns = ["code", "name", "address", "contact", "phone"]
    order_columns = ["id", "code", "name"]
    label_columns = labels(id=_l("Manufacturer no."), code=_l("Manufacturer code"),
                           name=_l("Manufacturer name"))


class PileModelView(CpmsModelView):
    datamodel = ScopedSQLAInterface(PileModel)
    list_title = _l("Pile models")
    show_title = add_title = edit_title = _l("Pile model")
    choice_columns = {"pile_type": PILE_TYPE}
    list_columns = ["id", "manufacturer.id", "code", "manufacturer.code", "manufacturer", "pile_type",
                    "power_kw", "gun_count"]
    add_columns = edit_columns = show_columns = ["manufacturer", "code", "name", "pile_type", "power_kw",
                                                 "gun_count", "supports_qr_prefix", "remark"]
    search_columns = ["manufacturer", "code", "pile_type"]
    order_columns = ["id", "code", "power_kw"]
    label_columns = labels(**{"manufacturer.id": _l("Manufacturer no."),
                              "manufacturer.code": _l("Manufacturer code")},
                           id=_l("Model id"), code=_l("Model"), manufacturer=_l("Manufacturer name"),
                           supports_qr_prefix=_l("Takes the QR code prefix"),
                           pile_type=_l("Pile type"), power_kw=_l("Power (kW)"), gun_count=_l("Gun count"))


class FaultTypeView(CpmsModelView):
    datamodel = ScopedSQLAInterface(FaultType)
    list_title = _l("Fault types")
    show_title = add_title = edit_title = _l("Fault type")
    list_columns = ["id", "name", "sort", "remark"]
    add_columns = edit_columns = show_columns = ["name", "sort", "enabled", "remark"]
    search_columns = ["name", "sort"]
    order_columns = ["id", "name", "sort"]
    base_order = ("sort", "asc")
    label_columns = labels(id=_l("No."), name=_l("Fault name"))


class _MemberNoFilter(BaseFilter):
    """上报人编号 / member no.: ``member_id IN (SELECT id FROM ev_member WHERE member_no = ...)``."""

    name = _l("Equal to")
    arg_name = "mno"

    def apply(self, query, value):
        from sqlalchemy import select

        from app.models import Member

        value = (value or "").strip()
        if not value:
            return query
        return query.filter(self.model.member_id.in_(select(Member.id).where(Member.member_no == value)))


class _MemberNoSearch:
    """A text search field ``member_no`` (not a model column) next to the model's own search columns."""

    def __init__(self, *args, **kwargs):
        extra = dict(getattr(self, "search_form_extra_fields", None) or {})
        extra.setdefault("member_no", StringField(_l("Member no.")))
        self.search_form_extra_fields = extra
        self.label_columns = dict(self.label_columns or {}, member_no=_l("Member no."))
        super().__init__(*args, **kwargs)

    def _init_properties(self):
        columns = [c for c in (self.search_columns or []) if c != "member_no"]
        self.search_columns = columns
        super()._init_properties()
        self.search_columns = columns + ["member_no"]
        flts = [_MemberNoFilter("member_no", self.datamodel)]
        self._filters._search_filters["member_no"] = flts
        self._filters._all_filters["member_no"] = flts


def photo_thumbnails(names):
    """Uploaded photos as thumbnails linking to the full image (served by UploadsView, scope-checked)."""
    from markupsafe import Markup, escape

    if not names:
        return "-"
    links = "".join(
        f'<a href="{escape(url_for("UploadsView.serve", filename=n))}" target="_blank" rel="noopener">'
        f'<img src="{escape(url_for("UploadsView.serve", filename=n))}" alt="" class="cpms-photo" '
        f'style="max-height:90px;margin:0 6px 6px 0"></a>'
        for n in names
    )
    return Markup(f'<div class="cpms-photos">{links}</div>')


class FaultReplyForm(FlaskForm):
    status = SelectField(_l("Handling status"),
                         choices=[(v, _l(label)) for v, label in FAULT_REPORT_STATUS if v != "pending"])
    reply = TextAreaField(_l("Reply"), validators=[DataRequired(), Length(max=2000)])


class FeedbackReplyForm(FlaskForm):
    status = SelectField(_l("Handling status"),
                         choices=[(v, _l(label)) for v, label in FEEDBACK_STATUS if v != "new"])
    reply = TextAreaField(_l("Reply"), validators=[DataRequired(), Length(max=2000)])


class _ReplyMixin:
    """处理: a reply action (its own permission ``can_reply``, operator admins) recording the status,
    the reply, who and when through app/services/member_requests.py; the member reads it in the API."""

    reply_form = None
    reply_service = None

    def _reply(self, pk):
        from app.services import member_requests

        model = self.datamodel.obj
        row = member_requests._in_scope(model, pk)
        if row is None:
            abort(404)
        form = self.reply_form(obj=row) if request.method == "GET" else self.reply_form()
        if form.validate_on_submit():
            try:
                getattr(member_requests, self.reply_service)(pk, g.user, form.status.data, form.reply.data)
            except member_requests.RequestError as exc:
                flash(str(exc.message), "danger")
            else:
                flash(_("Reply saved."), "success")
                return redirect(url_for(f"{type(self).__name__}.show", pk=pk))
        return self.render_template("stations/request_reply.html", row=row, form=form,
                                    back=url_for(f"{type(self).__name__}.show", pk=pk), title=self.reply_title)


class FaultReportView(_MemberNoSearch, _ReplyMixin, CpmsModelView):
    """故障上报 (manual §2.3.7): what members report from the app; filters 故障名称, 上报人编号, 站点名称,
    运营商, 处理状态; export. Handled by the reply action (no edit, no delete: history)."""

    datamodel = ScopedSQLAInterface(FaultReport)
    list_title = _l("Fault reports")
    show_title = _l("Fault report")
    show_template = "stations/request_show.html"
    exclude_route_methods = {"add", "edit"}
    choice_columns = {"status": FAULT_REPORT_STATUS}
    base_permissions = ["can_list", "can_show", "can_export", "can_reply"]
    list_columns = ["fault_type", "member.member_no", "station", "connector.code", "status", "reply", "operator",
                    "created_at"]
    search_columns = ["fault_type", "member_no", "station", "operator", "status", "created_at"]
    order_columns = ["created_at", "status"]
    base_order = ("created_at", "desc")
    show_columns = ["fault_type", "member", "member.member_no", "station", "pile", "connector", "description",
                    "photos", "contact_phone", "status", "reply", "handled_by", "handled_at", "operator",
                    "created_at"]
    formatters_columns = {"photos": photo_thumbnails}
    label_columns = labels(fault_type=_l("Fault name"), member=_l("Reporter"),
                           **{"member.member_no": _l("Reporter no."), "connector.code": _l("Connector code")},
                           description=_l("Description"), photos=_l("Photos"), contact_phone=_l("Contact phone"),
                           status=_l("Handling status"), reply=_l("Reply"), handled_by=_l("Handled by"),
                           handled_at=_l("Handled at"), created_at=_l("Reported at"))
    reply_form = FaultReplyForm
    reply_service = "reply_fault_report"
    reply_title = _l("Handle fault report")

    @expose("/reply/<int:pk>", methods=["GET", "POST"])
    @has_access
    @permission_name("reply")
    def reply(self, pk):
        return self._reply(pk)


class AlarmOpen(BaseFilter):
    """告警 still active (the pile has not reported it cleared); the typed value is ignored."""

    name = _l("Open (not ended)")
    arg_name = "open"

    def apply(self, query, value):
        return query.filter(Alarm.ended_at.is_(None))


class AlarmClosed(AlarmOpen):
    name = _l("Closed (ended)")
    arg_name = "closed"

    def apply(self, query, value):
        return query.filter(Alarm.ended_at.isnot(None))


class AlarmAckForm(FlaskForm):
    handle_status = SelectField(_l("Handling status"), choices=[(v, _l(label)) for v, label in ALARM_STATUS
                                                                 if v in alarms.ACK_STATUSES])
    note = TextAreaField(_l("Note"), validators=[DataRequired(), Length(max=255)])


def _duration(value):
    return "" if value is None else duration_text(value)


class AlarmView(CpmsModelView):
    """告警: open and closed alarms with the fault code's meaning and duration; acknowledged once
    with a note (app/services/alarms.py). History: no edit, no delete."""

    datamodel = ScopedSQLAInterface(Alarm)
    list_template = "stations/alarm_list.html"
    exclude_route_methods = {"add", "edit"}          # written by the gateway; staff only acknowledge
    show_template = "stations/alarm_show.html"
    list_title = _l("Alarms")
    show_title = _l("Alarm")
    choice_columns = {"handle_status": ALARM_STATUS}
    base_permissions = ["can_list", "can_show", "can_export", "can_ack"]
    list_columns = ["connector.code", "pile_code", "gun_no", "station", "fault_code", "fault_meaning",
                    "started_at", "ended_at", "duration_seconds", "handle_status", "ack_note", "created_at"]
    # the pile by its code (a dropdown of every pile would be too long); station as a dropdown
    search_columns = ["station", "pile_code", "handle_status", "fault_code", "started_at", "ended_at"]
    order_columns = ["started_at", "ended_at", "created_at"]
    base_order = ("started_at", "desc")
    show_columns = ["station", "pile", "connector", "pile_code", "gun_no", "fault_code", "fault_meaning",
                    "started_at", "ended_at", "duration_seconds", "handle_status",
                    "acknowledged_by_name", "acknowledged_at", "ack_note", "remark", "created_at"]
    formatters_columns = {"duration_seconds": _duration}
    label_columns = labels(**{"connector.code": _l("Connector code")}, pile_code=_l("Pile code"),
                           gun_no=_l("Gun no."), fault_code=_l("Fault code"), fault_meaning=_l("Fault description"),
                           started_at=_l("Start time"),
                           ended_at=_l("End time"), duration_seconds=_l("Duration"),
                           handle_status=_l("Handling status"), acknowledged_by_name=_l("Acknowledged by"),
                           acknowledged_at=_l("Acknowledged at"), ack_note=_l("Acknowledgement note"))

    def _init_properties(self):
        from app.views.orders import LocalFrom, LocalTo  # (orders imports this module)

        super()._init_properties()
        # ended_at: 0 open, 1 closed; started_at: 0 from, 1 to (local time)
        for name, classes in (("ended_at", (AlarmOpen, AlarmClosed)), ("started_at", (LocalFrom, LocalTo))):
            flts = [cls(name, self.datamodel) for cls in classes]
            self._filters._search_filters[name] = flts
            self._filters._all_filters[name] = flts

    @expose("/ack/<int:pk>", methods=["GET", "POST"])
    @has_access
    @permission_name("ack")
    def ack(self, pk):
        """Acknowledge the alarm once: who, when, a note (alarms.acknowledge)."""
        alarm = alarms.get_in_scope(pk)
        if alarm is None:
            abort(404)
        form = AlarmAckForm()
        if alarm.acknowledged_at is None and form.validate_on_submit():
            try:
                alarms.acknowledge(pk, g.user, form.note.data, form.handle_status.data)
            except alarms.AlarmError as exc:
                flash(str(exc), "danger")
            else:
                flash(_("Alarm acknowledged."), "success")
                return redirect(url_for("AlarmView.show", pk=pk))
        return self.render_template("stations/alarm_ack.html", alarm=alarm, form=form)


class StatusLogView(CpmsModelView):
    datamodel = ScopedSQLAInterface(ConnectorStatusLog)
    list_title = _l("Status log")
    show_title = _l("Status change")
    choice_columns = {"status": CONNECTOR_STATUS, "previous_status": CONNECTOR_STATUS}
    base_permissions = ["can_list", "can_show", "can_export"]
    list_columns = ["connector.code", "connector", "previous_status", "status", "reason", "at"]
    search_columns = ["connector", "status", "at"]
    order_columns = ["at"]
    base_order = ("at", "desc")
    show_columns = list_columns
    label_columns = labels(**{"connector.code": _l("Connector code")}, previous_status=_l("Previous status"),
                           reason=_l("Reason"), at=_l("Time"))


class FeedbackView(_ReplyMixin, CpmsModelView):
    """意见反馈 (manual §2.3.11): 反馈人手机号, 反馈人姓名, 反馈内容, 反馈时间; filters phone and name;
    answered by the reply action (status, reply, who, when); no edit, no delete (history)."""

    datamodel = ScopedSQLAInterface(Feedback)
    list_title = _l("Feedback")
    show_title = _l("Feedback")
    show_template = "stations/request_show.html"
    exclude_route_methods = {"add", "edit"}
    choice_columns = {"status": FEEDBACK_STATUS}
    base_permissions = ["can_list", "can_show", "can_export", "can_reply"]
    list_columns = ["phone", "name", "content", "status", "reply", "created_at"]
    search_columns = ["phone", "name", "status", "created_at"]
    order_columns = ["created_at", "status"]
    base_order = ("created_at", "desc")
    show_columns = ["phone", "name", "member", "content", "photos", "status", "reply", "replied_by", "replied_at",
                    "operator", "created_at"]
    formatters_columns = {"photos": photo_thumbnails}
    label_columns = labels(phone=_l("Feedback phone"), name=_l("Feedback name"), content=_l("Feedback content"),
                           reply=_l("Reply"), status=_l("Handling status"), replied_by=_l("Handled by"),
                           replied_at=_l("Handled at"), created_at=_l("Feedback time"), member=_l("Member"),
                           photos=_l("Photos"))
    reply_form = FeedbackReplyForm
    reply_service = "reply_feedback"
    reply_title = _l("Reply to feedback")

    @expose("/reply/<int:pk>", methods=["GET", "POST"])
    @has_access
    @permission_name("reply")
    def reply(self, pk):
        return self._reply(pk)


def flash_errors(messages):
    for m in messages:
        flash(str(m), "danger")
