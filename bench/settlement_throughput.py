"""Settlement throughput: orders settled per second by ONE RQ worker (AppContextWorker, forking) on PostgreSQL.

Creates its own PostgreSQL database (dropped afterwards unless --keep), migrates it, loads the demo data,
generates N finished, priced orders (two tariff periods each) for M members, enqueues one settlement
job per order (queue ``settlement``, the production ``enqueue_settlement``), then times a burst worker
subprocess. Throughput = N / (last job end − first job start) from RQ's job timestamps; the wall time
incl. worker start-up is reported too. Afterwards every order must be settled once and every member's
balance must equal its ledger.

Usage: .venv/bin/python bench/settlement_throughput.py [--orders 2000] [--members 50]
       [--pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--redis redis://127.0.0.1:6379/14]
       [--output bench/results/settlement_throughput.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "settlement_throughput.json"
sys.path.insert(0, str(ROOT))

WORKERS = {
    # the production worker (app/tasks/worker.py): forks a work horse per job
    "fork": (
        "from app.extensions import get_redis\n"
        "from app.tasks.worker import AppContextWorker, get_app\n"
        "app = get_app()\n"
        "with app.app_context():\n"
        "    conn = get_redis()\n"
        "AppContextWorker(['settlement'], connection=conn).work(burst=True)\n"
    ),
    # the production worker with the job modules imported (and mappers configured) in the parent before it forks
    "fork_warm_parent": (
        "from sqlalchemy.orm import configure_mappers\n"
        "from app.extensions import get_redis\n"
        "from app.tasks.worker import AppContextWorker, get_app\n"
        "app = get_app()\n"
        "import app.tasks.settlement as _jobs  # noqa: F401\n"
        "with app.app_context():\n"
        "    conn = get_redis()\n"
        "    configure_mappers()\n"
        "AppContextWorker(['settlement'], connection=conn).work(burst=True)\n"
    ),
    # for comparison: the same jobs in the worker process itself (rq SimpleWorker, one app context)
    "simple": (
        "from rq import SimpleWorker\n"
        "from app.extensions import get_redis\n"
        "from app.tasks.worker import get_app\n"
        "app = get_app()\n"
        "with app.app_context():\n"
        "    SimpleWorker(['settlement'], connection=get_redis()).work(burst=True)\n"
    ),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=1000)
    ap.add_argument("--modes", default="fork,fork_warm_parent,simple", help="worker kinds to time, comma separated")
    ap.add_argument("--members", type=int, default=50)
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    ap.add_argument("--output", default=str(DEFAULT_OUTPUT))
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(args.pg)
    name = f"cpms_bench_settle_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    db_url = base.set(database=name).render_as_string(hide_password=False)
    instance = tempfile.mkdtemp(prefix="cpms-bench-")
    env = dict(os.environ, DATABASE_URL=db_url, REDIS_URL=args.redis, INSTANCE_DIR=instance,
               CPMS_CONFIG="production", ADMIN_PASSWORD="bench-pass-123")
    os.environ.update(env)
    try:
        result = run(args, env)
    finally:
        if not args.keep:
            from app.extensions import db

            try:
                db.engine.dispose()
            except Exception:  # noqa: BLE001 - best effort
                pass
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def run(args, env):
    from rq import Queue
    from sqlalchemy import select

    from app import create_app
    from app.cli import setup_platform
    from app.extensions import db, get_redis
    from app.models import Connector, Member, Station
    from app.models.operator import Operator
    from app.services import pricing
    from app.services.wallet import post_entry

    app = create_app()
    with app.app_context():
        setup_platform(demo=True)
        redis = get_redis()
        q = Queue("settlement", connection=redis)
        q.empty()
        op = db.session.scalar(select(Operator).where(Operator.code == "MA1NJ0001"))
        conn = db.session.scalars(select(Connector).join(Station, Connector.station_id == Station.id)
                                  .where(Station.operator_id == op.id, Station.price_template_id.isnot(None))
                                  .order_by(Connector.id)).first()
        snap = pricing.snapshot(conn.station.price_template)
        t0 = datetime(2024, 3, 11, 1, 30)          # 09:30 Beijing: flat + peak
        samples = [(t0 + timedelta(minutes=m), Decimal(m) / 3) for m in range(0, 61, 15)]
        breakdown = pricing.price_samples(snap, samples)
        members = []
        for i in range(args.members):
            m = Member(operator_id=op.id, member_no=f"B{i:06d}", nickname="bench", status="active")
            db.session.add(m)
            db.session.flush()
            post_entry(m.id, Decimal("100000"), "recharge", idempotency_key=f"bench:recharge:{i}")
            members.append(m.id)
        db.session.commit()
        results = {}
        for mode in args.modes.split(","):
            results[mode] = measure(mode, args, env, op, conn, snap, t0, breakdown, members)
            for mid in members:                        # next round starts from the same balances
                post_entry(mid, Decimal("100000") - db.session.get(Member, mid).balance, "adjust")
            db.session.commit()
        with db.engine.connect() as c:
            pg_version = c.exec_driver_sql("show server_version").scalar()
        return {
            "benchmark": "settlement throughput, one RQ worker, PostgreSQL",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "machine_cores": os.cpu_count(),
            "postgresql": pg_version,
            "orders_per_run": args.orders,
            "members": args.members,
            "results": results,
            "notes": {
                "fork": "production worker (AppContextWorker): a forked work horse per job, which opens its own DB "
                        "connection and starts with cold import / SQL compilation caches",
                "fork_warm_parent": "as fork, with app.tasks.settlement (and so the services) imported and the "
                                    "mappers configured in the worker before it forks",
                "simple": "rq SimpleWorker in one app context (no fork): the cost of settle_order itself",
            },
        }


def measure(mode, args, env, op, conn, snap, t0, breakdown, members):
    from rq.job import Job
    from sqlalchemy import func, select

    from app.extensions import db, get_redis
    from app.models import ChargeOrder, Member, WalletEntry
    from app.services import order_numbers, pricing
    from app.services.settlement import enqueue_settlement
    from app.services.wallet import ledger_balance

    redis = get_redis()
    ids = []
    gen_start = time.perf_counter()
    for i in range(args.orders):
        order = ChargeOrder(
            order_no=order_numbers.new_order_no(t0),
            serial=order_numbers.new_serial(conn.pile.code, conn.gun_no, t0),
            operator_id=op.id, station_id=conn.station_id, pile_id=conn.pile_id, connector_id=conn.id,
            member_id=members[i % len(members)], start_method="app", status="finished", started_at=t0,
            ended_at=t0 + timedelta(hours=1), tariff_snapshot=snap, pile_energy=breakdown.energy,
            pile_amount=breakdown.total_amount)
        db.session.add(order)
        db.session.flush()
        pricing.apply_breakdown(order, breakdown)
        ids.append(order.id)
        if i % 500 == 499:
            db.session.commit()
    db.session.commit()
    gen_seconds = time.perf_counter() - gen_start
    for oid in ids:
        enqueue_settlement(oid, connection=redis)

    wall_start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", WORKERS[mode]], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - wall_start
    if proc.returncode != 0:
        raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])

    jobs = Job.fetch_many([f"settle-{oid}" for oid in ids], connection=redis)
    statuses = {}
    for job in jobs:
        statuses[job.get_status()] = statuses.get(job.get_status(), 0) + 1
    first = min(j.started_at for j in jobs)
    last = max(j.ended_at for j in jobs)
    busy = (last - first).total_seconds()
    per_job = sorted((j.ended_at - j.started_at).total_seconds() for j in jobs)

    db.session.expire_all()
    settled = db.session.scalar(select(func.count()).select_from(ChargeOrder)
                                .where(ChargeOrder.id.in_(ids), ChargeOrder.status == "settled"))
    debits = db.session.scalar(select(func.count()).select_from(WalletEntry)
                               .where(WalletEntry.order_id.in_(ids), WalletEntry.kind == "consume"))
    exact = all(db.session.get(Member, mid).balance == ledger_balance(mid) for mid in members)
    expected = Decimal("100000") - breakdown.total_amount * (args.orders // args.members)
    exact = exact and all(db.session.get(Member, mid).balance == expected for mid in members) \
        if args.orders % args.members == 0 else exact
    return {
        "order_generation_seconds": round(gen_seconds, 2),
        "job_statuses": statuses,
        "orders_settled": settled,
        "wallet_debits": debits,
        "balances_exact": exact,
        "first_job_start_to_last_job_end_seconds": round(busy, 3),
        "orders_per_second": round(args.orders / busy, 1),
        "wall_seconds_incl_worker_startup": round(wall, 3),
        "orders_per_second_incl_startup": round(args.orders / wall, 1),
        "job_seconds_p50": round(per_job[len(per_job) // 2], 4),
        "job_seconds_p95": round(per_job[int(len(per_job) * 0.95)], 4),
    }


if __name__ == "__main__":
    main()
