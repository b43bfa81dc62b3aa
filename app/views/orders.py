"""订单管理: realtime, history, abnormal and occupancy orders (read-only for now)."""

from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.filters import FilterEqual
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from wtforms import StringField

from app.models import ChargeOrder, Connector, Member, OccupancyOrder, Pile
from app.models.order import (
    ACTIVE_ORDER_STATUSES,
    OCCUPANCY_STATUS,
    ORDER_STATUS,
    PAY_STATUS,
    PAY_TYPE,
    REFUND_STATUS,
    START_METHOD,
)
from app.views.base import CpmsModelView, ScopedSQLAInterface
from app.views.stations import labels

READ_ONLY = ["can_list", "can_show", "can_export"]


# ----- search helpers -------------------------------------------------------------------------
class StatusIn(BaseFilter):
    """Base filter: ``status IN value`` (value: a tuple of statuses)."""

    name = "Status in"
    arg_name = None

    def apply(self, query, value):
        return query.filter(getattr(self.model, self.column_name).in_(list(value)))


class StatusNotIn(StatusIn):
    name = "Status not in"

    def apply(self, query, value):
        return query.filter(getattr(self.model, self.column_name).notin_(list(value)))


def related_filter(label, fk, target_col, *, prefix=False):
    """A search filter on a related row's indexed column, applied as ``fk IN (SELECT id ...)``
    (no join, no dropdown of the related table)."""

    class RelatedFilter(BaseFilter):
        name = label
        arg_name = "rel_sw" if prefix else "rel_eq"

        def apply(self, query, value):
            value = (value or "").strip()
            if not value:
                return query
            target = target_col.class_
            cond = target_col.startswith(value, autoescape=True) if prefix else target_col == value
            return query.filter(getattr(self.model, fk).in_(select(target.id).where(cond)))

    return RelatedFilter


class ExtraSearchMixin:
    """``extra_search``: {name: (label, [filter classes])} search fields that are not model columns
    (member phone, pile code...). Each gets a text input and its own filters."""

    extra_search: dict = {}

    def __init__(self, *args, **kwargs):
        extra = dict(getattr(self, "search_form_extra_fields", None) or {})
        self.label_columns = dict(self.label_columns or {})
        for name, (label, _flts) in self.extra_search.items():
            extra.setdefault(name, StringField(label))
            self.label_columns.setdefault(name, label)
        self.search_form_extra_fields = extra
        super().__init__(*args, **kwargs)

    def _init_properties(self):
        # FAB converts model columns only: build its filters without ours, then add ours
        columns = [c for c in (self.search_columns or []) if c not in self.extra_search]
        self.search_columns = columns
        super()._init_properties()
        self.search_columns = columns + list(self.extra_search)
        for name, (_label, flts) in self.extra_search.items():
            inst = [cls(name, self.datamodel) for cls in flts]
            self._filters._search_filters[name] = inst
            self._filters._all_filters[name] = inst


ORDER_EXTRA_SEARCH = {
    "pile_code": (
        _l("Pile code"),
        [
            related_filter(_l("Equal to"), "pile_id", Pile.code),
            related_filter(_l("Starts with"), "pile_id", Pile.code, prefix=True),
        ],
    ),
    "connector_code": (
        _l("Connector code"),
        [
            related_filter(_l("Equal to"), "connector_id", Connector.code),
            related_filter(_l("Starts with"), "connector_id", Connector.code, prefix=True),
        ],
    ),
    "member_no": (_l("Member no."), [related_filter(_l("Equal to"), "member_id", Member.member_no)]),
    "member_phone": (_l("Member phone"), [related_filter(_l("Equal to"), "member_id", Member.phone)]),
}

ORDER_LABELS = labels(
    order_no=_l("Order no."),
    partner_order_no=_l("Partner order no."),
    channel=_l("Channel"),
    partner=_l("Partner"),
    station=_l("Station"),
    pile=_l("Pile"),
    connector=_l("Connector"),
    **{
        "station.code": _l("Station no."),
        "pile.code": _l("Pile code"),
        "pile.name": _l("Pile name"),
        "connector.code": _l("Connector code"),
        "connector.name": _l("Connector name"),
        "member.member_no": _l("Member no."),
        "member.phone": _l("Member phone"),
        "channel.name": _l("Channel"),
    },
    member=_l("Member"),
    card=_l("Card"),
    organization=_l("Organization"),
    card_no=_l("Card no."),
    plate_no=_l("Plate no."),
    vin=_l("VIN"),
    start_method=_l("Start method"),
    status=_l("Order status"),
    pay_status=_l("Pay status"),
    pay_type=_l("Pay type"),
    stop_reason=_l("Stop reason"),
    stop_reason_code=_l("Stop reason code"),
    failure_reason=_l("Failure reason"),
    abnormal_reason=_l("Abnormal reason"),
    needs_review=_l("Needs review"),
    start_requested_at=_l("Start requested"),
    started_at=_l("Start time"),
    ended_at=_l("End time"),
    settled_at=_l("Settled at"),
    paid_at=_l("Paid at"),
    pushed_at=_l("Pushed to partner"),
    start_soc=_l("Start SOC (%)"),
    end_soc=_l("End SOC (%)"),
    duration_seconds=_l("Duration (s)"),
    energy=_l("Energy (kWh)"),
    electricity_fee=_l("Electricity fee (yuan)"),
    service_fee=_l("Service fee (yuan)"),
    total_amount=_l("Order amount (yuan)"),
    discount_electricity=_l("Electricity discount (yuan)"),
    discount_service=_l("Service discount (yuan)"),
    discount_total=_l("Discount (yuan)"),
    payable_amount=_l("Payable (yuan)"),
    paid_amount=_l("Paid (yuan)"),
    refunded_amount=_l("Refunded (yuan)"),
    prepaid_amount=_l("Target amount (yuan)"),
    campaign=_l("Campaign"),
    coupon=_l("Coupon"),
    live_power=_l("Live power (kW)"),
    live_voltage=_l("Live voltage (V)"),
    live_current=_l("Live current (A)"),
    live_soc=_l("Live SOC (%)"),
    live_energy=_l("Live energy (kWh)"),
    live_amount=_l("Live amount (yuan)"),
    live_remaining_minutes=_l("Remaining minutes"),
    live_updated_at=_l("Live data at"),
    pile_energy=_l("Pile-billed energy (kWh)"),
    pile_amount=_l("Pile-billed amount (yuan)"),
    meter_start=_l("Meter start (kWh)"),
    meter_stop=_l("Meter stop (kWh)"),
    serial=_l("Transaction serial"),
    created_at=_l("Created at"),
)


class _ChargeOrderView(ExtraSearchMixin, CpmsModelView):
    datamodel = ScopedSQLAInterface(ChargeOrder)
    base_permissions = READ_ONLY
    choice_columns = {
        "status": ORDER_STATUS,
        "pay_status": PAY_STATUS,
        "start_method": START_METHOD,
        "pay_type": PAY_TYPE,
    }
    show_title = _l("Charging order")
    list_columns = [
        "order_no",
        "partner_order_no",
        "channel",
        "station",
        "pile.code",
        "connector.code",
        "member.member_no",
        "member.phone",
        "plate_no",
        "start_method",
        "status",
        "pay_status",
        "started_at",
        "ended_at",
        "energy",
        "electricity_fee",
        "service_fee",
        "total_amount",
        "discount_total",
        "paid_amount",
        "stop_reason",
    ]
    search_columns = [
        "order_no",
        "partner_order_no",
        "station",
        "channel",
        "start_method",
        "plate_no",
        "card_no",
        "status",
        "pay_status",
        "started_at",
        "created_at",
    ]
    extra_search = ORDER_EXTRA_SEARCH
    order_columns = ["order_no", "created_at", "started_at", "ended_at"]
    base_order = ("created_at", "desc")
    label_columns = ORDER_LABELS
    show_fieldsets = [
        (
            _l("Order"),
            {
                "fields": [
                    "order_no",
                    "partner_order_no",
                    "serial",
                    "channel",
                    "partner",
                    "status",
                    "needs_review",
                    "failure_reason",
                    "abnormal_reason",
                    "remark",
                    "operator",
                    "created_at",
                ]
            },
        ),
        (_l("Device"), {"fields": ["station", "pile", "connector"]}),
        (
            _l("User"),
            {
                "fields": [
                    "member",
                    "member.member_no",
                    "member.phone",
                    "organization",
                    "card",
                    "card_no",
                    "plate_no",
                    "vin",
                    "start_method",
                ]
            },
        ),
        (
            _l("Charging"),
            {
                "fields": [
                    "start_requested_at",
                    "started_at",
                    "ended_at",
                    "duration_seconds",
                    "start_soc",
                    "end_soc",
                    "energy",
                    "stop_reason",
                    "stop_reason_code",
                    "meter_start",
                    "meter_stop",
                    "pile_energy",
                    "pile_amount",
                ]
            },
        ),
        (
            _l("Live data"),
            {
                "fields": [
                    "live_power",
                    "live_voltage",
                    "live_current",
                    "live_soc",
                    "live_energy",
                    "live_amount",
                    "live_remaining_minutes",
                    "live_updated_at",
                ]
            },
        ),
        (
            _l("Amounts"),
            {
                "fields": [
                    "prepaid_amount",
                    "electricity_fee",
                    "service_fee",
                    "total_amount",
                    "discount_electricity",
                    "discount_service",
                    "discount_total",
                    "campaign",
                    "coupon",
                    "payable_amount",
                ]
            },
        ),
        (
            _l("Payment"),
            {
                "fields": [
                    "pay_status",
                    "pay_type",
                    "paid_amount",
                    "paid_at",
                    "refunded_amount",
                    "settled_at",
                    "pushed_at",
                ]
            },
        ),
    ]


class RealtimeOrderView(_ChargeOrderView):
    list_title = _l("Realtime orders")
    base_filters = [["status", StatusIn, ACTIVE_ORDER_STATUSES]]
    list_columns = [
        "order_no",
        "partner_order_no",
        "channel",
        "station",
        "pile.code",
        "connector.code",
        "member.member_no",
        "member.phone",
        "plate_no",
        "start_method",
        "status",
        "pay_status",
        "started_at",
        "prepaid_amount",
        "live_power",
        "live_soc",
        "live_energy",
        "live_amount",
        "discount_total",
    ]


class HistoryOrderView(_ChargeOrderView):
    list_title = _l("History orders")
    base_filters = [["status", StatusNotIn, ACTIVE_ORDER_STATUSES]]


class AbnormalOrderView(_ChargeOrderView):
    list_title = _l("Abnormal orders")
    base_filters = [["status", FilterEqual, "abnormal"]]
    list_columns = [
        "order_no",
        "partner_order_no",
        "channel",
        "station",
        "pile.code",
        "connector.code",
        "member.member_no",
        "member.phone",
        "start_method",
        "started_at",
        "ended_at",
        "energy",
        "total_amount",
        "paid_amount",
        "pay_status",
        "needs_review",
        "abnormal_reason",
        "stop_reason",
    ]
    search_columns = [
        "order_no",
        "partner_order_no",
        "station",
        "channel",
        "pay_status",
        "needs_review",
        "started_at",
        "created_at",
    ]


OCCUPANCY_LABELS = labels(
    order_no=_l("Occupancy order no."),
    charge_order=_l("Charging order no."),
    channel=_l("Order source"),
    station=_l("Station"),
    pile=_l("Pile"),
    connector=_l("Connector"),
    member=_l("Member"),
    **{
        "pile.code": _l("Pile code"),
        "pile.name": _l("Pile name"),
        "connector.code": _l("Connector code"),
        "connector.name": _l("Connector name"),
        "member.member_no": _l("Member no."),
        "member.phone": _l("Member phone"),
        "station.code": _l("Station no."),
        "charge_order.order_no": _l("Charging order no."),
    },
    start_method=_l("Start method"),
    status=_l("Status"),
    started_at=_l("Start time"),
    ended_at=_l("End time"),
    duration_minutes=_l("Occupancy (min)"),
    free_minutes=_l("Free minutes"),
    price=_l("Price"),
    unit=_l("Unit"),
    cap=_l("Fee cap (yuan)"),
    amount=_l("Order amount (yuan)"),
    discount_amount=_l("Discount (yuan)"),
    paid_amount=_l("Paid (yuan)"),
    settlement_amount=_l("Settlement amount (yuan)"),
    income_amount=_l("Occupancy income (yuan)"),
    split_amount=_l("Split income (yuan)"),
    refunded_amount=_l("Refunded (yuan)"),
    pay_status=_l("Pay status"),
    pay_type=_l("Pay type"),
    paid_at=_l("Paid at"),
    refund_status=_l("Refund status"),
    created_at=_l("Created at"),
)

OCCUPANCY_EXTRA_SEARCH = {
    "charge_order_no": (
        _l("Charging order no."),
        [related_filter(_l("Equal to"), "charge_order_id", ChargeOrder.order_no)],
    ),
    "pile_code": ORDER_EXTRA_SEARCH["pile_code"],
    "pile_name": (_l("Pile name"), [related_filter(_l("Starts with"), "pile_id", Pile.name, prefix=True)]),
    "member_phone": ORDER_EXTRA_SEARCH["member_phone"],
}


class OccupancyOrderView(ExtraSearchMixin, CpmsModelView):
    datamodel = ScopedSQLAInterface(OccupancyOrder)
    base_permissions = READ_ONLY
    list_title = _l("Occupancy orders")
    show_title = _l("Occupancy order")
    choice_columns = {
        "status": OCCUPANCY_STATUS,
        "pay_status": PAY_STATUS,
        "pay_type": PAY_TYPE,
        "start_method": START_METHOD,
        "refund_status": REFUND_STATUS,
    }
    list_columns = [
        "order_no",
        "charge_order",
        "start_method",
        "channel",
        "station",
        "pile.code",
        "connector.code",
        "member.member_no",
        "member.phone",
        "started_at",
        "ended_at",
        "duration_minutes",
        "status",
        "pay_status",
        "refund_status",
        "amount",
        "discount_amount",
        "paid_amount",
        "pay_type",
    ]
    search_columns = ["order_no", "station", "channel", "pay_type", "pay_status", "status", "started_at"]
    extra_search = OCCUPANCY_EXTRA_SEARCH
    order_columns = ["order_no", "started_at", "created_at"]
    base_order = ("created_at", "desc")
    label_columns = OCCUPANCY_LABELS
    show_fieldsets = [
        (
            _l("Order"),
            {
                "fields": [
                    "order_no",
                    "charge_order",
                    "start_method",
                    "channel",
                    "status",
                    "operator",
                    "created_at",
                ]
            },
        ),
        (_l("Device"), {"fields": ["station", "pile", "connector"]}),
        (_l("User"), {"fields": ["member", "member.member_no", "member.phone"]}),
        (
            _l("Occupancy"),
            {
                "fields": [
                    "started_at",
                    "ended_at",
                    "duration_minutes",
                    "free_minutes",
                    "price",
                    "unit",
                    "cap",
                ]
            },
        ),
        (
            _l("Payment"),
            {
                "fields": [
                    "pay_status",
                    "refund_status",
                    "amount",
                    "discount_amount",
                    "paid_amount",
                    "pay_type",
                    "paid_at",
                    "settlement_amount",
                    "income_amount",
                    "split_amount",
                    "refunded_amount",
                ]
            },
        ),
    ]


__all__ = [
    "RealtimeOrderView",
    "HistoryOrderView",
    "AbnormalOrderView",
    "OccupancyOrderView",
    "ExtraSearchMixin",
    "related_filter",
    "StatusIn",
    "StatusNotIn",
    "ORDER_LABELS",
    "OCCUPANCY_LABELS",
    "ORDER_EXTRA_SEARCH",
    "OCCUPANCY_EXTRA_SEARCH",
    "READ_ONLY",
]
