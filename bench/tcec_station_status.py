"""T/CEC ``query_station_status`` for 1,000 stations and 10,000 guns: p95 per request of 50 StationIDs.

A fresh bench database (PostgreSQL by default, dropped and re-created) is migrated and gets one
operator with ``--stations`` stations of ``--piles`` two-gun piles each (1,000 × 5 × 2 = 10,000
guns, statuses spread over offline/idle/occupied/charging/fault) and one interconnect partner
(IP allow-list 127.0.0.1). Our web app runs as in production (``python run.py web``, gevent WSGI)
on a free port; the partner is the test suite's independent T/CEC client
(``tests/interconnect/partner_platform.py``: its own AES/HMAC), which takes a token and then asks
``query_station_status`` with 50 StationIDs per request (the standard's maximum), every station
once per round, ``--rounds`` rounds, sequentially (latency, not throughput) and then with
``--concurrency`` clients in parallel. Every answer is checked: Ret 0, a verified response Sig,
50 stations and their 500 connectors. Target: p95 < 300 ms.

Usage::

    .venv/bin/python bench/tcec_station_status.py [--stations 1000] [--piles 5] [--rounds 10]
        [--concurrency 4] [--db-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_tcec]
        [--redis-url redis://127.0.0.1:6379/5] [--output bench/results/tcec_station_status.json]

The Redis database given is flushed at the start (use a spare index).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "tcec_station_status.json"
TARGET_MS = 300
BATCH = 50
OPERATOR_CODE = "BENCHTCE1"
PARTNER_CODE = "MAPARTNR1"
STATUSES = ("idle", "idle", "idle", "charging", "charging", "occupied", "offline", "fault")
TOU = [(0, 480, "valley", "0.31000", "0.50000"), (480, 1260, "flat", "0.62000", "0.60000"),
       (1260, 1440, "valley", "0.31000", "0.50000")]


def log(msg: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1))
    return ordered[k]


def partner_fields() -> dict:
    return {"partner_operator_code": PARTNER_CODE, "our_operator_code": OPERATOR_CODE,
            "operator_secret": "bench-they-issue", "data_secret": "BenchTheirData01",
            "data_secret_iv": "BenchTheirIV0001", "sig_secret": "bench-their-sig",
            "our_operator_secret": "bench-we-issue", "our_data_secret": "BenchOurDataKey1",
            "our_data_secret_iv": "BenchOurDataIV01", "our_sig_secret": "bench-our-sig"}


def seed(app, stations: int, piles: int) -> list[str]:
    """The bench operator, its stations, piles, guns and partner; returns the StationIDs."""
    from sqlalchemy import insert, select

    from app.extensions import db
    from app.models import Connector, Operator, Partner, Pile, PricePeriod, PriceTemplate, Station
    from app.security.scope import platform_scope

    now = datetime.now(UTC).replace(tzinfo=None)
    with app.app_context(), platform_scope("bench"):
        session = db.session
        operator = Operator(code=OPERATOR_CODE, name="互联压测运营商", short_name="互联压测")
        template = PriceTemplate(operator=operator, code="TCECTPL", name="互联压测模版")
        template.periods = [PricePeriod(start_minute=s, end_minute=e, level=lv, electricity_price=Decimal(ep),
                                        service_price=Decimal(sp)) for s, e, lv, ep, sp in TOU]
        session.add(template)
        session.add(Partner(operator=operator, name="压测互联平台", partner_type="platform", ip_allowlist="127.0.0.1",
                            **partner_fields()))
        session.commit()
        common = {"operator_id": operator.id, "created_at": now, "updated_at": now}
        codes = [f"TS{n:06d}" for n in range(1, stations + 1)]
        session.execute(insert(Station), [
            {**common, "code": code, "name": f"互联压测站{n}", "address": f"压测路{n}号",
             "price_template_id": template.id, "lng": Decimal("118.796877"), "lat": Decimal("32.060255")}
            for n, code in enumerate(codes, 1)])
        station_ids = dict(session.execute(select(Station.code, Station.id).where(
            Station.operator_id == operator.id)).all())
        n_pile = 0
        for start in range(0, stations, 200):
            pile_rows, chunk = [], codes[start:start + 200]
            for code in chunk:
                for _ in range(piles):
                    n_pile += 1
                    pile_rows.append({**common, "station_id": station_ids[code], "code": f"88{n_pile:012d}",
                                      "name": f"互联压测桩{n_pile}", "protocol": "ykc15", "gun_count": 2,
                                      "pile_type": "dc", "power_kw": Decimal(120), "enabled": True,
                                      "online": True})
            session.execute(insert(Pile), pile_rows)
            pile_ids = dict(session.execute(select(Pile.code, Pile.id).where(
                Pile.code.in_([r["code"] for r in pile_rows]))).all())
            session.execute(insert(Connector), [
                {**common, "pile_id": pile_ids[r["code"]], "station_id": r["station_id"], "gun_no": g,
                 "code": f"{r['code']}{g:02d}", "name": f"{r['name']}-{g}",
                 "status": STATUSES[(i * 2 + g) % len(STATUSES)]}
                for i, r in enumerate(pile_rows) for g in (1, 2)])
            session.commit()
        return codes


def ask(client, station_ids: list[str], guns_per_station: int) -> float:
    started = time.perf_counter()
    ret, msg, data = client.call("query_station_status", {"StationIDs": station_ids})
    elapsed = (time.perf_counter() - started) * 1000
    assert ret == 0, (ret, msg)
    infos = data["StationStatusInfos"]
    assert data["Total"] == len(station_ids) == len(infos), data.get("Total")
    assert {i["StationID"] for i in infos} == set(station_ids)
    assert sum(len(i["ConnectorStatusInfos"]) for i in infos) == len(station_ids) * guns_per_station
    return elapsed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stations", type=int, default=1000)
    p.add_argument("--piles", type=int, default=5, help="two-gun piles per station")
    p.add_argument("--rounds", type=int, default=10, help="every station asked this many times (sequential)")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--db-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/bench_tcec")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    p.add_argument("--output", default=str(DEFAULT_OUTPUT))
    args = p.parse_args(argv)

    from bench.history_orders import ensure_database
    from tests.integration.gateway.conftest import free_port
    from tests.interconnect.e2e_support import keys_for
    from tests.interconnect.partner_platform import PartnerClient

    work = tempfile.mkdtemp(prefix="cpms-bench-tcec-")
    if args.db_url.startswith("postgresql"):
        ensure_database(args.db_url, drop=True)
    elif args.db_url.startswith("sqlite:///"):
        Path(args.db_url[len("sqlite:///"):]).unlink(missing_ok=True)
    os.environ.update(INSTANCE_DIR=work, DATABASE_URL=args.db_url, REDIS_URL=args.redis_url)
    from app import create_app
    from app.cli import setup_platform
    from app.extensions import get_redis

    app = create_app("test", SQLALCHEMY_DATABASE_URI=args.db_url, INSTANCE_DIR=work, ADMIN_PASSWORD="bench-admin-pass")
    with app.app_context():
        get_redis().flushdb()
        log("migrating")
        setup_platform(demo=False)
    started = time.perf_counter()
    codes = seed(app, args.stations, args.piles)
    guns = args.stations * args.piles * 2
    log(f"seeded {len(codes)} stations, {args.stations * args.piles} piles, {guns} guns "
        f"in {time.perf_counter() - started:.1f} s")

    port = free_port()
    env = dict(os.environ, CPMS_CONFIG="test", WEB_HOST="127.0.0.1", WEB_PORT=str(port))
    web_log = open(Path(work) / "web.log", "w")
    web = subprocess.Popen([sys.executable, "run.py", "web"], cwd=ROOT, env=env, stdout=web_log,
                           stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or web.poll() is not None:
                    raise SystemExit(f"web did not start: {(Path(work) / 'web.log').read_text()[-2000:]}") from None
                time.sleep(0.2)
        calling_us, _ = keys_for(partner_fields())
        base = f"http://127.0.0.1:{port}/evcs/v1.0"
        client = PartnerClient(base, calling_us, timeout=30)
        client.token()
        batches = [codes[i:i + BATCH] for i in range(0, len(codes), BATCH)]
        for batch in batches[:3]:                      # warm-up
            ask(client, batch, args.piles * 2)
        log(f"sequential: {args.rounds} rounds x {len(batches)} requests of {BATCH} stations")
        sequential = [ask(client, batch, args.piles * 2) for _ in range(args.rounds) for batch in batches]

        log(f"{args.concurrency} clients in parallel")
        parallel: list[float] = []
        lock = threading.Lock()
        work_items = [batch for _ in range(args.rounds) for batch in batches]

        def run(part):
            c = PartnerClient(base, calling_us, timeout=30)
            c.token()
            times = [ask(c, batch, args.piles * 2) for batch in part]
            with lock:
                parallel.extend(times)

        threads = [threading.Thread(target=run, args=(work_items[i::args.concurrency],))
                   for i in range(args.concurrency)]
        wall = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - wall
        if len(parallel) != len(work_items):
            raise SystemExit("a parallel client failed (see above)")
    finally:
        web.terminate()
        web.wait(15)
        web_log.close()

    def stats(values):
        return {"requests": len(values), "p50_ms": round(statistics.median(values), 1),
                "p95_ms": round(percentile(values, 95), 1), "p99_ms": round(percentile(values, 99), 1),
                "max_ms": round(max(values), 1)}

    result = {
        "benchmark": "T/CEC query_station_status (50 StationIDs per request)",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(), "platform": platform.platform(), "machine_cores": os.cpu_count(),
        "load_average_1_5_15_min_at_end": [round(x, 2) for x in os.getloadavg()],
        "database": args.db_url.split("@")[-1] if "@" in args.db_url else args.db_url,
        "setup": {"stations": args.stations, "piles": args.stations * args.piles, "guns": guns,
                  "stations_per_request": BATCH, "rounds": args.rounds,
                  "server": "python run.py web (gevent WSGI, one process)",
                  "client": "tests/interconnect/partner_platform.py PartnerClient (own AES/HMAC, Sig verified)",
                  "target": f"p95 < {TARGET_MS} ms"},
        "sequential": stats(sequential),
        "parallel": {**stats(parallel), "clients": args.concurrency,
                     "requests_per_second": round(len(parallel) / wall, 1)},
    }
    result["target_met"] = result["sequential"]["p95_ms"] < TARGET_MS
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    log(f"sequential {result['sequential']}; parallel {result['parallel']} -> {args.output}")
    return 0 if result["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
