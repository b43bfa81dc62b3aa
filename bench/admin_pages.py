"""Admin pages on demo data: p95 of every menu screen, with FAB's permission checks vs. our cache.

FAB checks ``has_access`` for every menu entry, link and button with one SQL query each (~100 per
page). ``CpmsSecurityManager`` (app/security/manager.py) loads the permissions of the user's roles
once per request. This benchmark opens every menu screen sequentially with a logged-in test client
(the full Flask/FAB stack, real database, real Redis), as the platform admin and as an operator's
administrator (``staff_a``), ``--rounds`` times each, twice: with FAB's own per-check queries
(``fab``) and with the per-request cache (``cached``). It records per screen the p50/p95 time and
the SQL statements per request (counted with a ``before_cursor_execute`` listener), and whether
every screen answers p95 < 100 ms.

Usage::

    .venv/bin/python bench/admin_pages.py [--rounds 20]
        [--db-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_admin]   # default: SQLite file
        [--redis-url redis://127.0.0.1:6379/5] [--output bench/results/admin_pages.json]

The database is created fresh (PostgreSQL: dropped and re-created) and gets the demo data
(``flask setup`` with demo); the Redis database given is flushed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "admin_pages.json"
ADMIN_PASSWORD = "bench-admin-pass"
USERS = {"admin": ADMIN_PASSWORD, "staff_a": "staff-pass-1"}
TARGET_MS = 100


def log(msg: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {msg}", flush=True)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1))
    return ordered[k]


def menu_urls(app) -> list[tuple[str, str]]:
    """(category/name, url) of every menu screen."""
    out = []
    with app.test_request_context("/"):
        for cat in app.appbuilder.menu.get_list():
            for child in cat.childs or []:
                if child.name != "-":
                    out.append((f"{cat.name}/{child.name}", child.get_url()))
    return out


class FabChecks:
    """Temporarily answer permission checks the way FAB does (one query per check)."""

    NAMES = ("exist_permission_on_roles", "_get_user_permission_view_menus", "is_item_public", "get_public_role")

    def __init__(self, sm):
        from flask_appbuilder.security.sqla.manager import SecurityManager

        self.cls, self.base = type(sm), SecurityManager
        self.saved = {}

    def __enter__(self):
        for name in self.NAMES:
            self.saved[name] = self.cls.__dict__[name]
            setattr(self.cls, name, getattr(self.base, name))
        return self

    def __exit__(self, *exc):
        for name, fn in self.saved.items():
            setattr(self.cls, name, fn)


def measure(app, engine, users: dict[str, str], rounds: int) -> dict:
    from sqlalchemy import event

    statements = [0]

    def count(*_args):
        statements[0] += 1

    out = {}
    for username, password in users.items():
        client = app.test_client()
        rv = client.post("/login/", data={"username": username, "password": password})
        assert rv.status_code == 302, rv.get_data(as_text=True)[:300]
        client.get("/lang/zh")
        pages = {}
        for name, url in menu_urls(app):
            first = client.get(url)                     # warm (templates) and check access
            if first.status_code != 200:
                pages[name] = {"url": url, "status": first.status_code}
                continue
            times, queries = [], []
            event.listen(engine, "before_cursor_execute", count)
            try:
                for _ in range(rounds):
                    statements[0] = 0
                    started = time.perf_counter()
                    rv = client.get(url)
                    times.append((time.perf_counter() - started) * 1000)
                    queries.append(statements[0])
                    assert rv.status_code == 200, (url, rv.status_code)
            finally:
                event.remove(engine, "before_cursor_execute", count)
            pages[name] = {"url": url, "status": 200, "p50_ms": round(statistics.median(times), 1),
                           "p95_ms": round(percentile(times, 95), 1), "max_ms": round(max(times), 1),
                           "sql_per_request": round(statistics.mean(queries), 1)}
        measured = [p for p in pages.values() if "p95_ms" in p]
        out[username] = {
            "screens": len(measured), "screens_refused": sum(1 for p in pages.values() if p["status"] != 200),
            "worst_p95_ms": max((p["p95_ms"] for p in measured), default=None),
            "median_p95_ms": round(statistics.median([p["p95_ms"] for p in measured]), 1) if measured else None,
            "mean_sql_per_request": round(statistics.mean([p["sql_per_request"] for p in measured]), 1)
            if measured else None,
            "all_below_target": all(p["p95_ms"] < TARGET_MS for p in measured),
            "pages": pages,
        }
        log(f"  {username}: {len(measured)} screens, worst p95 {out[username]['worst_p95_ms']} ms, "
            f"mean {out[username]['mean_sql_per_request']} SQL statements per request")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--db-url", help="PostgreSQL URL (dropped and re-created); default: a temporary SQLite file")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    p.add_argument("--output", default=str(DEFAULT_OUTPUT))
    args = p.parse_args(argv)

    work = tempfile.mkdtemp(prefix="cpms-bench-admin-")
    url = args.db_url or f"sqlite:///{work}/bench.db"
    if args.db_url:
        from bench.history_orders import ensure_database

        ensure_database(url, drop=True)
    os.environ.update(INSTANCE_DIR=work, DATABASE_URL=url, REDIS_URL=args.redis_url)
    from app import create_app
    from app.cli import setup_platform
    from app.extensions import db, get_redis

    app = create_app("test", SQLALCHEMY_DATABASE_URI=url, ADMIN_PASSWORD=ADMIN_PASSWORD, INSTANCE_DIR=work)
    with app.app_context():
        get_redis().flushdb()
        log("migrating and loading demo data")
        setup_platform(demo=True)
        engine = db.engine
    results = {}
    with FabChecks(app.appbuilder.sm):
        log("FAB's permission checks (one query per check)")
        results["fab"] = measure(app, engine, USERS, args.rounds)
    log("permissions cached per request")
    results["cached"] = measure(app, engine, USERS, args.rounds)

    result = {
        "benchmark": "admin pages (every menu screen, demo data)",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(), "platform": platform.platform(), "machine_cores": os.cpu_count(),
        "database": "sqlite (temporary file)" if not args.db_url else url.split("@")[-1],
        "setup": {"rounds_per_screen": args.rounds, "users": list(USERS), "client": "Flask test client, sequential",
                  "target": f"every screen p95 < {TARGET_MS} ms"},
        "summary": {mode: {user: {k: v for k, v in r.items() if k != "pages"} for user, r in res.items()}
                    for mode, res in results.items()},
        "target_met": all(r["all_below_target"] for r in results["cached"].values()),
        "results": results,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    log(f"summary {json.dumps(result['summary'])} -> {args.output}")
    return 0 if result["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
