"""Dashboard and station report on PostgreSQL with 1,000,000 settled orders (issue 12, done-when).

The data set is a timing fixture, not demo data: the demo operators and stations (``flask setup
--demo``), then 1,000,000 settled orders spread over the demo stations' guns over the last ~90 days,
each with one tariff-period row (``ev_order_period``, level by the local hour of its start), bulk
inserted with SQL ``generate_series`` into its own database (default ``cpms_bench_reports``, reused
unless ``--regenerate``). Then:

1. ``app.services.stats.recompute`` over the 90 local days (the daily statistics the dashboard and the
   reports read; its time is reported);
2. through the Flask test client (the full Flask/FAB stack, real database, real Redis), logged in as
   the platform admin and as a read-only operator staff user (``viewer_a``, scope = operator A):
   the home dashboard page (``/dashboard/``), its JSON refresh (``/dashboard/data/``) and a month's
   电站报表 (the previous calendar month, all stations in scope: the default one row per station, and
   one row per station and day). Each: p50/p95/max of ``--requests`` requests after 2 warm-up
   requests; target p95 < 500 ms.

Usage:
  .venv/bin/python bench/reports_1m.py                  # generate if missing, recompute, measure
  .venv/bin/python bench/reports_1m.py --regenerate     # drop and rebuild the database
Options: --database-url postgresql+psycopg://postgres@127.0.0.1:5432/cpms_bench_reports --orders 1000000
         --days 90 --requests 30 --redis-url redis://127.0.0.1:6379/10 --output bench/results/reports_1m.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.history_orders import ADMIN_PASSWORD, build_app, ensure_database, log  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/cpms_bench_reports"
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "reports_1m.json"
TARGET_MS = 500
PREFIX = "R"                 # serial prefix of the generated orders
# the demo's time-of-use template (local hours): level, electricity price, service price
TOU = [(8, "valley", "0.31000", "0.50000"), (10, "flat", "0.62000", "0.60000"), (14, "peak", "1.05000", "0.70000"),
       (17, "flat", "0.62000", "0.60000"), (19, "sharp", "1.25000", "0.80000"), (21, "peak", "1.05000", "0.70000"),
       (24, "flat", "0.62000", "0.60000")]


def _by_hour(hour_expr, pick):
    """SQL CASE over the local hour: ``pick(level, electricity, service)`` of its tariff period."""
    whens = " ".join(f"WHEN {hour_expr} < {end} THEN {pick(level, e, s)}" for end, level, e, s in TOU)
    return f"(CASE {whens} END)"


HOUR = "extract(hour FROM y.started + interval '8 hours')"
ORDERS_SQL = f"""
CREATE TEMP TABLE bc AS
  SELECT row_number() OVER (ORDER BY c.id) AS rn, c.id AS connector_id, c.pile_id, c.station_id, c.operator_id,
         s.price_template_id
  FROM ev_connector c JOIN ev_station s ON s.id = c.station_id;
CREATE TEMP TABLE bm AS
  SELECT row_number() OVER (PARTITION BY operator_id ORDER BY id) AS rn, id, operator_id,
         count(*) OVER (PARTITION BY operator_id) AS cnt
  FROM ev_member;
CREATE TEMP TABLE bch AS
  SELECT DISTINCT ON (operator_id) operator_id, id FROM ev_channel ORDER BY operator_id, id;
INSERT INTO ev_charge_order (
  order_no, serial, operator_id, station_id, pile_id, connector_id, member_id, channel_id, price_template_id,
  start_method, status, pay_status, pay_type, needs_review, start_requested_at, started_at, ended_at,
  settled_at, paid_at, duration_seconds, start_soc, end_soc, energy, electricity_fee, service_fee,
  total_amount, discount_electricity, discount_service, discount_total, payable_amount, paid_amount,
  refunded_amount, stop_reason, plate_no, created_at, updated_at)
SELECT
  to_char(x.started, 'YYMMDD') || lpad(x.g::text, 7, '0'), '{PREFIX}' || lpad(x.g::text, 31, '0'),
  c.operator_id, c.station_id, c.pile_id, c.connector_id, m.id, ch.id, c.price_template_id,
  CASE WHEN x.g % 10 = 0 THEN 'card' ELSE 'app' END, 'settled', 'paid', 'wallet', false,
  x.started - interval '8 seconds', x.started, x.started + make_interval(secs => x.dur),
  x.started + make_interval(secs => x.dur + 30), x.started + make_interval(secs => x.dur + 30),
  x.dur, 20 + x.g % 30, LEAST(100, 50 + x.g % 50), x.kwh,
  round(x.kwh * x.eprice, 4), round(x.kwh * x.sprice, 4), round(x.kwh * (x.eprice + x.sprice), 4),
  0, 0, 0, round(x.kwh * (x.eprice + x.sprice), 4), round(x.kwh * (x.eprice + x.sprice), 4), 0,
  'BMS stop', '苏A' || lpad((x.g % 100000)::text, 5, '0'),
  x.started - interval '8 seconds', x.started + make_interval(secs => x.dur + 30)
FROM (
  SELECT y.*, {_by_hour(HOUR, lambda lv, e, s: e)}::numeric AS eprice,
         {_by_hour(HOUR, lambda lv, e, s: s)}::numeric AS sprice
  FROM (
    SELECT g, (now() AT TIME ZONE 'utc') - make_interval(secs => g * :spacing + 600) AS started,
           120 + (g * 7919) % 600 AS dur,
           round(((120 + (g * 7919) % 600) / 3600.0 * 60)::numeric, 4) AS kwh
    FROM generate_series(1::bigint, :n) AS g
  ) y
) x
JOIN bc c ON c.rn = (x.g % (SELECT count(*) FROM bc)) + 1
JOIN bm m ON m.operator_id = c.operator_id AND m.rn = (x.g / 7) % m.cnt + 1
JOIN bch ch ON ch.operator_id = c.operator_id;
INSERT INTO ev_order_period (order_id, seq, start_at, end_at, level, electricity_price, service_price, energy,
                             electricity_fee, service_fee, discount_electricity, discount_service)
SELECT o.id, 0, o.started_at, o.ended_at,
       {_by_hour("extract(hour FROM o.started_at + interval '8 hours')", lambda lv, e, s: repr(lv))},
       {_by_hour("extract(hour FROM o.started_at + interval '8 hours')", lambda lv, e, s: e)}::numeric,
       {_by_hour("extract(hour FROM o.started_at + interval '8 hours')", lambda lv, e, s: s)}::numeric,
       o.energy, o.electricity_fee, o.service_fee, 0, 0
FROM ev_charge_order o WHERE o.serial LIKE '{PREFIX}%';
"""


def generate(app, orders, days):
    from sqlalchemy import text

    from app.cli import setup_platform
    from app.extensions import db

    with app.app_context():
        setup_platform(demo=True)
        engine = db.engine
        with engine.connect() as conn:
            existing = conn.scalar(text(f"SELECT count(*) FROM ev_charge_order WHERE serial LIKE '{PREFIX}%'"))
        if existing >= orders:
            log(f"{existing} generated orders already there")
            return {"skipped": True}
        log(f"generating {orders} settled orders over {days} days")
        t0 = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL synchronous_commit = off"))
            conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
            for stmt in ORDERS_SQL.split(";\n"):
                if stmt.strip():
                    conn.execute(text(stmt), {"n": orders, "spacing": days * 86400 / orders})
        t1 = time.perf_counter()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE ev_charge_order")
            conn.exec_driver_sql("VACUUM ANALYZE ev_order_period")
        t2 = time.perf_counter()
        log(f"orders and periods in {t1 - t0:.0f}s, analyze {t2 - t1:.0f}s")
        return {"orders_seconds": round(t1 - t0, 1), "analyze_seconds": round(t2 - t1, 1)}


def recompute(app, days):
    from sqlalchemy import text

    from app.extensions import db
    from app.services import stats
    from app.services.clock import local_today

    with app.app_context():
        today = local_today()
        start = today - timedelta(days=days + 1)
        t0 = time.perf_counter()
        rows = stats.recompute(start, today)
        seconds = time.perf_counter() - t0
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE ev_daily_station_stat")
            conn.exec_driver_sql("VACUUM ANALYZE ev_daily_channel_stat")
            check = conn.execute(text(
                "SELECT (SELECT count(*) FROM ev_charge_order WHERE status = 'settled'), "
                "(SELECT sum(order_count) FROM ev_daily_station_stat)")).one()
    log(f"stats.recompute {start}..{today}: {rows} rows in {seconds:.1f}s")
    return {"from": start.isoformat(), "to": today.isoformat(), "days": (today - start).days + 1, "rows": rows,
            "seconds": round(seconds, 1), "per_day_ms": round(seconds * 1000 / ((today - start).days + 1), 1),
            "settled_orders": check[0], "orders_in_stats": int(check[1] or 0)}


def timed(client, url, n):
    for _ in range(2):
        rv = client.get(url)
        assert rv.status_code == 200, (url, rv.status_code, rv.get_data(as_text=True)[:300])
    times = []
    for _ in range(n):
        t = time.perf_counter()
        rv = client.get(url)
        times.append((time.perf_counter() - t) * 1000)
        assert rv.status_code == 200, (url, rv.status_code)
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * len(times) + 0.5)) - 1)]
    return {"url": url, "requests": n, "p50_ms": round(statistics.median(times), 1), "p95_ms": round(p95, 1),
            "max_ms": round(times[-1], 1), "target_p95_ms": TARGET_MS, "ok": p95 < TARGET_MS}


def previous_month(today: date) -> tuple[date, date]:
    end = today.replace(day=1) - timedelta(days=1)
    return end.replace(day=1), end


def measure(app, n):
    from flask import url_for
    from sqlalchemy import text

    from app.extensions import db
    from app.services.clock import local_today

    with app.app_context():
        with db.engine.connect() as conn:
            counts = {
                "orders": conn.scalar(text("SELECT count(*) FROM ev_charge_order")),
                "order_periods": conn.scalar(text("SELECT count(*) FROM ev_order_period")),
                "daily_station_stats": conn.scalar(text("SELECT count(*) FROM ev_daily_station_stat")),
                "daily_channel_stats": conn.scalar(text("SELECT count(*) FROM ev_daily_channel_stat")),
                "stations": conn.scalar(text("SELECT count(*) FROM ev_station")),
                "connectors": conn.scalar(text("SELECT count(*) FROM ev_connector")),
            }
    start, end = previous_month(local_today())
    with app.test_request_context("/"):
        urls = {
            "dashboard_page": url_for("DashboardView.list"),
            "dashboard_json": url_for("DashboardView.data"),
            "station_report_month": url_for("StationReportView.list") + "?" + urlencode(
                {"start": start.isoformat(), "end": end.isoformat()}),
            "station_report_month_by_day": url_for("StationReportView.list") + "?" + urlencode(
                {"start": start.isoformat(), "end": end.isoformat(), "period": "day"}),
        }
    results = {}
    for who, (user, password) in {"admin": ("admin", ADMIN_PASSWORD),
                                  "operator_staff": ("viewer_a", "staff-pass-1")}.items():
        client = app.test_client()
        rv = client.post("/login/", data={"username": user, "password": password})
        assert rv.status_code == 302, f"login {user} failed"
        for name, url in urls.items():
            results[f"{who}.{name}"] = timed(client, url, n)
            log(f"{who}.{name}: p95 {results[f'{who}.{name}']['p95_ms']} ms")
    return counts, results


def _pg_version(app):
    from sqlalchemy import text

    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return conn.scalar(text("SHOW server_version"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    ap.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--output", default=str(DEFAULT_OUTPUT))
    args = ap.parse_args()
    if args.redis_url:
        os.environ["REDIS_URL"] = args.redis_url
    ensure_database(args.database_url, drop=args.regenerate)
    app = build_app(args.database_url)
    gen = generate(app, args.orders, args.days)
    if gen.get("skipped") and Path(args.output).exists():      # the data set's build time, from its run
        gen = dict(json.loads(Path(args.output).read_text()).get("generation", {}), reused=True)
    stats_run = recompute(app, args.days)
    counts, results = measure(app, args.requests)
    out = {
        "benchmark": "reports_1m",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_after": os.getloadavg()},
        "database": "PostgreSQL " + _pg_version(app),
        "data": counts,
        "generation": gen,
        "stats_recompute": stats_run,
        "results": results,
        "all_ok": all(r["ok"] for r in results.values()),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    log(f"written {args.output}; all p95 < {TARGET_MS} ms: {out['all_ok']}")


if __name__ == "__main__":
    main()
