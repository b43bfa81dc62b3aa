"""History-order list latency on PostgreSQL with 1,000,000 orders and 10,000,000 meter samples.

Generates the data set (once) in its own database with SQL ``generate_series`` (2 operators,
57 stations, ~250 guns), then measures through the Flask test client, logged in as the platform
admin and as a read-only operator staff user (viewer_a, scope = operator A):

- the history list first page (default 30-day window, totals bar included),
- the list filtered by one station,
- a 7-day 充电时间 (start time) range 90 days back,
- the totals bar endpoint on its own (``/historyorderview/totals/``) for the same three filters.

Each figure is the p50/p95/max of ``--requests`` requests after 2 warm-up requests; target p95 < 300 ms.

Usage:
  .venv/bin/python bench/history_orders.py                 # generate if missing, then measure
  .venv/bin/python bench/history_orders.py --regenerate    # drop and rebuild the data set
  .venv/bin/python bench/history_orders.py --generate-only
Options: --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_orders --orders 1000000
         --samples-per-order 10 --requests 30 --output bench/results/history_orders.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_orders"
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "history_orders.json"
ADMIN_PASSWORD = "bench-admin-pass"
EXTRA_STATIONS_PER_OPERATOR = 24


def log(msg):
    print(f"[{datetime.now():%H:%M:%S}] {msg}", flush=True)


def ensure_database(url, drop=False):
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if drop:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database})
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()
    return not exists


def build_app(url):
    os.environ.setdefault("INSTANCE_DIR", tempfile.mkdtemp(prefix="cpms-bench-"))
    os.environ["DATABASE_URL"] = url
    from app import create_app

    return create_app("test", SQLALCHEMY_DATABASE_URI=url, ADMIN_PASSWORD=ADMIN_PASSWORD)


# ----- data set ---------------------------------------------------------------------------------
def add_stations(db):
    """Demo data has 9 stations; add 24 per operator, each with 2 piles of 2 guns."""
    from decimal import Decimal

    from app.models import Connector, Operator, Pile, Station

    session = db.session
    if session.query(Station).filter(Station.code.like("B%")).count():
        return
    ops = session.query(Operator).order_by(Operator.id).all()
    n = 0
    for oi, op in enumerate(ops):
        for k in range(EXTRA_STATIONS_PER_OPERATOR):
            n += 1
            st = Station(operator=op, code=f"B{n:04d}", name=f"压测电站{n:02d}", station_type="public",
                         status="normal", site_type="roadside", ownership="self", province="江苏省",
                         city="南京市", district="江宁区", area_code="320115", address=f"压测路{n}号",
                         lng=Decimal("118.8"), lat=Decimal("31.9"), park_nums=8, services=[], photos=[],
                         business_hours="00:00-24:00")
            session.add(st)
            for p in range(2):
                code = f"9{oi}{k:03d}{p:02d}{0:07d}"
                pile = Pile(operator=op, station=st, code=code, name=f"{st.name}{p + 1}号机", pile_type="dc",
                            protocol="ykc15", power_kw=Decimal("120"), gun_count=2)
                for g in (1, 2):
                    pile.connectors.append(Connector(operator=op, station=st, gun_no=g, code=f"{code}{g:02d}",
                                                     name=f"{pile.name}{g}号枪", interface_type="dc_gun",
                                                     national_standard="2015", power_kw=Decimal("60")))
                session.add(pile)
    session.commit()


ORDERS_SQL = """
CREATE TEMP TABLE bc AS
  SELECT row_number() OVER (ORDER BY c.id) AS rn, c.id AS connector_id, c.pile_id, c.station_id, c.operator_id
  FROM ev_connector c;
CREATE TEMP TABLE bm AS
  SELECT row_number() OVER (PARTITION BY operator_id ORDER BY id) AS rn, id, operator_id,
         count(*) OVER (PARTITION BY operator_id) AS cnt
  FROM ev_member;
CREATE TEMP TABLE bch AS
  SELECT DISTINCT ON (operator_id) operator_id, id FROM ev_channel ORDER BY operator_id, id;
INSERT INTO ev_charge_order (
  order_no, serial, operator_id, station_id, pile_id, connector_id, member_id, channel_id,
  start_method, status, pay_status, pay_type, needs_review, start_requested_at, started_at, ended_at,
  settled_at, paid_at, duration_seconds, start_soc, end_soc, energy, electricity_fee, service_fee,
  total_amount, discount_electricity, discount_service, discount_total, payable_amount, paid_amount,
  refunded_amount, stop_reason, abnormal_reason, plate_no, created_at, updated_at)
SELECT
  to_char(x.created, 'YYMMDD') || lpad((x.g % 10000000)::text, 7, '0'),
  lpad(x.g::text, 32, '0'),
  c.operator_id, c.station_id, c.pile_id, c.connector_id, m.id, ch.id,
  CASE WHEN x.g % 10 = 0 THEN 'card' ELSE 'app' END,
  x.status,
  CASE WHEN x.status = 'settled' THEN 'paid' ELSE 'unpaid' END,
  CASE WHEN x.status = 'settled' THEN 'wallet' END,
  x.status = 'abnormal',
  x.created, x.created + interval '8 seconds',
  CASE WHEN x.status <> 'charging' THEN x.created + interval '8 seconds' + make_interval(secs => x.dur) END,
  CASE WHEN x.status = 'settled' THEN x.created + make_interval(secs => x.dur + 60) END,
  CASE WHEN x.status = 'settled' THEN x.created + make_interval(secs => x.dur + 60) END,
  x.dur, 20 + x.g % 30, LEAST(100, 50 + x.g % 50),
  x.kwh, round(x.kwh * 0.62, 4), round(x.kwh * 0.60, 4), round(x.kwh * 1.22, 4),
  0, 0, 0, round(x.kwh * 1.22, 4),
  CASE WHEN x.status = 'settled' THEN round(x.kwh * 1.22, 4) ELSE 0 END,
  0,
  CASE WHEN x.status = 'charging' THEN NULL ELSE 'BMS stop' END,
  CASE WHEN x.status = 'abnormal' THEN 'no bill from the pile' END,
  '苏A' || lpad((x.g % 100000)::text, 5, '0'),
  x.created, x.created
FROM (
  SELECT g,
         (now() AT TIME ZONE 'utc') - make_interval(secs => g * 31.536) AS created,
         600 + (g * 7919) % 7200 AS dur,
         round(((600 + (g * 7919) % 7200) / 3600.0 * 30)::numeric, 4) AS kwh,
         CASE WHEN g <= 200 THEN 'charging'
              WHEN g % 50 = 0 THEN 'abnormal'
              WHEN g % 97 = 0 THEN 'failed'
              ELSE 'settled' END AS status
  FROM generate_series(1::bigint, :n) AS g
) x
JOIN bc c ON c.rn = (x.g % (SELECT count(*) FROM bc)) + 1
JOIN bm m ON m.operator_id = c.operator_id AND m.rn = (x.g / 7) % m.cnt + 1
JOIN bch ch ON ch.operator_id = c.operator_id;
"""

SAMPLES_SQL = """
INSERT INTO ev_meter_sample (order_id, at, status, voltage, current, power, soc, energy, amount,
                             charged_minutes, remaining_minutes)
SELECT o.id, o.started_at + make_interval(secs => o.duration_seconds * k / :k), 'charging',
       400.0, 75.0, 30.000, LEAST(100, o.start_soc + k * 5), round(o.energy * k / :k, 4),
       round(o.total_amount * k / :k, 4), o.duration_seconds * k / (:k * 60), 0
FROM ev_charge_order o CROSS JOIN generate_series(1, :k) AS k;
"""


def generate(app, orders, samples_per_order):
    from sqlalchemy import text

    from app.cli import setup_platform
    from app.extensions import db

    with app.app_context():
        t0 = time.perf_counter()
        setup_platform(demo=True)
        add_stations(db)
        engine = db.engine
        with engine.begin() as conn:
            existing = conn.scalar(text("SELECT count(*) FROM ev_charge_order"))
        if existing >= orders:
            log(f"{existing} orders already there")
            return {"skipped": True}
        log(f"generating {orders} orders")
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL synchronous_commit = off"))
            conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
            for stmt in ORDERS_SQL.split(";\n"):
                if stmt.strip():
                    conn.execute(text(stmt), {"n": orders})
        t1 = time.perf_counter()
        log(f"orders done in {t1 - t0:.0f}s; generating {orders * samples_per_order} meter samples")
        if samples_per_order:
            with engine.begin() as conn:
                _samples(conn, samples_per_order)
        t2 = time.perf_counter()
        log(f"samples done in {t2 - t1:.0f}s; analyzing")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE ev_charge_order")
            conn.exec_driver_sql("VACUUM ANALYZE ev_meter_sample")
        t3 = time.perf_counter()
        return {"orders_seconds": round(t1 - t0, 1), "samples_seconds": round(t2 - t1, 1),
                "analyze_seconds": round(t3 - t2, 1)}


def _samples(conn, samples_per_order):
    """Meter samples with the index dropped during the insert and rebuilt after."""
    from sqlalchemy import text

    conn.execute(text("SET LOCAL synchronous_commit = off"))
    conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '1GB'")
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_ev_meter_sample_order_at")
    conn.execute(text(SAMPLES_SQL), {"k": samples_per_order})
    conn.exec_driver_sql("CREATE INDEX ix_ev_meter_sample_order_at ON ev_meter_sample (order_id, at)")


# ----- measurement ------------------------------------------------------------------------------
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
            "max_ms": round(times[-1], 1), "target_p95_ms": 300, "ok": p95 < 300}


def measure(app, n):
    from sqlalchemy import text

    from app.extensions import db

    with app.app_context():
        with db.engine.connect() as conn:
            counts = {
                "orders": conn.scalar(text("SELECT count(*) FROM ev_charge_order")),
                "meter_samples": conn.scalar(text("SELECT count(*) FROM ev_meter_sample")),
                "stations": conn.scalar(text("SELECT count(*) FROM ev_station")),
                "operators": conn.scalar(text("SELECT count(*) FROM ev_operator")),
            }
            station_a = conn.scalar(text(
                "SELECT s.id FROM ev_station s JOIN ev_operator o ON o.id = s.operator_id "
                "WHERE o.code = 'MA1NJ0001' ORDER BY s.id LIMIT 1"))
    now = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=8)  # local (Asia/Shanghai) form input
    start, end = now - timedelta(days=97), now - timedelta(days=90)
    fmt = "%Y-%m-%d %H:%M:%S"
    date_args = {"_flt_0_started_at": start.strftime(fmt), "_flt_1_started_at": end.strftime(fmt)}
    cases = {
        "first_page": "",
        "station_filter": urlencode({"_flt_0_station": station_a}),
        "date_range": urlencode(date_args),
    }
    results = {}
    for who, (user, password) in {"admin": ("admin", ADMIN_PASSWORD),
                                  "operator_staff": ("viewer_a", "staff-pass-1")}.items():
        client = app.test_client()
        rv = client.post("/login/", data={"username": user, "password": password})
        assert rv.status_code == 302, f"login {user} failed"
        for name, query in cases.items():
            results[f"{who}.{name}"] = timed(client, f"/historyorderview/list/?{query}", n)
            log(f"{who}.{name}: p95 {results[f'{who}.{name}']['p95_ms']} ms")
            results[f"{who}.totals_{name}"] = timed(client, f"/historyorderview/totals/?{query}", n)
            log(f"{who}.totals_{name}: p95 {results[f'{who}.totals_{name}']['p95_ms']} ms")
    return counts, results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--samples-per-order", type=int, default=10)
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--generate-only", action="store_true")
    ap.add_argument("--output", default=str(DEFAULT_OUTPUT))
    args = ap.parse_args()
    ensure_database(args.database_url, drop=args.regenerate)
    app = build_app(args.database_url)
    gen = generate(app, args.orders, args.samples_per_order)
    if args.generate_only:
        log(f"generated: {gen}")
        return
    counts, results = measure(app, args.requests)
    out = {
        "benchmark": "history_orders",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_after": os.getloadavg()},
        "database": "PostgreSQL " + _pg_version(app),
        "data": counts,
        "generation": gen,
        "results": results,
        "all_ok": all(r["ok"] for r in results.values()),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    log(f"written {args.output}; all p95 < 300 ms: {out['all_ok']}")


def _pg_version(app):
    from sqlalchemy import text

    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return conn.scalar(text("SHOW server_version"))


if __name__ == "__main__":
    main()
