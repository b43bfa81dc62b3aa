"""订单管理: realtime, history, abnormal and occupancy orders.

- 实时订单: live figures polled every few seconds (``live``), detail with a live ECharts curve
  (``curve``), stop button (``can_stop``).
- 历史订单: default 30-day window, totals bar from ONE aggregate over the list's filtered and
  scoped query (``totals``), detail with curve, period breakdown and events.
- 异常订单: reason and the three manual actions (``can_settle``, ``can_close``, ``can_reprice``)
  through :mod:`app.services.order_admin`.
- 占位订单.

Lists use :class:`CappedScopedSQLAInterface` (count capped, fab-guide §9.4), explicit search and
order columns on indexed columns, relation filters as ``fk IN (SELECT id ...)``.
"""
import json
import logging
import os
from datetime import datetime, timedelta

from dateutil import parser as date_parser
from flask import abort, current_app, flash, g, jsonify, redirect, request, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.forms import DynamicForm
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.filters import get_field_setup_query
from flask_appbuilder.security.decorators import has_access_api, permission_name
from flask_appbuilder.urltools import get_filter_args, get_order_args
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape
from sqlalchemy import DateTime, func, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import noload, selectinload
from wtforms import DecimalField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange

from app.models import ChargeOrder, Connector, Member, OccupancyOrder, OrderEvent, OrderPeriod, Pile
from app.models.base import utcnow
from app.models.order import (
    ACTIVE_ORDER_STATUSES,
    OCCUPANCY_STATUS,
    ORDER_EVENT,
    ORDER_STATUS,
    PAY_STATUS,
    PAY_TYPE,
    REFUND_STATUS,
    START_METHOD,
)
from app.services import clock, excel, order_queries
from app.views.base import CpmsModelView, ScopedSQLAInterface, local_time
from app.views.formatters import display_text
from app.views.stations import labels

log = logging.getLogger(__name__)

READ_ONLY = ["can_list", "can_show", "can_export"]
HISTORY_WINDOW_DAYS = 30


class CappedScopedSQLAInterface(ScopedSQLAInterface):
    """Scoped interface whose list count stops at ``count_cap`` + 1 (fab-guide §9.4):
    ``SELECT count(*) FROM (SELECT t.id FROM t WHERE ... LIMIT cap + 1)``. ``_apply_inner_all`` is
    private FAB API (pinned 5.3; tests/integration/orders/test_order_screens.py keeps it honest)."""

    count_cap = 10_000

    def query_count(self, query, filters=None, select_columns=None):
        inner = self._apply_inner_all(query, filters, select_columns=select_columns, aliases_mapping={})
        pk = getattr(self.obj, self.get_pk_name())  # a real column keeps the FROM without filters
        capped = inner.with_entities(pk).order_by(None).limit(self.count_cap + 1)
        return self.session.query(func.count()).select_from(capped.subquery()).scalar()

    def filtered_query(self, filters):
        """The list's WHERE (base + scope + user filters), without order and pagination."""
        return self._apply_inner_all(self.session.query(self.obj), filters, aliases_mapping={}).order_by(None)


# ----- local-time date filters ----------------------------------------------------------------
def _local_to_utc(value, end=False):
    """A date/time typed in the local timezone -> naive UTC. A bare date as an upper bound means
    the end of that day (returned as the next midnight, compared with ``<``)."""
    if isinstance(value, datetime):
        local = value
        date_only = False
    else:
        text = str(value or "").strip()
        if not text:
            return None
        try:
            local = date_parser.parse(text)
        except (ValueError, OverflowError):
            return None
        date_only = len(text) <= 10
    if date_only and end:
        local = local + timedelta(days=1)
    return clock.local_to_utc(local)


class LocalFrom(BaseFilter):
    name = _l("From (local time)")
    arg_name = "ge"

    def apply(self, query, value):
        at = _local_to_utc(value)
        if at is None:
            return query
        query, field = get_field_setup_query(query, self.model, self.column_name)
        return query.filter(field >= at)


class LocalTo(BaseFilter):
    name = _l("To (local time)")
    arg_name = "le"

    def apply(self, query, value):
        text = str(value or "").strip()
        at = _local_to_utc(value, end=True)
        if at is None:
            return query
        query, field = get_field_setup_query(query, self.model, self.column_name)
        return query.filter(field < at if len(text) <= 10 else field <= at)


class WindowFrom(BaseFilter):
    """Internal filter of the default time window (naive UTC value)."""

    name = "Window"
    arg_name = None

    def apply(self, query, value):
        return query.filter(getattr(self.model, self.column_name) >= value)



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

# where a charge or occupancy order happened and for whom: the same labels on both screens
PLACE_LABELS = {
    "station": _l("Station"),
    "pile": _l("Pile"),
    "connector": _l("Connector"),
    "member": _l("Member"),
    "station.code": _l("Station no."),
    "pile.code": _l("Pile code"),
    "pile.name": _l("Pile name"),
    "connector.code": _l("Connector code"),
    "connector.name": _l("Connector name"),
    "member.member_no": _l("Member no."),
    "member.phone": _l("Member phone"),
}

ORDER_LABELS = labels(
    **PLACE_LABELS,
    order_no=_l("Order no."),
    partner_order_no=_l("Partner order no."),
    channel=_l("Channel"),
    partner=_l("Partner"),
    **{"channel.name": _l("Channel")},
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


def _duration(value):
    return "" if value is None else order_queries.duration_text(value)


def _live(field, fmt=None):
    """List cell the realtime page refreshes: ``<span data-live="power">``."""

    def formatter(value):
        text = "" if value is None else (fmt(value) if fmt else value)
        return Markup(f'<span class="cpms-live" data-live="{field}">{escape(text)}</span>')

    formatter.cpms_live = True
    return formatter


def echarts_available():
    return os.path.exists(os.path.join(current_app.static_folder, "vendor", "echarts.min.js"))


class OrderScreenMixin:
    """Local-time date filters, extra (window) filters shared by list, totals and export, capped
    count, streamed export with only the relations it prints, extra template context."""

    # a date filter on one of these columns sorts by it (newest first) unless the user picked a sort:
    # the filter's index then serves both (no walk of the created_at index past the whole range)
    filter_sort_columns = ()

    def _init_properties(self):
        super()._init_properties()
        cols = sa_inspect(self.datamodel.obj).columns
        for name in self.search_columns or []:
            if name in cols and isinstance(cols[name].type, DateTime):
                flts = [LocalFrom(name, self.datamodel), LocalTo(name, self.datamodel)]
                self._filters._search_filters[name] = flts
                self._filters._all_filters[name] = flts

    # hooks
    def extra_list_filters(self, filters):
        """[(column, filter class, value)] added to the user's and the base filters."""
        return []

    def list_context(self, joined):
        return {}

    def default_order(self, filters):
        active = {f.column_name for f in filters.filters}
        for column in self.filter_sort_columns:
            if column in active:
                return column, "desc"
        return self.base_order or ("", "")

    def joined_filters(self, filters):
        joined = filters.get_joined_filters(self._base_filters)
        for column, flt, value in self.extra_list_filters(filters):
            joined.add_filter(column, flt, value)
        return joined

    def _get_list_widget(self, filters, actions=None, order_column="", order_direction="", page=None,
                         page_size=None, widgets=None, **kwargs):
        widgets = widgets or {}
        actions = actions or self.actions
        page_size = page_size or self.page_size
        if not order_column:
            order_column, order_direction = self.default_order(filters)
        joined = self.joined_filters(filters)
        count, lst = self.datamodel.query(joined, order_column, order_direction, page=page, page_size=page_size)
        pks = [self._serialize_pk_if_composite(pk) for pk in self.datamodel.get_keys(lst)]
        g.cpms_order_ctx = dict(self.list_context(joined), capped=count > self.datamodel.count_cap,
                                count_cap=self.datamodel.count_cap)
        widgets["list"] = self.list_widget(
            label_columns=self.label_columns, include_columns=self.list_columns,
            value_columns=self.datamodel.get_values(lst, self.list_columns), order_columns=self.order_columns,
            formatters_columns=self.formatters_columns, page=page, page_size=page_size, count=count, pks=pks,
            actions=actions, filters=filters, modelview_name=self.__class__.__name__, **kwargs)
        return widgets

    def render_template(self, template, **kwargs):
        ctx = dict(g.get("cpms_order_ctx") or {})
        ctx.update(kwargs)
        return super().render_template(template, **ctx)

    def request_filters(self):
        get_filter_args(self._filters)
        return self.joined_filters(self._filters)

    # ----- export: same filters as the list, streamed, only the relations it prints -----------
    def export_rows(self):
        joined = self.request_filters()
        order_column, order_direction = get_order_args().get(self.__class__.__name__, ("", ""))
        if not order_column:
            order_column, order_direction = self.default_order(self._filters)
        dm = self.datamodel
        model = dm.obj
        rels = sa_inspect(model).relationships
        needed = {c.split(".")[0] for c in self.list_columns if c.split(".")[0] in rels}
        options = [selectinload(getattr(model, r)) if r in needed else noload(getattr(model, r)) for r in rels.keys()]
        query = dm.apply_all(dm.session.query(model).options(*options), joined, order_column, order_direction)
        columns = list(self.list_columns)
        header = [str(self.label_columns.get(c, c)) for c in columns]

        def rows():
            for item in query.yield_per(1000):
                yield [self._export_value(item, c) for c in columns]

        return header, rows()

    def _export_value(self, item, column):
        fmt = self.formatters_columns.get(column)
        if getattr(fmt, "cpms_live", False):
            value = getattr(item, column)
            if column == "duration_seconds":
                return _duration(value)
            return excel.cell_value(value)
        return super()._export_value(item, column)


ORDER_SEARCH = [
    "order_no",
    "partner_order_no",
    "station",
    "channel",
    "start_method",
    "plate_no",
    "status",
    "pay_status",
    "started_at",
]
ORDER_ORDER_COLUMNS = ["order_no", "created_at", "started_at"]


class _ChargeOrderView(OrderScreenMixin, ExtraSearchMixin, CpmsModelView):
    """Manual §2.4 filters: 订单编号, 电站名称, 设备编号 (pile / connector code), 启动方式, 用户编号,
    用户手机号, 车牌号, 订单状态, 支付状态, 充电时间 (+ channel, partner order no)."""

    datamodel = CappedScopedSQLAInterface(ChargeOrder)
    base_permissions = READ_ONLY
    list_template = "orders/list.html"
    show_template = "orders/show.html"
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
        "duration_seconds",
        "energy",
        "electricity_fee",
        "service_fee",
        "total_amount",
        "discount_total",
        "paid_amount",
        "stop_reason",
    ]
    search_columns = ORDER_SEARCH
    extra_search = ORDER_EXTRA_SEARCH
    order_columns = ORDER_ORDER_COLUMNS
    base_order = ("created_at", "desc")
    filter_sort_columns = ("started_at",)
    label_columns = dict(ORDER_LABELS, duration_seconds=_l("Charging duration"))
    formatters_columns = {"duration_seconds": _duration}
    # manual detail layout: 订单信息 / 电站信息 / 用户信息 / 充电信息 / 订单信息 (amounts) / 优惠信息
    show_fieldsets = [
        (
            _l("Order information"),
            {
                "fields": [
                    "order_no",
                    "partner_order_no",
                    "serial",
                    "channel",
                    "partner",
                    "status",
                    "failure_reason",
                    "abnormal_reason",
                    "needs_review",
                    "remark",
                    "created_at",
                ]
            },
        ),
        (
            _l("Station information"),
            {
                "fields": [
                    "station.code",
                    "station",
                    "operator",
                    "pile.code",
                    "pile.name",
                    "connector.code",
                    "connector.name",
                ]
            },
        ),
        (
            _l("User information"),
            {
                "fields": [
                    "member.member_no",
                    "member.phone",
                    "start_method",
                    "plate_no",
                    "vin",
                    "card_no",
                    "organization",
                ]
            },
        ),
        (
            _l("Charging information"),
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
                    "meter_start",
                    "meter_stop",
                    "pile_energy",
                    "pile_amount",
                ]
            },
        ),
        (
            _l("Order amounts"),
            {
                "fields": [
                    "prepaid_amount",
                    "electricity_fee",
                    "service_fee",
                    "total_amount",
                    "payable_amount",
                    "pay_status",
                    "pay_type",
                    "paid_amount",
                    "paid_at",
                    "refunded_amount",
                    "settled_at",
                ]
            },
        ),
        (
            _l("Discounts"),
            {"fields": ["discount_electricity", "discount_service", "discount_total", "campaign", "coupon"]},
        ),
    ]
    live_panel = False
    push_endpoint = None  # 订单推送: set by the interconnect issue (e.g. "HistoryOrderView.push")

    def order_or_404(self, pk):
        item = self.datamodel.get(pk, self._base_filters)  # scope + this screen's statuses
        if item is None:
            abort(404)
        return item

    def order_actions(self, item):
        """[(label, url, method, css, permission)] buttons of the detail page."""
        return []

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        pk = self._deserialize_pk_if_composite(pk)
        widgets = self._show(pk)
        item = self.order_or_404(pk)
        name = self.__class__.__name__
        sm = self.appbuilder.sm
        actions = [a for a in self.order_actions(item) if sm.has_access(a[4], name)]
        if self.push_endpoint and sm.has_access("can_push", name):
            actions.append((_("Push order"), url_for(self.push_endpoint, pk=item.id), "post", "btn-default",
                            "can_push"))
        return self.render_template(
            self.show_template,
            pk=pk,
            title=self.show_title,
            widgets=widgets,
            related_views=self._related_views,
            order=item,
            periods=self._periods(item),
            events=self._events(item),
            order_actions=actions,
            live_panel=self.live_panel and item.status in ACTIVE_ORDER_STATUSES,
            live_url=url_for(f"{name}.live", ids=item.id) if self.live_panel else None,
            curve_url=url_for(f"{name}.curve", pk=item.id),
            echarts=echarts_available(),
            initial_live=order_queries.live_figures([item.id]).get(item.id, {}),
        )

    def _periods(self, item):
        rows = self.datamodel.session.execute(
            select(OrderPeriod).where(OrderPeriod.order_id == item.id).order_by(OrderPeriod.seq)
        ).scalars()
        return [dict({c: getattr(p, c) for c in ("seq", "level", "electricity_price", "service_price", "energy",
                                                 "electricity_fee", "service_fee", "discount_electricity",
                                                 "discount_service")},
                     start_at=local_time(p.start_at), end_at=local_time(p.end_at)) for p in rows]

    def _events(self, item):
        events = list(
            self.datamodel.session.execute(
                select(OrderEvent).where(OrderEvent.order_id == item.id).order_by(OrderEvent.id)
            ).scalars()
        )
        user_model = self.appbuilder.sm.user_model
        ids = {e.created_by_id for e in events if e.created_by_id}
        names = dict(
            self.datamodel.session.execute(select(user_model.id, user_model.username).where(user_model.id.in_(ids)))
            .tuples()
            .all()
        ) if ids else {}
        labels_ = dict(ORDER_EVENT)
        status_labels = dict(ORDER_STATUS)
        return [
            {
                "at": local_time(e.created_at),
                "event": _(labels_[e.event]) if e.event in labels_ else e.event,
                "from": _(status_labels[e.from_status]) if e.from_status in status_labels else (e.from_status or ""),
                "to": _(status_labels[e.to_status]) if e.to_status in status_labels else (e.to_status or ""),
                "by": names.get(e.created_by_id, _("System") if not e.created_by_id else e.created_by_id),
                "remark": display_text(e.remark) if e.remark else "",
                "detail": json.dumps(e.detail, ensure_ascii=False) if e.detail else "",
            }
            for e in events
        ]

    @expose("/curve/<pk>")
    @has_access_api
    @permission_name("show")
    def curve(self, pk):
        """Charging curve: meter samples (power, SOC, voltage, current) of one order in scope."""
        item = self.order_or_404(pk)
        after = request.args.get("after")
        after_at = None
        if after:
            after_at = clock.parse_iso_utc(after)  # naive = UTC (the curve's own cursor), never server-local
        data = order_queries.curve(item, after=after_at)
        data["live"] = order_queries.live_figures([item.id]).get(item.id)
        return jsonify(data)

    @expose("/live/")
    @has_access_api
    @permission_name("list")
    def live(self):
        """Live figures of the given orders (``?ids=1,2,3``), only those in the caller's scope;
        404 when none of them is."""
        ids = [i for i in request.args.get("ids", "").split(",") if i.strip()]
        figures = order_queries.live_figures(ids)
        if ids and not figures:
            abort(404)
        return jsonify({"orders": {str(k): v for k, v in figures.items()}, "interval": 5})


class RealtimeOrderView(_ChargeOrderView):
    list_title = _l("Realtime orders")
    base_filters = [["status", StatusIn, ACTIVE_ORDER_STATUSES]]
    base_permissions = READ_ONLY + ["can_stop"]
    live_panel = True
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
        "live_voltage",
        "live_current",
        "live_soc",
        "live_energy",
        "live_amount",
        "duration_seconds",
        "discount_total",
    ]
    formatters_columns = {
        "live_power": _live("power"),
        "live_voltage": _live("voltage"),
        "live_current": _live("current"),
        "live_soc": _live("soc"),
        "live_energy": _live("energy"),
        "live_amount": _live("amount"),
        "duration_seconds": _live("duration", order_queries.duration_text),
    }
    show_fieldsets = _ChargeOrderView.show_fieldsets[:4] + [
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
        )
    ] + _ChargeOrderView.show_fieldsets[4:]

    def list_context(self, joined):
        return {"live_url": url_for("RealtimeOrderView.live"), "live_interval_ms": 5000}

    def order_actions(self, item):
        return [(_("Stop charging"), url_for("RealtimeOrderView.stop", pk=item.id), "post", "btn-danger",
                 "can_stop")]

    @expose("/stop/<pk>", methods=["POST"])
    @has_access
    @permission_name("stop")
    def stop(self, pk):
        """停止订单: staff stop through the charging service (CSRF-protected POST)."""
        item = self.order_or_404(pk)
        try:
            from app.services import charging

            charging.stop_charge(item.id, by="staff", user_id=g.user.id)
        except ImportError:
            flash(_("Stopping is not available yet."), "warning")
        except ValueError as exc:  # charging.ChargingError and other refusals
            self.datamodel.session.rollback()
            flash(str(exc), "danger")
        else:
            flash(_("Stop requested for order %(no)s.", no=item.order_no), "success")
        return redirect(url_for("RealtimeOrderView.show", pk=item.id))


class HistoryOrderView(_ChargeOrderView):
    """Default window: orders created in the last HISTORY_WINDOW_DAYS days unless the user filters
    by a date or an order number. Totals bar: one aggregate over the same filters."""

    list_title = _l("History orders")
    base_filters = [["status", StatusNotIn, ACTIVE_ORDER_STATUSES]]
    base_permissions = READ_ONLY + ["can_push"]   # can_push: 订单推送 (app.services.interconnect_push)
    window_exempt = {"started_at", "created_at", "ended_at", "order_no", "partner_order_no"}

    def extra_list_filters(self, filters):
        if {f.column_name for f in filters.filters} & self.window_exempt:
            return []
        return [("created_at", WindowFrom, utcnow() - timedelta(days=HISTORY_WINDOW_DAYS))]

    def window_since(self, filters):
        extra = self.extra_list_filters(filters)
        return local_time(extra[0][2])[:10] if extra else None

    def list_context(self, joined):
        values = order_queries.totals(self.datamodel.filtered_query(joined))
        return {"totals": order_queries.totals_json(values), "window_since": self.window_since(self._filters),
                "window_days": HISTORY_WINDOW_DAYS}

    @expose("/totals/")
    @has_access_api
    @permission_name("list")
    def totals(self):
        """Totals bar of the current filters (same query as the list) as JSON."""
        joined = self.request_filters()
        values = order_queries.totals(self.datamodel.filtered_query(joined))
        return jsonify(dict(order_queries.totals_json(values), window_since=self.window_since(self._filters)))


    def order_actions(self, item):
        """订单推送 on partner orders only (other orders have no partner to push to)."""
        if not item.partner_id:
            return []
        return [(_("Push order"), url_for("HistoryOrderView.push", pk=item.id), "post", "btn-default", "can_push")]

    @expose("/push/<pk>", methods=["POST"])
    @has_access
    @permission_name("push")
    def push(self, pk):
        """订单推送: queue ChargeOrderInfo of a partner order to its partner again (CSRF-protected POST)."""
        from app.services import interconnect_push

        item = self.order_or_404(pk)
        try:
            interconnect_push.push_order(item.id)
        except interconnect_push.PushRefused as exc:
            self.datamodel.session.rollback()
            flash(str(exc), "warning")
        else:
            flash(_("Order %(no)s queued for pushing to the partner.", no=item.order_no), "success")
        return redirect(url_for("HistoryOrderView.show", pk=item.id))


class RemarkForm(DynamicForm):
    remark = TextAreaField(_l("Remark"), validators=[DataRequired(), Length(max=255)])


class SettleForm(RemarkForm):
    energy = DecimalField(_l("Energy (kWh)"), places=4, validators=[InputRequired(), NumberRange(min=0)])
    electricity_fee = DecimalField(_l("Electricity fee (yuan)"), places=4,
                                   validators=[InputRequired(), NumberRange(min=0)])
    service_fee = DecimalField(_l("Service fee (yuan)"), places=4, validators=[InputRequired(), NumberRange(min=0)])


class AbnormalQueue(BaseFilter):
    """The abnormal-order queue of :func:`app.services.order_admin.abnormal_queue`: abnormal, or
    flagged for review (e.g. a pile bill for an unknown serial)."""

    name = "Abnormal queue"
    arg_name = None

    def apply(self, query, value):
        return query.filter((self.model.status == "abnormal") | (self.model.needs_review.is_(True)))


class AbnormalOrderView(_ChargeOrderView):
    list_title = _l("Abnormal orders")
    base_filters = [["status", AbnormalQueue, None]]
    base_permissions = READ_ONLY + ["can_settle", "can_close", "can_reprice"]
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
        "discount_total",
        "pile_energy",
        "pile_amount",
        "paid_amount",
        "pay_status",
        "status",
        "needs_review",
        "abnormal_reason",
        "stop_reason",
    ]
    search_columns = [
        "order_no",
        "partner_order_no",
        "station",
        "channel",
        "status",
        "pay_status",
        "needs_review",
        "started_at",
    ]
    actions_spec = {
        "settle": (_l("Settle with figures"), "btn-primary"),
        "close": (_l("Close without charge"), "btn-warning"),
        "reprice": (_l("Re-price"), "btn-default"),
    }

    def order_actions(self, item):
        return [(label, url_for(f"AbnormalOrderView.{name}", pk=item.id), "get", css, f"can_{name}")
                for name, (label, css) in self.actions_spec.items()]

    def _order_action(self, pk, name, form_class, call):
        item = self.order_or_404(pk)
        form = form_class.refresh()
        if request.method == "GET" and name == "settle":
            form.energy.data = item.pile_energy if item.pile_energy is not None else item.energy
            form.electricity_fee.data = item.electricity_fee
            form.service_fee.data = item.service_fee
        if request.method == "POST" and form.validate():
            try:
                from app.services import order_admin

                call(order_admin, item, form)
            except ImportError:
                flash(_("This action is not available yet."), "warning")
            except ValueError as exc:  # refused by the service, with its reason
                self.datamodel.session.rollback()
                flash(str(exc), "danger")
            else:
                flash(_("Order %(no)s: %(action)s done.", no=item.order_no, action=self.actions_spec[name][0]),
                      "success")
                return redirect(url_for("HistoryOrderView.show", pk=item.id))
        return self.render_template(
            "orders/abnormal_action.html",
            title=self.actions_spec[name][0],
            order=item,
            form=form,
            back_url=url_for("AbnormalOrderView.show", pk=item.id),
        )

    @expose("/settle/<pk>", methods=["GET", "POST"])
    @has_access
    @permission_name("settle")
    def settle(self, pk):
        return self._order_action(pk, "settle", SettleForm, lambda svc, item, form: svc.settle_with_figures(
            item.id, g.user.id, form.energy.data, form.electricity_fee.data, form.service_fee.data,
            form.remark.data))

    @expose("/close/<pk>", methods=["GET", "POST"])
    @has_access
    @permission_name("close")
    def close(self, pk):
        return self._order_action(pk, "close", RemarkForm,
                            lambda svc, item, form: svc.close_without_charge(item.id, g.user.id, form.remark.data))

    @expose("/reprice/<pk>", methods=["GET", "POST"])
    @has_access
    @permission_name("reprice")
    def reprice(self, pk):
        return self._order_action(pk, "reprice", RemarkForm,
                            lambda svc, item, form: svc.reprice(item.id, g.user.id, form.remark.data))


OCCUPANCY_LABELS = labels(
    **PLACE_LABELS,
    order_no=_l("Occupancy order no."),
    charge_order=_l("Charging order no."),
    channel=_l("Order source"),
    **{"charge_order.order_no": _l("Charging order no.")},
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


class OccupancyOrderView(OrderScreenMixin, ExtraSearchMixin, CpmsModelView):
    """Manual §2.4.3 filters: 订单号, 占位订单号, 电站名称, 桩号, 设备名称, 手机号, 支付方式, 支付状态,
    订单来源, 占位时间."""

    datamodel = CappedScopedSQLAInterface(OccupancyOrder)
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
    "CappedScopedSQLAInterface",
    "OrderScreenMixin",
    "ExtraSearchMixin",
    "related_filter",
    "StatusIn",
    "StatusNotIn",
    "LocalFrom",
    "LocalTo",
    "ORDER_LABELS",
    "OCCUPANCY_LABELS",
    "ORDER_EXTRA_SEARCH",
    "OCCUPANCY_EXTRA_SEARCH",
    "READ_ONLY",
]
