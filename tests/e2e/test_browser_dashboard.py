"""The operator's daily screens in a browser (issue 12, done-when): headless Chromium (Debian's package,
driven by Playwright) logs in to a real web process and opens 首页, 电站监控, 电站报表 and 运营报表.

- Every chart rendered: its ECharts instance exists and its option data equals the figures of the
  seeded data — settled orders made through the real pricing and settlement code, aggregated by the
  daily statistics job — computed here directly from the orders (SQL), not from the report services.
- A simulated pile (``python -m app.gateway.simulator``) logging in to a real gateway process changes
  its gun's card on the monitoring page within 5 s, and its local charge shows as charging.
- No Content-Security-Policy violation and no script error on any of these pages.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.gateway.registry import Registry
from app.models import ChargeOrder, Connector, OrderPeriod
from app.services import clock, stats
from app.services.live_state import live_guns
from app.services.money import q_hundredth
from tests.conftest import ADMIN_PASSWORD
from tests.e2e.test_browser import CHROMIUM, CSP_LISTENER, _launch, server  # noqa: F401 (fixture)
from tests.integration.gateway.conftest import ROOT, wait_until
from tests.integration.orders.test_settlement import default_samples, make_order, new_member

SEEDED = {3: 2, 1: 1}          # days ago -> settled orders seeded that local day (09:30-10:30, 20 kWh each)


@pytest.fixture(scope="module")
def seeded(app, gw_station):  # noqa: F811
    """Settled orders on two past local days, then the daily statistics of the last 30 days (the
    gateway test station exists already, so its connectors count in the available gun time)."""
    from app.services.settlement import settle_order

    today = clock.local_today()
    with app.app_context():
        for days_ago, count in SEEDED.items():
            for _ in range(count):
                oid = make_order(new_member("100"), samples=default_samples((today - timedelta(days=days_ago))
                                                                            .isoformat()))
                assert db.session.get(ChargeOrder, oid).status == "finished"
                settle_order(oid)
        stats.recompute(today - timedelta(days=31), today)
        station_id = db.session.get(ChargeOrder, oid).station_id
    return {"today": today, "station_id": station_id}


def expected_by_day(app, start, end, station_id=None):
    """{local day: figures} of the settled orders that ended on local days start..end, straight from the
    orders: energy, amount, service fee, energy by tariff period (rounded as shown: 0.01)."""
    lo, _ = clock.day_bounds_utc(start)
    _, hi = clock.day_bounds_utc(end)
    with app.app_context():
        q = select(ChargeOrder).where(ChargeOrder.status == "settled", ChargeOrder.ended_at >= lo,
                                      ChargeOrder.ended_at < hi)
        if station_id is not None:
            q = q.where(ChargeOrder.station_id == station_id)
        days = defaultdict(lambda: defaultdict(Decimal))
        for order in db.session.scalars(q):
            day = days[clock.local_date(order.ended_at)]
            day["energy"] += order.energy
            day["total_amount"] += order.total_amount
            day["service_fee"] += order.service_fee
            day["duration_seconds"] += order.duration_seconds or 0
            for period in db.session.scalars(select(OrderPeriod).where(OrderPeriod.order_id == order.id)):
                day[f"energy_{period.level}"] += period.energy
        connectors = db.session.scalar(select(func.count(Connector.id)).where(
            Connector.station_id == station_id) if station_id is not None else select(func.count(Connector.id)))
    out = {}
    day = start
    while day <= end:
        figures = days.get(day, {})
        row = {k: float(q_hundredth(figures.get(k, Decimal(0))))
               for k in ("energy", "total_amount", "service_fee", "energy_sharp", "energy_peak", "energy_flat",
                         "energy_valley")}
        row["utilisation"] = float(q_hundredth(Decimal(figures.get("duration_seconds", 0)) * 100
                                               / (connectors * 86400)))
        out[day.isoformat()] = row
        day += timedelta(days=1)
    return out


def chart_option(page, element_id):
    """The option of the ECharts instance drawn in ``#element_id`` (None: no chart there)."""
    return page.evaluate("""(id) => {
        const el = document.getElementById(id);
        const chart = el && window.echarts && echarts.getInstanceByDom(el);
        if (!chart) return null;
        const o = chart.getOption();
        return {x: (o.xAxis || []).map(a => a.data), series: o.series.map(s => ({name: s.name, data: s.data}))};
    }""", element_id)


def values(series_data):
    """ECharts series data -> numbers (a pie's {name, value} items -> value)."""
    return [item["value"] if isinstance(item, dict) else item for item in series_data]


@pytest.fixture(scope="module")
def browser_page(server):  # noqa: F811
    assert CHROMIUM, "Debian's chromium is required for browser tests (apt-get install chromium)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = _launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.add_init_script(CSP_LISTENER)
        problems = []
        page.on("console", lambda msg: msg.type == "error" and not (msg.location.get("url") or "").endswith(
            "/favicon.ico") and problems.append(f"{page.url}: console: {msg.text}"))
        page.on("pageerror", lambda exc: problems.append(f"{page.url}: page error: {exc}"))
        page.goto(server + "/login/")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", ADMIN_PASSWORD)
        page.click("input[type=submit], button[type=submit]")
        page.wait_for_load_state()
        page.problems = problems
        yield page
        browser.close()


def open_page(page, url):
    rv = page.goto(url)
    assert rv.status == 200, (url, rv.status)
    page.wait_for_load_state("networkidle")


def assert_clean(page):
    problems = page.problems + [f"{page.url}: CSP: {v}" for v in page.evaluate("window.__cspViolations")]
    assert not problems, "\n".join(problems)


def test_dashboard_charts_show_the_seeded_figures(app, server, browser_page, seeded):  # noqa: F811
    page = browser_page
    open_page(page, server + "/dashboard/")
    today = seeded["today"]
    trend = chart_option(page, "cpms-trend-chart")
    assert trend is not None, "the 30-day trend chart was not drawn"
    expected = expected_by_day(app, today - timedelta(days=29), today)
    assert trend["x"][0] == list(expected)
    energy, amount, service = (values(s["data"]) for s in trend["series"])
    assert energy == [row["energy"] for row in expected.values()]
    assert amount == [row["total_amount"] for row in expected.values()]
    assert service == [row["service_fee"] for row in expected.values()]
    for days_ago, count in SEEDED.items():        # the seeded days are there, 20 kWh per order
        assert expected[(today - timedelta(days=days_ago)).isoformat()]["energy"] >= 20 * count

    terminal = chart_option(page, "cpms-terminal-chart")
    assert terminal is not None, "the terminal status chart was not drawn"
    with app.app_context():
        connectors = db.session.scalar(select(func.count(Connector.id)))
    assert sum(values(terminal["series"][0]["data"])) == connectors      # every gun in one state
    assert_clean(page)


@pytest.mark.parametrize("report", ["stationreport", "operationreport"])
def test_report_charts_show_the_seeded_figures(app, server, browser_page, seeded, report):  # noqa: F811
    page = browser_page
    today = seeded["today"]
    start, end = today - timedelta(days=6), today - timedelta(days=1)
    args = {"start": start.isoformat(), "end": end.isoformat(), "period": "day"}
    station_id = seeded["station_id"] if report == "stationreport" else None
    if station_id is not None:
        args["station"] = station_id
    open_page(page, f"{server}/{report}/?{urlencode(args)}")
    expected = expected_by_day(app, start, end, station_id)
    assert sum(row["energy"] for row in expected.values()) >= 20 * sum(SEEDED.values())

    trend = chart_option(page, "cpms-report-trend")
    assert trend is not None, f"{report}: the trend chart was not drawn"
    assert trend["x"][0] == list(expected)
    energy, amount, service = (values(s["data"]) for s in trend["series"])
    assert energy == [row["energy"] for row in expected.values()]
    assert amount == [row["total_amount"] for row in expected.values()]
    assert service == [row["service_fee"] for row in expected.values()]

    levels = chart_option(page, "cpms-report-levels")
    assert levels is not None, f"{report}: the tariff-period chart was not drawn"
    assert levels["x"][0] == list(expected)
    stacks = [values(s["data"]) for s in levels["series"]]
    assert stacks == [[row[f"energy_{lv}"] for row in expected.values()] for lv in ("sharp", "peak", "flat", "valley")]

    utilisation = chart_option(page, "cpms-report-utilisation")
    assert utilisation is not None, f"{report}: the utilisation chart was not drawn"
    assert values(utilisation["series"][0]["data"]) == [row["utilisation"] for row in expected.values()]
    assert_clean(page)


def test_monitoring_shows_a_simulated_pile_within_5_seconds(app, server, browser_page, gateway, piles,  # noqa: F811
                                                              redis, gw_station):  # noqa: F811
    page = browser_page
    code = piles()
    gun = f"{code}01"
    open_page(page, f"{server}/stationmonitor/?{urlencode({'station': gw_station['station_id'], 'pile_code': code})}")
    card = f'.cpms-connector[data-connector="{gun}"]'
    assert page.get_attribute(card, "data-status") == "offline"
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.gateway.simulator", "--port", str(gateway.port), "--codes", code, "--guns", "2",
         "--heartbeat", "1", "--realtime-charging", "0.5", "--realtime-idle", "5", "--charging-ratio", "1",
         "--speed", "60", "--duration", "120", "--progress", "0"],
        cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        registry = Registry(redis)
        wait_until(lambda: registry.owner(code), timeout=20, message="simulated pile online")
        wait_until(lambda: live_guns(redis, [gun])[gun].get("status") not in (None, "offline"), timeout=20,
                   message="the simulated gun's live state")
        # the page polls the live state: the card leaves "offline" within 5 s
        page.wait_for_function(f"""() => {{
            const el = document.querySelector('{card}');
            return el && el.getAttribute('data-status') !== 'offline';
        }}""", timeout=5000)
        wait_until(lambda: live_guns(redis, [gun])[gun].get("status") == "charging", timeout=20,
                   message="the simulated gun charging")
        page.wait_for_function(f"""() => {{
            const el = document.querySelector('{card}');
            return el && el.getAttribute('data-status') === 'charging'
                && el.querySelector('[data-live="power"]').textContent.trim() !== '-';
        }}""", timeout=5000)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert_clean(page)
