"""统计分析: 电站报表 and 运营报表 from the daily statistics (``app/services/reports.py``, scoped).

Both pages: filters (date range, operator, station, channel, by day / by month), ECharts charts from the
vendored ``static/vendor/echarts.min.js`` (trend, energy by tariff period, utilisation), a table with a
totals row, and an Excel export of exactly the table on the screen (same filters, same values).
"""

from flask import flash, request
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.services import excel, reports
from app.views.orders import echarts_available

PERIOD_LABELS = {"summary": _l("Whole range"), "day": _l("By day"), "month": _l("By month")}


class _ReportView(BaseView):
    title = None
    columns: list = []
    periods = ("day", "month")
    default_period = "day"
    default_view = "list"

    def rows(self, f):
        raise NotImplementedError

    def table_columns(self, f):
        return self.columns

    def chart_rows(self, chart_filters, rows):
        return reports.period_rows(chart_filters)

    def _context(self):
        f = reports.parse_filters(request.args, self.default_period, self.periods)
        if f.error:
            flash(_("Dates must look like 2024-03-01; showing the last 30 days."), "warning")
        rows = self.rows(f)
        chart_filters = reports.Filters(f.start, f.end, f.station_id, f.operator_id, f.channel_id,
                                        "month" if f.period == "month" else "day")
        operators = reports.operator_choices()
        return {
            "f": f,
            "start": f.start,
            "end": f.end,
            "station_id": f.station_id,
            "rows": rows,
            "totals": reports.totals(rows),
            "columns": self.table_columns(f),
            "stations": reports.station_choices(f.operator_id),
            "operators": operators if len(operators) > 1 else [],
            "channels": reports.channel_choices(f.operator_id),
            "periods": [(p, PERIOD_LABELS[p]) for p in self.periods],
            "chart": reports.chart_data(self.chart_rows(chart_filters, rows), chart_filters),
            "echarts": echarts_available(),
            "title": self.title,
            "fmt": reports.fmt,
            "labels": dict(AMOUNT_COLUMNS),
        }

    @expose("/")
    @has_access
    def list(self):
        return self.render_template("cpms/report.html", **self._context())

    @expose("/export/")
    @has_access
    def export(self):
        ctx = self._context()
        columns = ctx["columns"]
        header = [str(label) for _key, label in columns]
        body = ([r.get(key) for key, _label in columns] for r in ctx["rows"])
        name = f"{self.__class__.__name__.removesuffix('View').lower()}_{ctx['start']}_{ctx['end']}.xlsx"
        return excel.send_rows(name, str(self.title), header, body)


AMOUNT_COLUMNS = [
    ("order_count", _l("Order count")),
    ("member_count", _l("Member-days")),
    ("energy", _l("Energy (kWh)")),
    ("energy_sharp", _l("Sharp energy (kWh)")),
    ("energy_peak", _l("Peak energy (kWh)")),
    ("energy_flat", _l("Flat energy (kWh)")),
    ("energy_valley", _l("Valley energy (kWh)")),
    ("duration_hours", _l("Charging hours")),
    ("electricity_fee", _l("Electricity fee (yuan)")),
    ("service_fee", _l("Service fee (yuan)")),
    ("total_amount", _l("Order amount (yuan)")),
    ("discount_amount", _l("Discount (yuan)")),
    ("paid_amount", _l("Paid (yuan)")),
    ("occupancy_amount", _l("Occupancy fees (yuan)")),
    ("failed_count", _l("Start failures")),
    ("abnormal_count", _l("Abnormal orders")),
    ("utilisation", _l("Utilisation (%)")),
]


class StationReportView(_ReportView):
    """电站报表: per station (ports, energy trend, order overview and detail)."""

    route_base = "/stationreport"
    title = _l("Station report")
    periods = ("summary", "day", "month")
    default_period = "summary"
    columns = [
        ("station_code", _l("Station no.")),
        ("station_name", _l("Station name")),
        ("connector_count", _l("Connectors")),
    ] + AMOUNT_COLUMNS

    def table_columns(self, f):
        if f.period == "summary":
            return self.columns
        label = _l("Month") if f.period == "month" else _l("Day")
        return self.columns[:2] + [("period", label)] + self.columns[2:]

    def rows(self, f):
        return reports.station_rows(f)


class OperationReportView(_ReportView):
    """运营报表: per day or month over the stations in the filters (energy, orders, utilisation, trend)."""

    route_base = "/operationreport"
    title = _l("Operation report")
    columns = [("period", _l("Day")), ("station_count", _l("Stations")),
               ("connector_count", _l("Connectors"))] + AMOUNT_COLUMNS

    def table_columns(self, f):
        if f.period == "month":
            return [("period", _l("Month"))] + self.columns[1:]
        return self.columns

    def rows(self, f):
        return reports.period_rows(f)

    def chart_rows(self, chart_filters, rows):
        return rows   # the table is the chart's series
