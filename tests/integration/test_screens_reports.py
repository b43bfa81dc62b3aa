"""Statistics and home pages: station / operation reports with filters and export, dashboard, monitor."""

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from app.models import Connector, DailyStationStat, Station

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
STAFF_PASSWORD = "staff-pass-1"


def _today():
    """Today where the reports count days: the operator's timezone (Beijing), not the machine's UTC date
    (between 16:00 and 24:00 UTC they differ)."""
    from app.services.clock import local_today

    return local_today()


def _db():
    from app.extensions import db

    return db


@pytest.fixture(scope="module")
def stats(app):
    """Two days of figures for the first station of each demo operator, and nothing else in the last 60
    days (orders other tests settled there on earlier days are aggregated too, the browser dashboard's
    seeded days for one; these tests read the station's own two days)."""
    db = _db()
    with app.app_context():
        stations = {}
        for st in db.session.query(Station).order_by(Station.id):
            stations.setdefault(st.operator_id, st)
        today = _today()
        out = []
        for st in stations.values():
            for d in (today - timedelta(days=1), today):
                # set the figures even where the aggregation job already wrote the row of that day
                row = db.session.query(DailyStationStat).filter_by(station_id=st.id, day=d).first()
                if row is None:
                    row = DailyStationStat(operator_id=st.operator_id, station_id=st.id, day=d)
                    db.session.add(row)
                for key, value in dict(order_count=3, member_count=2, energy=Decimal("40.5"),
                                       electricity_fee=Decimal("30"), service_fee=Decimal("10"),
                                       total_amount=Decimal("40"), paid_amount=Decimal("40"), duration_seconds=7200,
                                       connector_count=4, available_seconds=4 * 86400,
                                       utilisation=Decimal("0.0208")).items():
                    setattr(row, key, value)
            db.session.query(DailyStationStat).filter(
                DailyStationStat.station_id == st.id, DailyStationStat.day >= today - timedelta(days=60),
                DailyStationStat.day < today - timedelta(days=1)).delete(synchronize_session=False)
            out.append({"id": st.id, "code": st.code, "name": st.name, "operator_id": st.operator_id})
        db.session.commit()
        return out


@pytest.mark.parametrize("url", ["/stationreport/", "/operationreport/", "/dashboard/", "/stationmonitor/"])
def test_pages_render(admin_client, stats, url):
    rv = admin_client.get(url)
    assert rv.status_code == 200, rv.get_data(as_text=True)[:500]


def test_station_report_filters(admin_client, stats):
    a, b = stats[0], stats[1]
    html = admin_client.get("/stationreport/").get_data(as_text=True)
    assert a["code"] in html and b["code"] in html
    html = admin_client.get(f"/stationreport/?station={a['id']}").get_data(as_text=True)
    assert f"<td>{a['code']}</td>" in html and f"<td>{b['code']}</td>" not in html
    assert "<td>6</td>" in html  # two days x 3 orders
    old = (_today() - timedelta(days=400)).isoformat()
    html = admin_client.get(f"/stationreport/?start={old}&end={old}").get_data(as_text=True)
    assert "No data for these filters." in html
    html = admin_client.get("/stationreport/?start=yesterday").get_data(as_text=True)
    assert "Dates must look like 2024-03-01" in html


def test_operation_report_per_day(admin_client, stats):
    html = admin_client.get(f"/operationreport/?station={stats[0]['id']}").get_data(as_text=True)
    assert f"<td>{_today().isoformat()}</td>" in html


def test_report_scope(client, login, stats):
    login("staff_a", STAFF_PASSWORD)
    html = client.get("/stationreport/").get_data(as_text=True)
    assert f"<td>{stats[0]['code']}</td>" in html and f"<td>{stats[1]['code']}</td>" not in html


def test_report_export(admin_client, stats):
    rv = admin_client.get(f"/stationreport/export/?station={stats[0]['id']}")
    assert rv.status_code == 200 and rv.content_type.startswith(XLSX)
    rows = list(load_workbook(io.BytesIO(rv.data)).worksheets[0].iter_rows(values_only=True))
    assert rows[0][0] == "Station no." and rows[1][0] == stats[0]["code"] and rows[1][3] == 6
    rv = admin_client.get("/operationreport/export/")
    assert rv.content_type.startswith(XLSX)
    assert len(list(load_workbook(io.BytesIO(rv.data)).worksheets[0].iter_rows())) >= 3


def test_monitor_filters_and_links(admin_client, app):
    with app.app_context():
        conn = _db().session.query(Connector).order_by(Connector.id).first()
        code, cid, total = conn.code, conn.id, _db().session.query(Connector).count()
    html = admin_client.get("/stationmonitor/").get_data(as_text=True)
    assert f'data-key="all">{total}<' in html
    html = admin_client.get(f"/stationmonitor/?connector_code={code}").get_data(as_text=True)
    assert 'data-key="all">1<' in html and f'data-connector="{code}"' in html
    assert f"/historyorderview/list/?_flt_0_connector_code={code}" in html
    assert f"/statuslogview/list/?_flt_0_connector={cid}" in html
    assert admin_client.get(f"/historyorderview/list/?_flt_0_connector_code={code}").status_code == 200
    assert admin_client.get(f"/statuslogview/list/?_flt_0_connector={cid}").status_code == 200
    html = admin_client.get("/stationmonitor/?pile_code=nothing-like-this").get_data(as_text=True)
    assert "No connectors match these filters." in html


def test_dashboard_scoped(client, login, stats):
    login("staff_a", STAFF_PASSWORD)
    html = client.get("/dashboard/").get_data(as_text=True)
    assert f"<td>{stats[0]['code']}</td>" in html and f"<td>{stats[1]['code']}</td>" not in html


def _cells(html):
    """The body cells of the report table, row by row (as shown)."""
    import re

    body = html.split('<table class="table table-bordered table-condensed table-hover cpms-report">')[1]
    body = body.split("<tbody>")[1].split("</tbody>")[0]
    return [re.findall(r"<td>(.*?)</td>", tr) for tr in body.split("</tr>") if "<td>" in tr]


def _sheet(rv):
    assert rv.status_code == 200 and rv.content_type.startswith(XLSX)
    return list(load_workbook(io.BytesIO(rv.data)).worksheets[0].iter_rows(values_only=True))


def _same(value):
    """A cell (shown text or Excel value) as something comparable: numbers by value, text as text."""
    if value is None or value == "":
        return ""
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return str(value)


@pytest.mark.parametrize("url", [
    "/stationreport/?period=summary", "/stationreport/?period=day", "/stationreport/?period=month",
    "/operationreport/?period=day", "/operationreport/?period=month"])
def test_export_equals_the_screen(admin_client, stats, url):
    """Same filters, same rows, same values: the Excel file is the table on the screen."""
    url = f"{url}&station={stats[0]['id']}"
    screen = _cells(admin_client.get(url).get_data(as_text=True))
    sheet = _sheet(admin_client.get(url.replace("report/?", "report/export/?")))
    assert screen and len(sheet) == len(screen) + 1
    assert [[_same(v) for v in row] for row in sheet[1:]] == [[_same(v) for v in row] for row in screen]


def test_period_modes(admin_client, stats):
    today = _today()
    html = admin_client.get(f"/stationreport/?period=day&station={stats[0]['id']}").get_data(as_text=True)
    rows = [r for r in _cells(html) if r[4] != "0"]      # days of other tests' recomputes are zero rows
    assert [r[2] for r in rows] == [(today - timedelta(days=1)).isoformat(), today.isoformat()]
    assert all(r[4] == "3" for r in rows)                 # orders per day
    html = admin_client.get(f"/operationreport/?period=month&station={stats[0]['id']}"
                            f"&start={today.isoformat()}&end={today.isoformat()}").get_data(as_text=True)
    assert _cells(html)[0][0] == today.strftime("%Y-%m")


def test_charts_are_drawn_from_the_vendored_library(admin_client, stats):
    html = admin_client.get(f"/operationreport/?station={stats[0]['id']}").get_data(as_text=True)
    for chart in ("cpms-report-trend", "cpms-report-levels", "cpms-report-utilisation"):
        assert f'id="{chart}"' in html
    assert "/static/vendor/echarts.min.js" in html and "cdn" not in html.lower()
    assert '<script nonce="' in html and "<script>" not in html
    import json

    data = json.loads(html.split("var d = ", 1)[1].split(";\n", 1)[0])
    today = _today()
    assert len(data["periods"]) == 30 and data["periods"][-1] == today.isoformat()   # every day of the range
    assert data["order_count"][-2:] == [3, 3] and sum(data["order_count"]) == 6
    assert data["energy"][-1] == 40.5 and data["utilisation"][-1] == 2.08


def test_operator_filter(admin_client, stats):
    a, b = stats[0], stats[1]
    html = admin_client.get(f"/stationreport/?operator={b['operator_id']}").get_data(as_text=True)
    assert f"<td>{b['code']}</td>" in html and f"<td>{a['code']}</td>" not in html


def test_report_scope_of_operator_b(client, login, stats):
    """Staff of operator B never see A's figures, whatever the filters ask for."""
    a, b = stats[0], stats[1]
    login("staff_b", STAFF_PASSWORD)
    for url in ("/stationreport/", f"/stationreport/?station={a['id']}", f"/stationreport/?operator={a['operator_id']}",
                f"/operationreport/?station={a['id']}"):
        html = client.get(url).get_data(as_text=True)
        assert f"<td>{a['code']}</td>" not in html
    html = client.get("/stationreport/").get_data(as_text=True)
    assert f"<td>{b['code']}</td>" in html
    assert _sheet(client.get(f"/operationreport/export/?station={a['id']}"))[1:] == []
