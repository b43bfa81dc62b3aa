"""Excel export of 100,000 financial-bill rows through the real export route (/financialbillview/export/),
PostgreSQL, logged in as the platform admin: time, peak RSS and Python heap peak.

The export streams: the ORM query runs with ``yield_per(1000)`` (server-side cursor) and only the
relations it prints, rows go to openpyxl's write-only workbook (spooled to a temporary file) and the
response is sent in chunks. The benchmark records

- ``rss_peak_delta_mb``: growth of the process's peak RSS (``ru_maxrss``) over a warm-up export;
- ``tracemalloc_peak_mb``: Python heap peak during one export (separate pass, tracemalloc on);
- for comparison, the heap needed just to hold the same rows as ORM objects (``query.all()``).

Usage: .venv/bin/python bench/export_stream.py [--database-url ...bench_export] [--rows 100000]
       [--output bench/results/export_stream.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.history_orders import ADMIN_PASSWORD, build_app, ensure_database, generate, log  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_export"
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "export_stream.json"


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def prepare(app, rows):
    """``rows`` orders, every one a financial bill (settled and paid)."""
    from sqlalchemy import text

    from app.extensions import db

    gen = generate(app, rows, 0)
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text("UPDATE ev_charge_order SET status = 'settled', pay_status = 'paid', "
                          "pay_type = 'wallet', paid_at = COALESCE(paid_at, created_at), "
                          "settled_at = COALESCE(settled_at, created_at) WHERE status <> 'settled'"))
    with app.app_context(), db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE ev_charge_order")
    return gen


def export_once(client, url):
    """GET the export, reading the body chunk by chunk into a temporary file."""
    t = time.perf_counter()
    rv = client.get(url, buffered=False)
    assert rv.status_code == 200, rv.status_code
    size = 0
    tmp = tempfile.NamedTemporaryFile(suffix=".xlsx", delete=False)
    with tmp:
        for chunk in rv.response:
            size += len(chunk)
            tmp.write(chunk)
    rv.close()
    return time.perf_counter() - t, size, tmp.name


def count_rows(path):
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True)
    n = sum(1 for _ in wb.worksheets[0].iter_rows(values_only=True)) - 1
    wb.close()
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=os.environ.get("BENCH_EXPORT_DATABASE_URL", DEFAULT_URL))
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--output", default=str(DEFAULT_OUTPUT))
    args = ap.parse_args()
    ensure_database(args.database_url, drop=args.regenerate)
    app = build_app(args.database_url)
    gen = prepare(app, args.rows)
    client = app.test_client()
    assert client.post("/login/", data={"username": "admin", "password": ADMIN_PASSWORD}).status_code == 302
    base = "/financialbillview/export/"

    # warm-up: code paths, templates, connection pool (a one-day filter: a few hundred rows)
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    export_once(client, f"{base}?_flt_0_paid_at={day}")
    gc.collect()
    rss_before = rss_mb()
    seconds, size, path = export_once(client, base)
    rss_after = rss_mb()
    rows = count_rows(path)
    os.unlink(path)
    log(f"export: {rows} rows, {size / 1e6:.1f} MB in {seconds:.1f}s; peak RSS {rss_before:.0f} -> {rss_after:.0f} MB")

    gc.collect()
    tracemalloc.start()
    seconds_traced, _size, path = export_once(client, base)
    _cur, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    os.unlink(path)
    log(f"tracemalloc peak during export: {traced_peak / 1e6:.1f} MB")

    # what holding every row would cost: the same rows as ORM objects
    from app.extensions import db
    from app.models import ChargeOrder

    gc.collect()
    with app.test_request_context():
        tracemalloc.start()
        items = db.session.query(ChargeOrder).all()
        _cur, all_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        held = len(items)
        del items
        db.session.remove()
    log(f"holding {held} orders as ORM objects: {all_peak / 1e6:.1f} MB")

    out = {
        "benchmark": "export_stream",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average": os.getloadavg()},
        "route": base,
        "rows_exported": rows,
        "xlsx_bytes": size,
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds),
        "peak_rss_before_mb": round(rss_before, 1),
        "peak_rss_after_mb": round(rss_after, 1),
        "rss_peak_delta_mb": round(rss_after - rss_before, 1),
        "tracemalloc_peak_mb": round(traced_peak / 1e6, 1),
        "tracemalloc_pass_seconds": round(seconds_traced, 2),
        "holding_all_rows_as_orm_objects_mb": round(all_peak / 1e6, 1),
        "streams": traced_peak < all_peak / 5,
        "generation": gen,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2) + "\n")
    log(f"written {args.output}")


if __name__ == "__main__":
    main()
