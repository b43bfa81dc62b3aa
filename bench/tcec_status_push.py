"""T/CEC status pushes: 10,000 gun status changes within one minute, drained by ONE RQ worker, no loss.

A fresh bench database (PostgreSQL by default, dropped and re-created) gets one operator with
1,000 stations × 5 two-gun piles (10,000 guns, as ``bench/tcec_station_status.py``) and one platform
partner whose ``base_url`` is the test suite's independent partner platform
(``tests/interconnect/partner_platform.py``, a real HTTP server in this process: strict envelope,
Sig, token and field checks). One worker runs as in production (``python run.py worker``: queues
default, settlement, push; RQ scheduler for the retries).

The load: ``--changes`` gun status changes in ``--batches`` batches spread evenly over ``--seconds``
seconds, each batch written the way the gateway writes it (connector rows updated and committed,
then ``interconnect_push.gun_status_changed`` — the coalescing path: one waiting job per gun). The
changes cover ``--guns`` guns; guns beyond that count change twice (the second change ~``--seconds``×0.9
later, or coalesced into one push when the first one is still waiting).

Checked (no loss): when the queue is drained, every changed gun's last status received by the
partner equals its status in the database, every push log row is 'success' (none pending, retrying or
failed), and the partner refused nothing. Reported: pushes delivered, coalesced changes, drain time
after the last change, throughput (pushes per second, first change to last delivery).

Usage::

    .venv/bin/python bench/tcec_status_push.py [--changes 10000] [--guns 10000] [--seconds 60]
        [--db-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_tcec_push]
        [--redis-url redis://127.0.0.1:6379/5] [--output bench/results/tcec_status_push.json]

The Redis database given is flushed at the start (use a spare index).
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
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "tcec_status_push.json"
CYCLE = ("charging", "idle", "occupied", "fault", "offline")
TCEC_STATUS = {"offline": 0, "idle": 1, "occupied": 2, "charging": 3, "fault": 255}


def log(msg: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--changes", type=int, default=10000)
    p.add_argument("--guns", type=int, default=10000, help="distinct guns changed (<= changes)")
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--batches", type=int, default=120)
    p.add_argument("--stations", type=int, default=1000)
    p.add_argument("--piles", type=int, default=5)
    p.add_argument("--drain-timeout", type=float, default=3600)
    p.add_argument("--db-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/bench_tcec_push")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    p.add_argument("--output", default=str(DEFAULT_OUTPUT))
    args = p.parse_args(argv)

    from bench.history_orders import ensure_database
    from bench.tcec_station_status import partner_fields, seed
    from tests.interconnect.e2e_support import keys_for
    from tests.interconnect.partner_platform import PartnerPlatform

    work = tempfile.mkdtemp(prefix="cpms-bench-tcec-push-")
    if args.db_url.startswith("postgresql"):
        ensure_database(args.db_url, drop=True)
    elif args.db_url.startswith("sqlite:///"):
        Path(args.db_url[len("sqlite:///"):]).unlink(missing_ok=True)
    os.environ.update(INSTANCE_DIR=work, DATABASE_URL=args.db_url, REDIS_URL=args.redis_url)
    from sqlalchemy import func, select, update

    from app import create_app
    from app.cli import setup_platform
    from app.extensions import db, get_redis
    from app.models import Connector, Partner, PushLog
    from app.security.scope import platform_scope
    from app.services import interconnect_push

    app = create_app("test", SQLALCHEMY_DATABASE_URI=args.db_url, INSTANCE_DIR=work, ADMIN_PASSWORD="bench-admin-pass")
    with app.app_context():
        get_redis().flushdb()
        log("migrating")
        setup_platform(demo=False)
    seed(app, args.stations, args.piles)
    fields = partner_fields()
    calling_us, being_called = keys_for(fields)
    partner = PartnerPlatform(fields["partner_operator_code"], calling_us, being_called).start()
    with app.app_context(), platform_scope("bench"):
        row = db.session.scalar(select(Partner).where(Partner.partner_operator_code == fields["partner_operator_code"]))
        row.base_url = partner.root_url
        db.session.commit()
        operator_id = row.operator_id
        guns = db.session.execute(select(Connector.id, Connector.code).where(Connector.operator_id == operator_id)
                                  .order_by(Connector.id)).all()
    if args.guns > len(guns) or args.guns > args.changes:
        raise SystemExit(f"--guns must be <= changes and <= {len(guns)}")
    plan = [guns[i % args.guns] for i in range(args.changes)]     # guns beyond --guns change twice
    per_batch = -(-args.changes // args.batches)
    batches = [plan[i:i + per_batch] for i in range(0, len(plan), per_batch)]
    step = args.seconds / len(batches)
    n_changes: Counter = Counter()

    env = dict(os.environ, CPMS_CONFIG="test", WORKER_METRICS_PORT="0", TCEC_PUSH_RETRY_INTERVAL="5",
               TCEC_PARTNER_CACHE_SECONDS="0")
    worker_log = open(Path(work) / "worker.log", "w")
    worker = subprocess.Popen([sys.executable, "run.py", "worker"], cwd=ROOT, env=env, stdout=worker_log,
                              stderr=subprocess.STDOUT)
    try:
        time.sleep(3)
        log(f"{args.changes} changes of {args.guns} guns in {len(batches)} batches over {args.seconds:.0f} s")
        t0 = time.monotonic()
        jobs = 0
        with app.app_context(), platform_scope("bench-gateway"):
            for k, batch in enumerate(batches):
                due = t0 + k * step
                if due > time.monotonic():
                    time.sleep(due - time.monotonic())
                changes = []
                by_status: dict[str, list[int]] = {}
                for cid, _code in batch:
                    status = CYCLE[n_changes[cid] % len(CYCLE)]
                    n_changes[cid] += 1
                    by_status.setdefault(status, []).append(cid)
                    changes.append(SimpleNamespace(connector_id=cid, operator_id=operator_id, status=status))
                for status, ids in by_status.items():
                    db.session.execute(update(Connector).where(Connector.id.in_(ids)).values(status=status))
                db.session.commit()
                jobs += interconnect_push.gun_status_changed(changes)
        load_end = time.monotonic()
        log(f"changes written in {load_end - t0:.1f} s; {jobs} gun jobs queued; "
            f"{len(partner.requests_for('notification_stationStatus'))} pushes delivered so far")

        with app.app_context():
            final = {code: TCEC_STATUS[s] for code, s in db.session.execute(
                select(Connector.code, Connector.status).where(Connector.id.in_({cid for cid, _ in plan}))).all()}

        def last_received():
            out = {}
            for data in partner.requests_for("notification_stationStatus"):
                info = data["ConnectorStatusInfo"]
                out[info["ConnectorID"]] = info["Status"]
            return out

        def open_rows():
            with app.app_context():
                return db.session.scalar(select(func.count()).select_from(PushLog).where(
                    PushLog.direction == "out", PushLog.status != "success"))

        deadline = time.monotonic() + args.drain_timeout
        while True:
            if last_received() == final and open_rows() == 0:
                break
            if worker.poll() is not None:
                raise SystemExit(f"worker died: {(Path(work) / 'worker.log').read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise SystemExit("not drained within the timeout")
            time.sleep(0.5)
        drained = time.monotonic()
    finally:
        worker.terminate()
        worker.wait(30)
        worker_log.close()
        partner.stop()

    received = partner.requests_for("notification_stationStatus")
    arrivals = [t for t, i, _ in partner.arrivals if i == "notification_stationStatus"]
    with app.app_context():
        statuses = dict(db.session.execute(select(PushLog.status, func.count()).where(
            PushLog.direction == "out").group_by(PushLog.status)).all())
        attempts = db.session.scalar(select(func.sum(PushLog.attempts)).where(PushLog.direction == "out"))
    per_gun = Counter(d["ConnectorStatusInfo"]["ConnectorID"] for d in received)
    last = {}
    for data in received:
        last[data["ConnectorStatusInfo"]["ConnectorID"]] = data["ConnectorStatusInfo"]["Status"]
    result = {
        "benchmark": "T/CEC notification_stationStatus pushes: gun status changes drained by one RQ worker",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(), "platform": platform.platform(), "machine_cores": os.cpu_count(),
        "load_average_1_5_15_min_at_end": [round(x, 2) for x in os.getloadavg()],
        "database": args.db_url.split("@")[-1] if "@" in args.db_url else args.db_url,
        "setup": {"changes": args.changes, "guns_changed": args.guns, "guns_total": len(guns),
                  "load_seconds": args.seconds, "batches": len(batches),
                  "path": "connector rows committed, then interconnect_push.gun_status_changed (as the gateway)",
                  "worker": "one `python run.py worker` (non-forking, queues default/settlement/push)",
                  "partner": "tests/interconnect/partner_platform.py over HTTP (strict checks, own AES/HMAC)"},
        "gun_jobs_queued": jobs,
        "changes_coalesced": args.changes - len(received),
        "pushes_delivered": len(received),
        "guns_with_final_status_received": sum(1 for c, s in final.items() if last.get(c) == s),
        "max_pushes_per_gun": max(per_gun.values()),
        "push_log_status": statuses,
        "push_attempts": attempts,
        "partner_refused": len(partner.rejected),
        "delivered_during_load": sum(1 for t in arrivals if t <= load_end),
        "drain_seconds_after_last_change": round(drained - load_end, 1),
        "first_change_to_last_delivery_seconds": round(max(arrivals) - t0, 1),
        "pushes_per_second": round(len(received) / (max(arrivals) - t0), 1),
    }
    result["no_loss"] = (result["guns_with_final_status_received"] == len(final)
                         and set(statuses) == {"success"} and result["partner_refused"] == 0)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    log(f"{json.dumps({k: v for k, v in result.items() if k not in ('setup',)}, ensure_ascii=False)} -> {args.output}")
    return 0 if result["no_loss"] else 1


if __name__ == "__main__":
    sys.exit(main())
