"""营销活动: operation campaigns, interconnect campaigns, coupons (卡券列表) and coupon campaigns.

Discounts are typed as 折 (9.5 = 95 %) and stored as rates (0.95); the rules are in
app.services.campaigns.
"""

from datetime import datetime
from decimal import Decimal

from flask import flash, g, redirect, request
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.actions import action
from flask_appbuilder.fieldwidgets import DateTimePickerWidget
from flask_appbuilder.models.sqla.filters import FilterEqual
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import DateTimeField, DecimalField, Field, IntegerField, StringField
from wtforms.utils import unset_value
from wtforms.validators import DataRequired, Length, NumberRange, Optional, StopValidation, ValidationError

from app.models import Campaign, CampaignPeriod, Coupon, CouponCampaign, CouponCampaignItem, CouponTemplate
from app.models.marketing import (
    CAMPAIGN_DISCOUNT_MODE,
    CAMPAIGN_KIND,
    CAMPAIGN_POSITION,
    COUPON_CAMPAIGN_SCOPE,
    COUPON_CAMPAIGN_TRIGGER,
    COUPON_SOURCE,
    COUPON_STATUS,
    COUPON_TARGET,
    COUPON_TYPE,
    COUPON_VALIDITY,
)
from app.services import campaigns, clock
from app.services.campaigns import CampaignError
from app.views.base import SCOPE_FILTERS, CpmsModelView, ScopedSQLAInterface
from app.views.campaign_fields import CampaignPeriodsField
from app.views.fields import PhotosField
from app.views.stations import labels, photo_thumbnails


class DiscountField(DecimalField):
    """A rate column edited as 折: shows ``rate × 10``, stores ``折 / 10`` (service rules)."""

    def __init__(self, label=None, validators=None, empty=None, **kwargs):
        super().__init__(label, validators if validators is not None else [Optional()], places=None, **kwargs)
        self.empty = empty  # what an empty input stores (campaign rates: 1, no discount; NOT NULL columns)

    def process_data(self, value):
        self.data = campaigns.rate_to_zhe(value)

    def pre_validate(self, form):
        if self.data is not None:
            try:
                campaigns.zhe_to_rate(self.data)
            except CampaignError as exc:
                raise ValidationError(str(exc)) from None

    def populate_obj(self, obj, name):
        setattr(obj, name, campaigns.zhe_to_rate(self.data) if self.data is not None else self.empty)


class AfterStart:
    """The end time must be after ``start_field``."""

    def __init__(self, start_field="start_at"):
        self.start_field = start_field

    def __call__(self, form, field):
        try:
            campaigns.check_window(form[self.start_field].data, field.data)
        except CampaignError as exc:
            raise ValidationError(str(exc)) from None


class LocalDateTimeField(DateTimeField):
    """Typed and shown in local time (TIMEZONE); stored as naive UTC like every DateTime column."""

    def process_data(self, value):
        if isinstance(value, datetime):
            value = clock.to_local(value).replace(tzinfo=None)
        super().process_data(value)

    def populate_obj(self, obj, name):
        value = self.data
        if isinstance(value, datetime):
            value = clock.local_to_utc(value)
        setattr(obj, name, value)


def _dt(label, *validators):
    return LocalDateTimeField(
        label,
        format="%Y-%m-%d %H:%M:%S",
        widget=DateTimePickerWidget(),
        validators=list(validators) or [DataRequired()],
    )


CAMPAIGN_LABELS = labels(
    id=_l("Campaign no."),
    name=_l("Campaign name"),
    tag=_l("Campaign tag"),
    position=_l("Campaign position"),
    all_stations=_l("All stations"),
    stations=_l("Stations"),
    start_at=_l("Start time"),
    end_at=_l("End time"),
    discount_mode=_l("Benefit"),
    electricity_rate=_l("Electricity discount (折)"),
    service_rate=_l("Service fee discount (折)"),
    description=_l("Campaign description"),
    priority=_l("Priority"),
    channel=_l("Partner channel"),
    periods=_l("Time-of-day periods"),
    periods_editor=_l("Time-of-day periods"),
    channels=_l("Channels"),
)


class TipImagesField(PhotosField):
    """赠券提示: images shown to the member with the coupons (appended to ``gift_tip_images``)."""

    def populate_obj(self, obj, name):
        photos = _Photos(list(getattr(obj, "gift_tip_images", None) or []))
        super().populate_obj(photos, name)
        obj.gift_tip_images = photos.photos


class _Photos:
    def __init__(self, photos):
        self.photos = photos




class CampaignView(CpmsModelView):
    datamodel = ScopedSQLAInterface(Campaign)
    kind = "operation"
    list_title = _l("Operation campaigns")
    show_title = add_title = edit_title = _l("Operation campaign")
    base_filters = [["kind", FilterEqual, "operation"]]
    choice_columns = {"position": CAMPAIGN_POSITION, "discount_mode": CAMPAIGN_DISCOUNT_MODE}
    list_columns = [
        "id",
        "name",
        "start_at",
        "end_at",
        "electricity_rate",
        "service_rate",
        "description",
        "enabled",
        "remark",
    ]
    search_columns = ["name", "start_at", "end_at", "enabled", "operator"]
    order_columns = ["id", "start_at", "end_at"]
    base_order = ("start_at", "desc")
    add_columns = edit_columns = [
        "name",
        "tag",
        "position",
        "all_stations",
        "stations",
        "channels",
        "start_at",
        "end_at",
        "discount_mode",
        "electricity_rate",
        "service_rate",
        "periods_editor",
        "description",
        "tip_uploads",
        "priority",
        "enabled",
        "operator",
        "remark",
    ]
    show_columns = [
        "id",
        "name",
        "tag",
        "position",
        "all_stations",
        "stations",
        "channels",
        "start_at",
        "end_at",
        "discount_mode",
        "electricity_rate",
        "service_rate",
        "periods",
        "description",
        "gift_tip_images",
        "priority",
        "enabled",
        "operator",
        "remark",
        "created_at",
    ]
    label_columns = {**CAMPAIGN_LABELS, "gift_tip_images": _l("Gift tip images"),
                     "tip_uploads": _l("Upload gift tip images")}
    description_columns = {
        "electricity_rate": _l("In 折: 9.5 = pay 95 percent; 0 < x ≤ 10; empty or 10 = no discount."),
        "service_rate": _l("In 折: 9.5 = pay 95 percent; 0 < x ≤ 10; empty or 10 = no discount."),
        "stations": _l('Used when "All stations" is not ticked.'),
        "channels": _l("The order channels the campaign applies to; none chosen = every channel."),
        "periods_editor": _l("Time-of-day discount: local times every day, discounts in 折; a fee period split "
                             "across windows is discounted pro rata by time; no window = no discount."),
    }
    formatters_columns = {
        "electricity_rate": lambda v: campaigns.rate_to_zhe(v),
        "service_rate": lambda v: campaigns.rate_to_zhe(v),
        "gift_tip_images": photo_thumbnails,
    }
    add_form_query_rel_fields = edit_form_query_rel_fields = {"channels": SCOPE_FILTERS}
    add_form_extra_fields = edit_form_extra_fields = {
        "electricity_rate": DiscountField(_l("Electricity discount (折)"), empty=Decimal("1.0000")),
        "service_rate": DiscountField(_l("Service fee discount (折)"), empty=Decimal("1.0000")),
        "start_at": _dt(_l("Start time")),
        "end_at": _dt(_l("End time"), DataRequired(), AfterStart()),
        "name": StringField(_l("Campaign name"), validators=[DataRequired(), Length(max=64)]),
        "periods_editor": CampaignPeriodsField(_l("Time-of-day periods")),
        "tip_uploads": TipImagesField(_l("Upload gift tip images")),
    }

    def prefill_form(self, form, pk):
        if "periods_editor" in form:
            form.periods_editor.data = campaigns.periods_to_rows(self.datamodel.get(pk).periods)

    def process_form(self, form, is_created):
        g.cpms_campaign_periods = getattr(form["periods_editor"], "parsed", None) if "periods_editor" in form \
            else None

    def _prepare(self, item):
        item.kind = self.kind
        item.electricity_rate = item.electricity_rate if item.electricity_rate is not None else 1
        item.service_rate = item.service_rate if item.service_rate is not None else 1
        if item.all_stations:
            item.stations = []
        if item.kind == "interconnect":
            item.channels = []
        parsed = g.pop("cpms_campaign_periods", None)
        if parsed is not None:
            item.periods = [CampaignPeriod(start_minute=s, end_minute=e, electricity_rate=er, service_rate=sr)
                            for s, e, er, sr in parsed]

    def pre_add(self, item):
        self._prepare(item)
        super().pre_add(item)

    def pre_update(self, item):
        self._prepare(item)
        super().pre_update(item)


class InterconnectCampaignView(CampaignView):
    kind = "interconnect"
    list_title = _l("Interconnect campaigns")
    show_title = add_title = edit_title = _l("Interconnect campaign")
    base_filters = [["kind", FilterEqual, "interconnect"]]
    list_columns = [
        "id",
        "name",
        "channel",
        "start_at",
        "end_at",
        "electricity_rate",
        "service_rate",
        "description",
        "enabled",
    ]
    search_columns = ["name", "channel", "start_at", "end_at", "enabled", "operator"]
    add_columns = edit_columns = ["channel"] + [c for c in CampaignView.add_columns if c != "channels"]
    show_columns = ["channel"] + [c for c in CampaignView.show_columns if c != "channels"]
    _interconnect_channels = {"channel": SCOPE_FILTERS + [["channel_type", FilterEqual, "interconnect"]]}
    add_form_query_rel_fields = edit_form_query_rel_fields = _interconnect_channels
    search_form_query_rel_fields = _interconnect_channels
    add_form_extra_fields = edit_form_extra_fields = dict(CampaignView.add_form_extra_fields)

    def _prepare(self, item):
        if item.channel is None:
            raise CampaignError(_l("Choose the partner channel of the campaign."))
        super()._prepare(item)


# ----- 卡券列表 --------------------------------------------------------------------------------
class _CouponRule:
    def __init__(self, field):
        self.field = field

    def __call__(self, form, field):
        d = {
            k: form[k].data
            for k in (
                "coupon_type",
                "face_value",
                "threshold",
                "validity_mode",
                "valid_from",
                "valid_to",
                "valid_days",
            )
        }
        d["discount_rate"] = form["discount_rate"].data
        errors = campaigns.check_coupon_template(**d)
        if self.field in errors:
            field.errors[:] = []  # e.g. "not a valid datetime" of an empty input: say what is missing
            raise StopValidation(errors[self.field])


class CouponTemplateView(CpmsModelView):
    datamodel = ScopedSQLAInterface(CouponTemplate)
    list_title = _l("Coupons")
    show_title = add_title = edit_title = _l("Coupon")
    choice_columns = {"coupon_type": COUPON_TYPE, "target": COUPON_TARGET, "validity_mode": COUPON_VALIDITY}
    list_columns = ["id", "name", "coupon_type", "target", "valid_from", "description", "operator", "enabled"]
    search_columns = ["name", "coupon_type", "target", "valid_from", "operator", "enabled"]
    order_columns = ["id", "valid_from", "created_at"]
    base_order = ("created_at", "desc")
    add_columns = edit_columns = [
        "name",
        "coupon_type",
        "target",
        "description",
        "discount_rate",
        "threshold",
        "face_value",
        "max_discount",
        "validity_mode",
        "valid_from",
        "valid_to",
        "valid_days",
        "all_stations",
        "stations",
        "total_quantity",
        "per_member_limit",
        "enabled",
        "operator",
    ]
    show_columns = [
        "id",
        "name",
        "coupon_type",
        "target",
        "description",
        "discount_rate",
        "threshold",
        "face_value",
        "max_discount",
        "validity_mode",
        "valid_from",
        "valid_to",
        "valid_days",
        "all_stations",
        "stations",
        "total_quantity",
        "issued_quantity",
        "per_member_limit",
        "enabled",
        "operator",
        "created_at",
    ]
    label_columns = labels(
        id=_l("Coupon no."),
        name=_l("Coupon name"),
        coupon_type=_l("Coupon type"),
        target=_l("Discount on"),
        description=_l("Coupon description"),
        discount_rate=_l("Discount (折)"),
        threshold=_l("Spending threshold (yuan)"),
        face_value=_l("Face value (yuan)"),
        max_discount=_l("Maximum discount (yuan)"),
        validity_mode=_l("Validity"),
        valid_from=_l("Start time"),
        valid_to=_l("End time"),
        valid_days=_l("Valid days"),
        all_stations=_l("All stations"),
        stations=_l("Stations"),
        total_quantity=_l("Total quantity"),
        issued_quantity=_l("Issued"),
        per_member_limit=_l("Limit per member"),
    )
    description_columns = {
        "name": _l("At most 15 characters."),
        "discount_rate": _l("Discount coupons only, in 折: 8.5 = pay 85 percent."),
        "threshold": _l("Spend-and-save coupons: spend at least this much."),
        "face_value": _l("Spend-and-save and deduction coupons: the amount taken off."),
        "valid_days": _l('"Days after receipt" validity only.'),
        "total_quantity": _l("Empty = unlimited."),
        "per_member_limit": _l("How many of this coupon one member may hold at most; empty = unlimited."),
    }
    formatters_columns = {"discount_rate": lambda v: campaigns.rate_to_zhe(v) if v is not None else "-"}
    add_form_extra_fields = edit_form_extra_fields = {
        "name": StringField(
            _l("Coupon name"),
            validators=[
                DataRequired(),
                Length(max=campaigns.COUPON_NAME_MAX, message=_l("A coupon name has at most 15 characters.")),
            ],
        ),
        "discount_rate": DiscountField(_l("Discount (折)"), validators=[_CouponRule("discount_rate"), Optional()]),
        "face_value": DecimalField(
            _l("Face value (yuan)"), places=2, validators=[_CouponRule("face_value"), Optional()]
        ),
        "threshold": DecimalField(
            _l("Spending threshold (yuan)"), places=2, default=0, validators=[Optional(), NumberRange(min=0)]
        ),
        "max_discount": DecimalField(
            _l("Maximum discount (yuan)"), places=2, validators=[Optional(), NumberRange(min=0)]
        ),
        "valid_from": _dt(_l("Start time"), Optional()),
        "valid_to": _dt(_l("End time"), _CouponRule("valid_to"), Optional()),
        "valid_days": IntegerField(_l("Valid days"), validators=[_CouponRule("valid_days"), Optional()]),
        "total_quantity": IntegerField(_l("Total quantity"), validators=[Optional(), NumberRange(min=1)]),
        "per_member_limit": IntegerField(_l("Limit per member"), validators=[Optional(), NumberRange(min=1)]),
    }

    def _prepare(self, item):
        item.threshold = item.threshold or 0
        if item.coupon_type != "discount":
            item.discount_rate = None
        if item.all_stations:
            item.stations = []

    def pre_add(self, item):
        self._prepare(item)
        super().pre_add(item)

    def pre_update(self, item):
        self._prepare(item)
        super().pre_update(item)


# ----- 卡券活动 --------------------------------------------------------------------------------
ITEM_ROWS = 5


class CouponItemsWidget:
    """赠券配置: rows of (coupon, quantity); empty rows are ignored."""

    def __call__(self, field, **kwargs):
        from markupsafe import Markup, escape

        rows = list(field.rows) + [(None, None)] * max(ITEM_ROWS - len(field.rows), 1)
        choices = field.template_choices()
        head = (f'<thead><tr><th>{escape(_l("Coupon"))}</th><th style="width:9em">{escape(_l("Quantity"))}</th>'
                "</tr></thead>")
        body = []
        for i, (tid, qty) in enumerate(rows):
            opts = ['<option value="">-</option>'] + [
                f'<option value="{v}"{" selected" if str(v) == str(tid) else ""}>{escape(label)}</option>'
                for v, label in choices]
            body.append(
                f'<tr><td><select class="form-control" name="{field.name}-template" id="{field.name}-{i}-template">'
                f'{"".join(opts)}</select></td><td><input class="form-control" type="number" min="1" max="100" '
                f'name="{field.name}-quantity" id="{field.name}-{i}-quantity" value="{escape(qty or "")}"></td></tr>')
        return Markup(f'<table class="table table-condensed cpms-coupon-items" id="{field.id}">{head}'
                      f'<tbody>{"".join(body)}</tbody></table>')


class CouponItemsField(Field):
    """The campaign's ``items`` (CouponCampaignItem): the coupons each member receives and how many."""

    widget = CouponItemsWidget()

    def __init__(self, label=None, validators=None, **kwargs):
        super().__init__(label, validators, **kwargs)
        self.rows = []

    def template_choices(self):
        from sqlalchemy import select

        from app.extensions import db
        from app.security.scope import apply_scope

        q = apply_scope(select(CouponTemplate), CouponTemplate).order_by(CouponTemplate.operator_id,
                                                                        CouponTemplate.id)
        return [(t.id, f"{t.name} (#{t.id}, {t.operator.short_name or t.operator.name})" if t.operator else t.name)
                for t in db.session.scalars(q)]

    def process(self, formdata, data=unset_value, extra_filters=None):
        self.process_errors = []
        if formdata is not None and (f"{self.name}-template" in formdata or f"{self.name}-quantity" in formdata):
            self.rows = list(zip(formdata.getlist(f"{self.name}-template"),
                                 formdata.getlist(f"{self.name}-quantity"), strict=False))
        elif data is not unset_value and data:
            self.rows = [(it.template_id, it.quantity) for it in data]
        else:
            self.rows = []
        self.data = None

    def pre_validate(self, form):
        allowed = {str(v) for v, _ in self.template_choices()}
        out, seen = [], set()
        for tid, qty in self.rows:
            tid, qty = (tid or "").strip(), (qty or "").strip()
            if not tid and not qty:
                continue
            if tid not in allowed:
                raise ValidationError(_l("Choose a coupon for each row with a quantity."))
            try:
                n = int(qty)
            except ValueError:
                raise ValidationError(_l("Each coupon needs a quantity between 1 and 100.")) from None
            if not 1 <= n <= 100:
                raise ValidationError(_l("Each coupon needs a quantity between 1 and 100."))
            if tid in seen:
                raise ValidationError(_l("A coupon can be chosen only once."))
            seen.add(tid)
            out.append((int(tid), n))
        self.data = out

    def populate_obj(self, obj, name):
        from app.extensions import db

        existing = {it.template_id: it for it in obj.items}
        items = []
        for tid, qty in self.data or []:
            item = existing.get(tid) or CouponCampaignItem(template=db.session.get(CouponTemplate, tid))
            item.quantity = qty
            items.append(item)
        obj.items = items


def _items_text(items):
    return "; ".join(str(i) for i in items) if items else "-"


class CouponCampaignView(CpmsModelView):
    datamodel = ScopedSQLAInterface(CouponCampaign)
    list_title = _l("Coupon campaigns")
    show_title = add_title = edit_title = _l("Coupon campaign")
    choice_columns = {
        "trigger": COUPON_CAMPAIGN_TRIGGER,
        "scope": COUPON_CAMPAIGN_SCOPE,
        "position": CAMPAIGN_POSITION,
    }
    list_columns = [
        "id",
        "name",
        "start_at",
        "end_at",
        "trigger",
        "items",
        "description",
        "operator",
        "enabled",
        "remark",
    ]
    search_columns = ["name", "start_at", "end_at", "trigger", "operator", "enabled"]
    order_columns = ["id", "start_at", "end_at"]
    base_order = ("start_at", "desc")
    add_columns = edit_columns = [
        "name",
        "tag",
        "start_at",
        "end_at",
        "position",
        "description",
        "trigger",
        "scope",
        "members",
        "registered_from",
        "registered_to",
        "min_orders",
        "order_count",
        "order_min_amount",
        "items",
        "tip_uploads",
        "enabled",
        "operator",
        "remark",
    ]
    show_columns = [
        "id",
        "name",
        "tag",
        "start_at",
        "end_at",
        "position",
        "description",
        "trigger",
        "scope",
        "members",
        "registered_from",
        "registered_to",
        "min_orders",
        "order_count",
        "order_min_amount",
        "items",
        "gift_tip_images",
        "last_issued_at",
        "enabled",
        "operator",
        "remark",
        "created_at",
    ]
    label_columns = labels(
        id=_l("Campaign no."),
        name=_l("Campaign name"),
        tag=_l("Campaign tag"),
        start_at=_l("Start time"),
        end_at=_l("End time"),
        position=_l("Campaign position"),
        description=_l("Campaign description"),
        trigger=_l("Issued on"),
        scope=_l("Campaign scope"),
        members=_l("Members"),
        items=_l("Coupons given"),
        registered_from=_l("Registered from"),
        registered_to=_l("Registered before"),
        min_orders=_l("At least N orders"),
        order_count=_l("On the member's N-th order"),
        order_min_amount=_l("Order amount at least (yuan)"),
        last_issued_at=_l("Last issued"),
        gift_tip_images=_l("Gift tip images"),
        tip_uploads=_l("Upload gift tip images"),
    )
    description_columns = {
        "members": _l('Used when the scope is "Selected members".'),
        "registered_from": _l("Manual issue: only members registered at or after this time (empty: any)."),
        "registered_to": _l("Manual issue: only members registered before this time (empty: any)."),
        "min_orders": _l("Manual issue: only members with at least this many settled orders (empty: any)."),
        "order_count": _l("Order finished: give the coupons on the member's N-th settled order only "
                          "(empty: on every order)."),
        "order_min_amount": _l("Order finished: only orders of at least this amount (empty: any amount)."),
        "items": _l("The coupons each member receives, and how many of each."),
    }
    formatters_columns = {"items": _items_text, "gift_tip_images": photo_thumbnails}
    add_form_extra_fields = edit_form_extra_fields = {
        "start_at": _dt(_l("Start time")),
        "end_at": _dt(_l("End time"), DataRequired(), AfterStart()),
        "registered_from": _dt(_l("Registered from"), Optional()),
        "registered_to": _dt(_l("Registered before"), Optional()),
        "min_orders": IntegerField(_l("At least N orders"), validators=[Optional(), NumberRange(min=1)]),
        "order_count": IntegerField(_l("On the member's N-th order"), validators=[Optional(), NumberRange(min=1)]),
        "order_min_amount": DecimalField(_l("Order amount at least (yuan)"), places=2,
                                         validators=[Optional(), NumberRange(min=0)]),
        "items": CouponItemsField(_l("Coupons given")),
        "tip_uploads": TipImagesField(_l("Upload gift tip images")),
    }

    def _prepare(self, item):
        if item.scope != "selected":
            item.members = []
        op_id = item.operator_id if item.operator_id is not None else getattr(item.operator, "id", None)
        for it in item.items:
            if op_id is not None and it.template is not None and it.template.operator_id != op_id:
                raise CampaignError(_l("The coupons given must be coupons of the campaign's operator."))

    def pre_add(self, item):
        super().pre_add(item)
        self._prepare(item)

    def pre_update(self, item):
        super().pre_update(item)
        self._prepare(item)

    @action("issue", _l("Issue now"), _l("Give the campaign's coupons to its members now?"), "fa-paper-plane",
            multiple=False)
    def issue(self, item):
        from app.services import coupons

        item = item[0] if isinstance(item, list) else item
        if item is not None:
            try:
                r = coupons.run_campaign(item.id)
            except coupons.CampaignRunError as exc:
                self.datamodel.session.rollback()
                flash(str(exc), "warning")
            else:
                flash(_("%(coupons)d coupon(s) issued to %(members)d member(s); %(skipped)d member(s) had "
                        "them already; %(refused)d refused (stock or limit).", coupons=r.coupons,
                        members=r.members, skipped=r.skipped, refused=sum(r.refused.values())), "success")
        return redirect(self.get_redirect())


# ----- 领券记录: every coupon held by a member, with its source ----------------------------------
class CouponView(CpmsModelView):
    """Issued coupons: who holds which coupon, from where, and what became of it. History rows: no
    add, edit or delete; unused coupons can be voided."""

    datamodel = ScopedSQLAInterface(Coupon)
    list_title = show_title = _l("Issued coupons")
    base_permissions = ["can_list", "can_show", "can_export", "void"]
    choice_columns = {"status": COUPON_STATUS, "source": COUPON_SOURCE, "coupon_type": COUPON_TYPE,
                      "target": COUPON_TARGET}
    list_columns = ["code", "template", "member", "source", "campaign", "status", "valid_to", "used_at",
                    "order", "discount_amount", "created_at"]
    show_columns = ["code", "template", "coupon_type", "target", "member", "source", "campaign", "source_order",
                    "status", "valid_from", "valid_to", "order", "used_at", "discount_amount", "operator",
                    "created_at"]
    search_columns = ["code", "template", "member", "campaign", "source", "status", "created_at", "operator"]
    order_columns = ["created_at", "valid_to", "used_at"]
    base_order = ("created_at", "desc")
    label_columns = labels(
        code=_l("Coupon code"), template=_l("Coupon"), member=_l("Member"), source=_l("Source"),
        campaign=_l("Coupon campaign"), status=_l("Status"), valid_from=_l("Valid from"), valid_to=_l("Valid until"),
        used_at=_l("Used at"), order=_l("Used on order"), discount_amount=_l("Discount (yuan)"),
        coupon_type=_l("Coupon type"), target=_l("Discount on"), source_order=_l("Earned by order"),
        created_at=_l("Received at"))

    @action("void", _l("Void"), _l("Void the selected unused coupons?"), "fa-ban")
    def void(self, items):
        from app.services import coupons

        items = [it for it in (items if isinstance(items, list) else [items]) if it is not None]
        done = 0
        for item in items:
            try:
                coupons.void(item)
                self.datamodel.session.commit()
                done += 1
            except coupons.CouponVoidError as exc:
                self.datamodel.session.rollback()
                flash(f"{item}: {exc}", "warning")
        if done:
            flash(_("%(n)d coupon(s) voided.", n=done), "success")
        self.update_redirect()
        return redirect(self.get_redirect())


def member_coupons(member_id, limit=20):
    """The member's latest coupons (in the caller's scope) for the member page (会员管理)."""
    from sqlalchemy import select

    from app.extensions import db
    from app.security.scope import apply_scope
    from app.services import coupons

    try:
        member_id = int(member_id)   # the show page's pk is text
    except (TypeError, ValueError):
        return []
    q = apply_scope(select(Coupon).where(Coupon.member_id == member_id), Coupon)
    rows = db.session.scalars(q.order_by(Coupon.created_at.desc(), Coupon.id.desc()).limit(limit)).all()
    status = dict(COUPON_STATUS)
    source = dict(COUPON_SOURCE)
    return [{"code": c.code, "name": c.template.name if c.template else "-",
             "status": _l(status.get(coupons.effective_status(c), c.status)),
             "source": _l(source.get(c.source, c.source)),
             "campaign": c.campaign.name if c.campaign else "-",
             "valid_to": clock.format_local(c.valid_to) or "-",
             "used_at": clock.format_local(c.used_at) or "-",
             "order_no": c.order.order_no if c.order is not None else "-"} for c in rows]


def register_jinja(app):
    app.jinja_env.globals["cpms_member_coupons"] = member_coupons


# ----- 营销统计 -----------------------------------------------------------------------------------
class MarketingReportView(BaseView):
    """营销统计: discounts per campaign, coupons issued / used / discount per coupon campaign and per coupon
    (app/services/marketing_stats.py, scoped); the Excel export has the same three tables as sheets."""

    route_base = "/marketingreport"
    default_view = "list"
    title = _l("Marketing report")

    CAMPAIGN_COLUMNS = [("id", _l("Campaign no.")), ("name", _l("Campaign name")), ("kind", _l("Campaign type")),
                        ("order_count", _l("Orders")), ("order_amount", _l("Order amount (yuan)")),
                        ("campaign_discount", _l("Campaign discount (yuan)")),
                        ("discount_total", _l("Total discount of the orders (yuan)"))]
    COUPON_COLUMNS = [("id", _l("No.")), ("name", _l("Name")), ("issued", _l("Issued")), ("used", _l("Used")),
                      ("discount_amount", _l("Discount (yuan)"))]

    def _context(self):
        from app.services import marketing_stats, reports

        start, end, error = reports.parse_range(request.args.get("start"), request.args.get("end"))
        if error:
            flash(_("Dates must look like 2024-03-01; showing the last 30 days."), "warning")
        f = marketing_stats.StatsFilters(start, end, reports._int(request.args.get("operator")))
        data = marketing_stats.stats(f)
        kinds = dict(CAMPAIGN_KIND)
        for r in data["campaigns"]:
            r["kind"] = _l(kinds.get(r["kind"], r["kind"]))
        operators = reports.operator_choices()
        tables = [
            ("campaigns", _l("Campaigns"), self.CAMPAIGN_COLUMNS, data["campaigns"]),
            ("coupon-campaigns", _l("Coupon campaigns"), self.COUPON_COLUMNS, data["coupon_campaigns"]),
            ("coupons", _l("Coupons"), self.COUPON_COLUMNS, data["templates"]),
        ]
        return {"f": f, "tables": tables, "operators": operators if len(operators) > 1 else [],
                "title": self.title, "fmt": _cell}

    @expose("/")
    @has_access
    def list(self):
        return self.render_template("marketing/marketing_report.html", **self._context())

    @expose("/export/")
    @has_access
    def export(self):
        import tempfile

        from flask import send_file
        from openpyxl import Workbook

        from app.services import excel

        ctx = self._context()
        wb = Workbook(write_only=True)
        for _key, heading, columns, rows in ctx["tables"]:
            ws = wb.create_sheet(title=str(heading)[:31])
            ws.append(excel.safe_row(ws, [str(label) for _c, label in columns]))
            for r in rows:
                ws.append(excel.safe_row(ws, [str(r[c]) if c == "kind" else r[c] for c, _l2 in columns]))
        tmp = tempfile.TemporaryFile(suffix=".xlsx")
        wb.save(tmp)
        tmp.seek(0)
        f = ctx["f"]
        return send_file(tmp, mimetype=excel.XLSX_MIME, as_attachment=True,
                         download_name=f"marketing_{f.start}_{f.end}.xlsx")


def _cell(value):
    from decimal import Decimal

    from app.services.money import q_amount

    if value is None:
        return "-"
    return str(q_amount(value)) if isinstance(value, Decimal) else value
