"""首页 dashboard within the caller's data scope (电站监控 is app/views/monitoring.py)."""

from datetime import date, datetime
from decimal import Decimal

from flask import jsonify, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.security.decorators import has_access_api, permission_name
from flask_babel import lazy_gettext as _l

from app.services import dashboard, monitor
from app.services.clock import format_local
from app.services.fault_codes import meaning
from app.services.money import q_hundredth
from app.views.formatters import display_text
from app.views.orders import echarts_available

# 待办事项: each to-do (app.services.dashboard.TODO) links to its list filtered the same way
# (FAB's ``_flt_3_<column>`` is "equal to" on a text column; the abnormal queue is a list of its own)
TODO_VIEWS = {
    "invoices": ("InvoiceView", _l("Invoices to issue")),
    "fault_reports": ("FaultReportView", _l("Fault reports to handle")),
    "feedback": ("FeedbackView", _l("Feedback to handle")),
    "alarms": ("AlarmView", _l("Unhandled alarms")),
    "abnormal_orders": ("AbnormalOrderView", _l("Abnormal orders")),
}
DASHBOARD_REFRESH_SECONDS = 5


def todo_links() -> dict[str, str]:
    links = {}
    for todo in dashboard.TODO:
        view, _ = TODO_VIEWS[todo.key]
        args = {f"_flt_3_{todo.column}": todo.value} if todo.column else {}
        links[todo.key] = url_for(f"{view}.list", **args)
    return links


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return format_local(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _shown(row: dict) -> dict:
    """A chart row with its figures as shown (0.01)."""
    return {k: q_hundredth(v) if isinstance(v, Decimal) else v for k, v in row.items()}


def _describe(alarms: list[dict]) -> None:
    """Each alarm's description: the fault code's meaning (YKC table), in the current language."""
    for alarm in alarms:
        alarm["description"] = meaning(alarm["fault_code"],
                                       display_text(alarm["description"]) if alarm["description"] else None)


class DashboardView(BaseView):
    route_base = "/dashboard"
    default_view = "list"

    @expose("/")
    @has_access
    def list(self):
        data = dashboard.page()
        _describe(data["alarms"])
        return self.render_template(
            "cpms/dashboard.html",
            data=data,
            chart=_jsonable({"trend": [_shown(row) for row in data["trend"]], "terminal": data["terminal"],
                             "channels": [_shown(row) for row in data["channels"]]}),
            todo_views=TODO_VIEWS,
            todo_links=todo_links(),
            stations=monitor.station_counts(),
            echarts=echarts_available(),
            data_url=url_for("DashboardView.data"),
            refresh_seconds=DASHBOARD_REFRESH_SECONDS,
        )

    @expose("/data/")
    @has_access_api
    @permission_name("list")
    def data(self):
        """JSON for the page's refresh every few seconds: 数据概况, 待办事项, 电站数据, 终端状态 (live,
        Redis) and the newest unhandled alarms, all within the caller's scope."""
        live = dashboard.live()
        _describe(live["alarms"])
        return jsonify(dict(_jsonable(live), interval=DASHBOARD_REFRESH_SECONDS))
