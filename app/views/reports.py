"""统计分析: station report and operation report from DailyStationStat (SQL GROUP BY, scoped).

Charts (ECharts) come later; these pages show the aggregate tables and export them to Excel.
"""

from flask import flash, request
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.services import excel, reports


def _filters():
    start, end, error = reports.parse_range(request.args.get("start"), request.args.get("end"))
    if error:
        flash(_("Dates must look like 2024-03-01; showing the last 30 days."), "warning")
    station_id = request.args.get("station", type=int)
    return start, end, station_id


class _ReportView(BaseView):
    template = None
    title = None
    columns: list = []
    default_view = "list"

    def rows(self, start, end, station_id):
        raise NotImplementedError

    def _context(self):
        start, end, station_id = _filters()
        rows = self.rows(start, end, station_id)
        return {
            "start": start,
            "end": end,
            "station_id": station_id,
            "rows": rows,
            "totals": reports.totals(rows),
            "columns": self.columns,
            "stations": reports.station_choices(),
            "title": self.title,
        }

    @expose("/")
    @has_access
    def list(self):
        return self.render_template("cpms/report.html", **self._context())

    @expose("/export/")
    @has_access
    def export(self):
        ctx = self._context()
        header = [str(label) for _key, label in self.columns]
        body = ([r.get(key) for key, _label in self.columns] for r in ctx["rows"])
        name = f"{self.__class__.__name__.removesuffix('View').lower()}_{ctx['start']}_{ctx['end']}.xlsx"
        return excel.send_rows(name, str(self.title), header, body)


AMOUNT_COLUMNS = [
    ("order_count", _l("Order count")),
    ("member_count", _l("Member-days")),
    ("energy", _l("Energy (kWh)")),
    ("duration_hours", _l("Charging hours")),
    ("electricity_fee", _l("Electricity fee (yuan)")),
    ("service_fee", _l("Service fee (yuan)")),
    ("total_amount", _l("Order amount (yuan)")),
    ("discount_amount", _l("Discount (yuan)")),
    ("paid_amount", _l("Paid (yuan)")),
    ("occupancy_amount", _l("Occupancy fees (yuan)")),
]


class StationReportView(_ReportView):
    route_base = "/stationreport"
    title = _l("Station report")
    columns = (
        [
            ("station_code", _l("Station no.")),
            ("station_name", _l("Station name")),
            ("connector_count", _l("Connectors")),
        ]
        + AMOUNT_COLUMNS
        + [("utilisation", _l("Utilisation (%)"))]
    )

    def rows(self, start, end, station_id):
        return reports.station_summary(start, end, station_id)


class OperationReportView(_ReportView):
    route_base = "/operationreport"
    title = _l("Operation report")
    columns = (
        [("day", _l("Day")), ("station_count", _l("Stations")), ("connector_count", _l("Connectors"))]
        + AMOUNT_COLUMNS
        + [("utilisation", _l("Utilisation (%)"))]
    )

    def rows(self, start, end, station_id):
        return reports.daily_trend(start, end, station_id)
