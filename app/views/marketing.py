"""营销活动: operation campaigns, interconnect campaigns, coupons (卡券列表) and coupon campaigns.

Discounts are typed as 折 (9.5 = 95 %) and stored as rates (0.95); the rules are in
app.services.campaigns.
"""

from datetime import datetime

from flask_appbuilder.fieldwidgets import DateTimePickerWidget
from flask_appbuilder.models.sqla.filters import FilterEqual
from flask_babel import lazy_gettext as _l
from wtforms import DateTimeField, DecimalField, IntegerField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional, StopValidation, ValidationError

from app.models import Campaign, CouponCampaign, CouponTemplate
from app.models.marketing import (
    CAMPAIGN_DISCOUNT_MODE,
    CAMPAIGN_POSITION,
    COUPON_CAMPAIGN_SCOPE,
    COUPON_CAMPAIGN_TRIGGER,
    COUPON_TARGET,
    COUPON_TYPE,
    COUPON_VALIDITY,
)
from app.services import campaigns, clock
from app.services.campaigns import CampaignError
from app.views.base import SCOPE_FILTERS, CpmsModelView, ScopedSQLAInterface
from app.views.stations import labels


class DiscountField(DecimalField):
    """A rate column edited as 折: shows ``rate × 10``, stores ``折 / 10`` (service rules)."""

    def __init__(self, label=None, validators=None, **kwargs):
        super().__init__(label, validators if validators is not None else [Optional()], places=None, **kwargs)

    def process_data(self, value):
        self.data = campaigns.rate_to_zhe(value)

    def pre_validate(self, form):
        if self.data is not None:
            try:
                campaigns.zhe_to_rate(self.data)
            except CampaignError as exc:
                raise ValidationError(str(exc)) from None

    def populate_obj(self, obj, name):
        setattr(obj, name, campaigns.zhe_to_rate(self.data) if self.data is not None else None)


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
)


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
        "start_at",
        "end_at",
        "discount_mode",
        "electricity_rate",
        "service_rate",
        "description",
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
        "start_at",
        "end_at",
        "discount_mode",
        "electricity_rate",
        "service_rate",
        "periods",
        "description",
        "priority",
        "enabled",
        "operator",
        "remark",
        "created_at",
    ]
    label_columns = CAMPAIGN_LABELS
    description_columns = {
        "electricity_rate": _l("In 折: 9.5 = pay 95 percent; 0 < x ≤ 10; empty or 10 = no discount."),
        "service_rate": _l("In 折: 9.5 = pay 95 percent; 0 < x ≤ 10; empty or 10 = no discount."),
        "stations": _l('Used when "All stations" is not ticked.'),
    }
    formatters_columns = {
        "electricity_rate": lambda v: campaigns.rate_to_zhe(v),
        "service_rate": lambda v: campaigns.rate_to_zhe(v),
    }
    add_form_extra_fields = edit_form_extra_fields = {
        "electricity_rate": DiscountField(_l("Electricity discount (折)")),
        "service_rate": DiscountField(_l("Service fee discount (折)")),
        "start_at": _dt(_l("Start time")),
        "end_at": _dt(_l("End time"), DataRequired(), AfterStart()),
        "name": StringField(_l("Campaign name"), validators=[DataRequired(), Length(max=64)]),
    }

    def _prepare(self, item):
        item.kind = self.kind
        item.electricity_rate = item.electricity_rate if item.electricity_rate is not None else 1
        item.service_rate = item.service_rate if item.service_rate is not None else 1
        if item.all_stations:
            item.stations = []

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
    add_columns = edit_columns = ["channel"] + CampaignView.add_columns
    show_columns = ["channel"] + CampaignView.show_columns
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
    )
    description_columns = {
        "name": _l("At most 15 characters."),
        "discount_rate": _l("Discount coupons only, in 折: 8.5 = pay 85 percent."),
        "threshold": _l("Spend-and-save coupons: spend at least this much."),
        "face_value": _l("Spend-and-save and deduction coupons: the amount taken off."),
        "valid_days": _l('"Days after receipt" validity only.'),
        "total_quantity": _l("Empty = unlimited."),
    }
    formatters_columns = {"discount_rate": lambda v: campaigns.rate_to_zhe(v)}
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
        "items",
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
    )
    description_columns = {"members": _l('Used when the scope is "Selected members".')}
    add_form_extra_fields = edit_form_extra_fields = {
        "start_at": _dt(_l("Start time")),
        "end_at": _dt(_l("End time"), DataRequired(), AfterStart()),
    }

    def pre_add(self, item):
        if item.scope != "selected":
            item.members = []
        super().pre_add(item)

    def pre_update(self, item):
        if item.scope != "selected":
            item.members = []
        super().pre_update(item)
