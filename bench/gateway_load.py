"""Gateway load test: N simulated piles (a separate simulator process) against ``python run.py gateway``.

Default: 10,000 piles x 2 guns, heartbeat every 10 s, 30 % of the guns charging with realtime data
every 15 s (idle guns every 5 min), measured for 10 minutes after a 60 s warm-up (connections ramp
up at 500 per second). The gateway does its real work: a database-backed login per pile (the piles
are rows of a throwaway bench database), live state in Redis, batched status writes. Measured:
connected / dropped piles, heartbeat-ack latency seen by the simulator, gateway CPU and RSS (from
/proc), frame counts from the gateway's metrics endpoint.

Usage::

    .venv/bin/python bench/gateway_load.py [--piles 10000] [--duration 600] [--warmup 60]
        [--db-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_gateway]
        [--redis-url redis://127.0.0.1:6379/13] [--output bench/results/gateway_load.json]

The bench database is created and migrated when missing; its piles (codes 66000000000001...) are
added once. The Redis database given is flushed at the start (use a spare index). The open-file
limit is raised to the hard limit (both child processes inherit it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "gateway_load.json"
PREFIX = "66"
TOU = [(0, 480, "valley", "0.31", "0.5"), (480, 600, "flat", "0.62", "0.6"), (600, 840, "peak", "1.05", "0.7"),
       (840, 1020, "flat", "0.62", "0.6"), (1020, 1140, "sharp", "1.25", "0.8"), (1140, 1260, "peak", "1.05", "0.7"),
       (1260, 1440, "flat", "0.62", "0.6")]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(text: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {text}", flush=True)


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database of ``url`` if it does not exist."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    target = make_url(url)
    if not target.drivername.startswith("postgresql"):
        return
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}).scalar():
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
            log(f"created database {target.database}")
    admin.dispose()


def seed(app, piles: int) -> None:
    """Migrate the bench database and add the bench operator, station, template and piles (once)."""
    from flask_migrate import upgrade
    from sqlalchemy import func, insert, select

    from app.extensions import db
    from app.models import Connector, Operator, Pile, PricePeriod, PriceTemplate, Station

    with app.app_context():
        upgrade()
        session = db.session
        operator = session.scalar(select(Operator).where(Operator.code == "BENCH0001"))
        if operator is None:
            operator = Operator(code="BENCH0001", name="压测运营商", short_name="压测")
            template = PriceTemplate(operator=operator, code="BENCHTPL", name="压测模版")
            template.periods = [PricePeriod(start_minute=s, end_minute=e, level=lv, electricity_price=Decimal(ep),
                                            service_price=Decimal(sp)) for s, e, lv, ep, sp in TOU]
            session.add(Station(operator=operator, code="BENCH01", name="压测站", address="bench",
                                price_template=template))
            session.commit()
        station = session.scalar(select(Station).where(Station.code == "BENCH01"))
        have = session.scalar(select(func.count()).select_from(Pile).where(Pile.station_id == station.id))
        if have >= piles:
            return
        log(f"adding piles {have + 1}..{piles} to the bench database")
        now = datetime.now(UTC).replace(tzinfo=None)
        common = {"operator_id": operator.id, "station_id": station.id, "created_at": now, "updated_at": now}
        for start in range(have + 1, piles + 1, 1000):
            numbers = range(start, min(piles, start + 999) + 1)
            session.execute(insert(Pile), [
                {**common, "code": f"{PREFIX}{n:012d}", "name": f"压测桩{n}", "protocol": "ykc15", "gun_count": 2,
                 "pile_type": "dc", "power_kw": Decimal(120), "enabled": True, "online": False}
                for n in numbers])
            ids = dict(session.execute(select(Pile.code, Pile.id).where(
                Pile.code.in_([f"{PREFIX}{n:012d}" for n in numbers]))).all())
            session.execute(insert(Connector), [
                {**common, "pile_id": ids[f"{PREFIX}{n:012d}"], "gun_no": g, "code": f"{PREFIX}{n:012d}{g:02d}",
                 "name": f"{n}-{g}", "status": "offline"} for n in numbers for g in (1, 2)])
            session.commit()


def proc_sample(pid: int) -> tuple[float, float]:
    """(CPU seconds used so far, RSS in MiB) of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    with open(f"/proc/{pid}/status") as fh:
        rss = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024
    return cpu, rss


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def scrape(port: int) -> dict[str, float]:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def frames(metrics: dict, direction: str) -> dict[str, int]:
    pattern = re.compile(rf'ykc_gateway_frames_{direction}_total{{type="(0x..)"}}')
    return {m.group(1): int(v) for k, v in metrics.items() if (m := pattern.fullmatch(k))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--piles", type=int, default=10000)
    p.add_argument("--duration", type=float, default=600, help="measured seconds after the warm-up")
    p.add_argument("--warmup", type=float, default=60)
    p.add_argument("--heartbeat", type=float, default=10)
    p.add_argument("--realtime-charging", type=float, default=15)
    p.add_argument("--charging-ratio", type=float, default=0.3)
    p.add_argument("--ramp", type=float, default=500, help="new connections per second")
    p.add_argument("--db-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/bench_gateway")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    p.add_argument("--port", type=int, default=28767)
    p.add_argument("--metrics-port", type=int, default=29108)
    p.add_argument("--output", default=str(DEFAULT_OUTPUT))
    args = p.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    busy = [port for port in (args.port, args.metrics_port) if port_in_use(port)]
    if busy:
        sys.exit(f"ports {busy} are in use: another gateway is running")
    nofile = raise_nofile()
    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    env = dict(os.environ)
    env.update(DATABASE_URL=args.db_url, REDIS_URL=args.redis_url, INSTANCE_DIR=str(work), CPMS_CONFIG="production",
               GATEWAY_HOST="127.0.0.1", GATEWAY_PORT=str(args.port), GATEWAY_METRICS_PORT=str(args.metrics_port),
               GATEWAY_NODE_ID="bench", SECRET_KEY="bench")
    os.environ.update(env)
    ensure_database(args.db_url)
    from app import create_app

    app = create_app("production")
    seed(app, args.piles)
    with app.app_context():
        from app.extensions import get_redis

        get_redis().flushdb()

    gateway_log = open(work / "gateway.log", "w")
    gateway = subprocess.Popen([sys.executable, "run.py", "gateway"], cwd=ROOT, env=env, stdout=gateway_log,
                               stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while not scrape(args.metrics_port) or gateway.poll() is not None:
        if gateway.poll() is not None or time.time() > deadline:
            sys.exit(f"gateway did not start: {(work / 'gateway.log').read_text()[-2000:]}")
        time.sleep(0.5)
    log(f"gateway pid {gateway.pid} on :{args.port}; starting {args.piles} piles (open-file limit {nofile})")

    stats_file = work / "simulator.json"
    total = args.warmup + args.duration
    sim_cmd = [sys.executable, "-m", "app.gateway.simulator", "--port", str(args.port), "--prefix", PREFIX,
               "--piles", str(args.piles), "--guns", "2", "--heartbeat", str(args.heartbeat),
               "--realtime-charging", str(args.realtime_charging), "--realtime-idle", "300",
               "--charging-ratio", str(args.charging_ratio), "--ramp", str(args.ramp), "--duration", str(total),
               "--warmup", str(args.warmup), "--progress", "30", "--stats-file", str(stats_file)]
    simulator = subprocess.Popen(sim_cmd, cwd=ROOT, env=env)

    started = time.monotonic()
    cpu0, _ = proc_sample(gateway.pid)
    samples = []
    steady_cpu = None
    last_cpu, last_t = cpu0, started
    while simulator.poll() is None:
        time.sleep(5)
        now = time.monotonic()
        cpu, rss = proc_sample(gateway.pid)
        metrics = scrape(args.metrics_port)
        samples.append({"t": round(now - started, 1), "cpu_pct": round((cpu - last_cpu) / (now - last_t) * 100, 1),
                        "rss_mib": round(rss, 1), "piles_online": int(metrics.get("ykc_gateway_piles_online", -1)),
                        "connections": int(metrics.get("ykc_gateway_connections", -1))})
        last_cpu, last_t = cpu, now
        if steady_cpu is None and now - started >= args.warmup:
            steady_cpu = (cpu, now)
        if len(samples) % 12 == 0:
            log(f"gateway {samples[-1]}")
    end_cpu, end_rss = proc_sample(gateway.pid)
    end_t = time.monotonic()
    metrics = scrape(args.metrics_port)
    gateway.send_signal(signal.SIGTERM)
    try:
        gateway.wait(60)
    except subprocess.TimeoutExpired:
        gateway.kill()
    gateway_log.close()

    sim = json.loads(stats_file.read_text())
    steady = [s for s in samples if args.warmup <= s["t"] <= total - 5]      # not the simulator's shutdown
    cpu_steady = (end_cpu - steady_cpu[0]) / (end_t - steady_cpu[1]) * 100 if steady_cpu else None
    frames_in, frames_out = frames(metrics, "in"), frames(metrics, "out")
    latency = sim["heartbeat_ack"]
    result = {
        "benchmark": "gateway load",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine_cores": os.cpu_count(),
        "database": args.db_url.split("@")[-1],
        "setup": {"piles": args.piles, "guns": args.piles * 2, "heartbeat_s": args.heartbeat,
                  "charging_ratio": args.charging_ratio, "realtime_charging_s": args.realtime_charging,
                  "realtime_idle_s": 300, "warmup_s": args.warmup, "measured_s": args.duration,
                  "ramp_per_s": args.ramp, "simulator": "separate process (python -m app.gateway.simulator)"},
        "connections": {"max_logged_in": sim["max_logged_in"], "min_online_steady": min(
            (s["piles_online"] for s in steady), default=None), "dropped": sim["dropped"], "refused": sim["refused"],
            "connect_errors": sim["connect_errors"], "simulator_errors": sim["errors"]},
        "heartbeat_ack_latency_ms": latency,
        "heartbeat_ack_latency_warmup_ms": sim["heartbeat_ack_warmup"],
        "gateway": {
            "cpu_pct_steady_avg": round(cpu_steady, 1) if cpu_steady is not None else None,
            "cpu_pct_max_5s": max((s["cpu_pct"] for s in steady), default=None),
            "rss_mib_max": max(s["rss_mib"] for s in samples) if samples else None,
            "rss_mib_end": round(end_rss, 1),
            "frames_in": frames_in, "frames_out": frames_out,
            "frames_in_per_s": round(sum(frames_in.values()) / (end_t - started), 1),
            "decode_errors": int(metrics.get("ykc_gateway_decode_errors_total", 0)),
            "db_flush_errors": int(metrics.get("ykc_gateway_db_flush_errors_total", 0)),
            "db_flushes": int(metrics.get("ykc_gateway_db_flush_seconds_count", 0)),
            "db_flush_seconds_total": round(metrics.get("ykc_gateway_db_flush_seconds_sum", 0), 3),
        },
        "simulator": {k: sim[k] for k in ("frames_in", "frames_out", "bills_sent", "bills_acked", "seconds")},
        "samples_every_5s": samples,
    }
    result["targets"] = {
        "all_connected": result["connections"]["min_online_steady"] == args.piles and sim["dropped"] == 0
        and sim["refused"] == 0,
        "p99_below_100ms": latency.get("p99_ms") is not None and latency["p99_ms"] < 100,
        "rss_below_1GiB": result["gateway"]["rss_mib_max"] is not None and result["gateway"]["rss_mib_max"] < 1024,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    log(f"heartbeat ack p50 {latency.get('p50_ms')} ms p99 {latency.get('p99_ms')} ms; gateway CPU "
        f"{result['gateway']['cpu_pct_steady_avg']} %, RSS max {result['gateway']['rss_mib_max']} MiB; "
        f"targets {result['targets']} -> {args.output}")
    return 0 if all(result["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
