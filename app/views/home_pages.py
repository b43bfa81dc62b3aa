"""首页 dashboard and 电站监控 (station monitor), both within the caller's data scope."""

from flask import request
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import lazy_gettext as _l

from app.models.pile import CONNECTOR_STATUS
from app.services import dashboard, monitor, reports

MONITOR_PAGE_SIZE = 48


class DashboardView(BaseView):
    route_base = "/dashboard"
    default_view = "list"

    @expose("/")
    @has_access
    def list(self):
        return self.render_template(
            "cpms/dashboard.html",
            overview=dashboard.overview(),
            stations=monitor.station_counts(),
            status_labels=dict(CONNECTOR_STATUS),
        )


class StationMonitorView(BaseView):
    route_base = "/stationmonitor"
    default_view = "list"
    status_counters = [
        ("all", _l("All")),
        ("charging", _l("Charging")),
        ("occupied", _l("Occupied")),
        ("idle", _l("Idle")),
        ("offline", _l("Offline")),
        ("fault", _l("Fault")),
        ("other", _l("Other")),
    ]

    @expose("/")
    @has_access
    def list(self):
        args = request.args
        filters = {
            "station_id": args.get("station", type=int),
            "pile_name": args.get("pile_name") or None,
            "pile_code": args.get("pile_code") or None,
            "connector_code": args.get("connector_code") or None,
        }
        page = max(args.get("page", 0, type=int), 0)
        cards, total = monitor.connectors(page=page, page_size=MONITOR_PAGE_SIZE, **filters)
        pages = (total + MONITOR_PAGE_SIZE - 1) // MONITOR_PAGE_SIZE
        return self.render_template(
            "cpms/monitor.html",
            summary=monitor.summary(**filters),
            cards=cards,
            total=total,
            page=page,
            pages=pages,
            filters=filters,
            stations=reports.station_choices(),
            counters=self.status_counters,
            status_labels=dict(CONNECTOR_STATUS),
        )
