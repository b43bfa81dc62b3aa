"""Gateway efficiency against its floor: CPU per frame of the real gateway vs. a bare responder.

The floor is our own minimal gevent responder (``--serve-floor``): it only frames bytes with the
YKC codec's framing and CRC (0x68 start, length byte, CRC-16/MODBUS) and answers 0x01 -> 0x02,
0x03 -> 0x04, 0x05 -> 0x06 and 0x09 -> 0x0A with prebuilt bodies (reply frames built with the
codec's ``encode_frame``); 0x13 is framed and counted, not answered. No decoding of bodies, no
state, no Redis, no database.

Both are driven in the same run by the same load generator (``python -m app.gateway.simulator`` in
a separate process), in two phases each:

- ``heartbeat``: N piles sending a heartbeat every 0.25 s (0x13 of idle guns every 300 s);
- ``realtime``: N piles with two guns sending 0x13 every 0.5 s per gun (heartbeat every 10 s), i.e.
  the same frame rate.

For each phase, after a warm-up (logins, billing model), CPU seconds of the server process are read
from ``/proc/<pid>/stat`` (utime + stime) and frames are counted by the server (the gateway's
``ykc_gateway_frames_in_total`` metrics, the floor's own counter) over the measured window; the
machine's load average at both ends of the window is stored with each phase (a shared 2-core
machine: above ~2, the load generator falls behind, piles whose heartbeats go unanswered for 0.75 s
reconnect, and the gateway's figures include logins). The
gateway runs as in production (``python run.py gateway``): database-backed logins (PostgreSQL
bench database, as ``bench/gateway_load.py``), live state in Redis, batched DB writes, metrics,
the order hooks (``gateway``); then once more with the no-op hooks (``gateway_without_order_hooks``:
the gateway's own work without the order/occupancy logic behind it; ``--skip-no-hooks`` leaves it out).

Usage::

    .venv/bin/python bench/gateway_floor.py [--piles 1000] [--warmup 12] [--measure 25]
        [--db-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_gateway]
        [--redis-url redis://127.0.0.1:6379/5] [--output bench/results/gateway_floor.json]

The Redis database given is flushed at the start (use a spare index).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "gateway_floor.json"
PREFIX = "66"

PHASES = {
    # name: simulator arguments (same frame rate: 4 frames/s per pile)
    "heartbeat": ["--heartbeat", "0.25", "--realtime-idle", "300", "--guns", "2"],
    "realtime": ["--heartbeat", "10", "--realtime-idle", "0.5", "--guns", "2"],
}


# --- the floor -------------------------------------------------------------------------------------------


def serve_floor(port: int, stats_path: str) -> None:
    """A bare gevent responder: frames, checks the CRC, answers 0x01/0x03/0x05/0x09."""
    import gevent
    from gevent.server import StreamServer

    from app.gateway.ykc import BillingModelReply, RawFrame, check_crc, encode_frame

    model = BillingModelReply(pile_code="00000000000000", billing_model_id="0001").encode()[7:]
    tails = {0x01: (0x02, b"\x00"), 0x03: (0x04, None), 0x05: (0x06, None), 0x09: (0x0A, model)}
    count = [0]

    def reply_body(ftype: int, frame: bytes, tail: bytes | None) -> bytes:
        if ftype == 0x03:                       # pile code + gun + 0
            return frame[6:14] + b"\x00"
        if ftype == 0x05:                       # pile code + model id + 0 (same model)
            return frame[6:15] + b"\x00"
        return frame[6:13] + tail

    def handle(sock, _address):
        buf = bytearray()
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            out = []
            pos, end = 0, len(buf)
            while True:
                start = buf.find(0x68, pos)
                if start < 0:
                    pos = end
                    break
                if end - start < 8:
                    pos = start
                    break
                size = buf[start + 1] + 4
                if end - start < size:
                    pos = start
                    break
                frame = bytes(buf[start:start + size])
                if check_crc(frame) is None:
                    pos = start + 1
                    continue
                pos = start + size
                count[0] += 1
                ftype = frame[5]
                answer = tails.get(ftype)
                if answer is not None:
                    out.append(encode_frame(RawFrame(answer[0], reply_body(ftype, frame, answer[1])), frame[2:4]))
            del buf[:pos]
            if out:
                try:
                    sock.sendall(b"".join(out))
                except OSError:
                    return

    def report():
        while True:
            gevent.sleep(0.5)
            Path(stats_path).write_text(str(count[0]))

    server = StreamServer(("127.0.0.1", port), handle, backlog=4096)
    gevent.spawn(report)
    server.serve_forever()


# --- measuring -------------------------------------------------------------------------------------------


def floor_frames(stats_path: Path) -> int:
    try:
        return int(stats_path.read_text() or 0)
    except (OSError, ValueError):
        return 0


def gateway_frames(metrics_port: int) -> dict[str, int]:
    from gateway_load import frames, scrape

    return frames(scrape(metrics_port), "in")


def run_phase(name, server_pid, count_frames, args, env, work) -> dict:
    from gateway_load import proc_sample

    time.sleep(args.interval)                  # the frame counters are refreshed every 0.5 s
    stats_file = work / f"sim-{name}-{server_pid}.json"
    cmd = [sys.executable, "-m", "app.gateway.simulator", "--port", str(args.port), "--prefix", PREFIX,
           "--piles", str(args.piles), "--ramp", str(args.ramp), "--duration", str(args.warmup + args.measure + 2),
           "--warmup", str(args.warmup), "--progress", "0", "--quiet", "--stats-file", str(stats_file),
           *PHASES[name]]
    sim = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    time.sleep(args.warmup)
    load0 = os.getloadavg()[0]
    cpu0, _ = proc_sample(server_pid)
    sim_cpu0, _ = proc_sample(sim.pid)
    frames0, t0 = count_frames(), time.monotonic()
    time.sleep(args.measure)
    cpu1, rss = proc_sample(server_pid)
    sim_cpu1, _ = proc_sample(sim.pid)
    frames1, t1 = count_frames(), time.monotonic()
    sim.wait(args.measure + 120)
    summary = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    if isinstance(frames0, dict):
        by_type = {k: frames1.get(k, 0) - frames0.get(k, 0) for k in frames1}
        by_type = {k: v for k, v in sorted(by_type.items()) if v}
        total = sum(by_type.values())
    else:
        by_type, total = None, frames1 - frames0
    cpu = cpu1 - cpu0
    return {
        "frames_in": total, "frames_in_by_type": by_type, "seconds": round(t1 - t0, 2),
        "frames_per_s": round(total / (t1 - t0), 1), "cpu_seconds": round(cpu, 2),
        "cpu_pct": round(cpu / (t1 - t0) * 100, 1),
        "cpu_us_per_frame": round(cpu / total * 1e6, 1) if total else None,
        "frames_per_cpu_second": round(total / cpu) if cpu else None,
        "rss_mib": round(rss, 1), "simulator_cpu_pct": round((sim_cpu1 - sim_cpu0) / (t1 - t0) * 100, 1),
        "heartbeat_ack_ms": summary.get("heartbeat_ack"), "simulator_dropped": summary.get("dropped"),
        "simulator_errors": summary.get("errors"),
        # the machine's 1-minute load average at the start and end of the window (2 cores: above 2,
        # processes queue for the CPU and every figure here gets noisier)
        "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)],
    }


def wait_until(check, what: str, proc, log_path: Path, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not check():
        if proc.poll() is not None or time.time() > deadline:
            sys.exit(f"{what} did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.3)


def stop(proc) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--serve-floor", nargs=2, metavar=("PORT", "STATS_FILE"), help=argparse.SUPPRESS)
    p.add_argument("--piles", type=int, default=1000)
    p.add_argument("--warmup", type=float, default=12)
    p.add_argument("--measure", type=float, default=25)
    p.add_argument("--interval", type=float, default=0.6, help=argparse.SUPPRESS)
    p.add_argument("--ramp", type=float, default=500)
    p.add_argument("--phases", default="heartbeat,realtime")
    p.add_argument("--skip-no-hooks", action="store_true", help="measure the gateway with the order hooks only")
    p.add_argument("--db-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/bench_gateway")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    p.add_argument("--port", type=int, default=28777)
    p.add_argument("--metrics-port", type=int, default=29118)
    p.add_argument("--output", default=str(DEFAULT_OUTPUT))
    p.add_argument("--note", default="", help="a remark stored with the results (e.g. how busy the machine was)")
    args = p.parse_args(argv)
    if args.serve_floor:
        serve_floor(int(args.serve_floor[0]), args.serve_floor[1])
        return 0

    from gateway_load import ensure_database, port_in_use, raise_nofile, scrape, seed

    busy = [port for port in (args.port, args.metrics_port) if port_in_use(port)]
    if busy:
        sys.exit(f"ports {busy} are in use")
    raise_nofile()
    phases = [ph for ph in args.phases.split(",") if ph]
    work = Path(tempfile.mkdtemp(prefix="gateway-floor-"))
    env = dict(os.environ)
    env.update(DATABASE_URL=args.db_url, REDIS_URL=args.redis_url, INSTANCE_DIR=str(work), CPMS_CONFIG="production",
               GATEWAY_HOST="127.0.0.1", GATEWAY_PORT=str(args.port), GATEWAY_METRICS_PORT=str(args.metrics_port),
               GATEWAY_NODE_ID="bench-floor", SECRET_KEY="bench", GATEWAY_LOG_LEVEL="WARNING",
               CHARGING_HOOKS=os.environ.get("CHARGING_HOOKS", "app.services.charging:OrderHooks"))
    os.environ.update(env)
    ensure_database(args.db_url)
    from app import create_app

    app = create_app("production")
    seed(app, args.piles)
    with app.app_context():
        from app.extensions import get_redis

        get_redis().flushdb()

    results: dict[str, dict] = {"floor": {}, "gateway": {}}
    # the floor
    stats_path = work / "floor-count"
    floor_log = work / "floor.log"
    with open(floor_log, "w") as fh:
        floor = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve-floor", str(args.port),
                                  str(stats_path)], cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: port_in_use(args.port), "floor", floor, floor_log)
        for name in phases:
            results["floor"][name] = run_phase(name, floor.pid, lambda: floor_frames(stats_path), args, env, work)
            print(f"floor   {name}: {results['floor'][name]['cpu_us_per_frame']} us/frame "
                  f"({results['floor'][name]['frames_per_s']} frames/s)", flush=True)
    finally:
        stop(floor)
    # the gateway: as deployed (the order hooks), and without them (the gateway's own work only)
    variants = {"gateway": env["CHARGING_HOOKS"]}
    if not args.skip_no_hooks:
        variants["gateway_without_order_hooks"] = "app.services.charging_hooks:ChargingHooks"
    for variant, hooks in variants.items():
        results[variant] = {}
        gateway_log = work / f"{variant}.log"
        with open(gateway_log, "w") as fh:
            gateway = subprocess.Popen([sys.executable, "run.py", "gateway"], cwd=ROOT,
                                       env={**env, "CHARGING_HOOKS": hooks}, stdout=fh, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: bool(scrape(args.metrics_port)), variant, gateway, gateway_log)
            for name in phases:
                results[variant][name] = run_phase(name, gateway.pid, lambda: gateway_frames(args.metrics_port),
                                                   args, env, work)
                print(f"{variant} {name}: {results[variant][name]['cpu_us_per_frame']} us/frame "
                      f"({results[variant][name]['frames_per_s']} frames/s)", flush=True)
        finally:
            stop(gateway)
        with app.app_context():
            get_redis().flushdb()

    ratios: dict[str, dict] = {}
    for variant in variants:
        for name in phases:
            floor_us = results["floor"][name]["cpu_us_per_frame"]
            gw_us = results[variant][name]["cpu_us_per_frame"]
            if floor_us and gw_us:
                ratios.setdefault(variant, {})[name] = {
                    "over_floor_cpu": round(gw_us / floor_us, 2),
                    "share_of_floor_frames_per_core_pct": round(floor_us / gw_us * 100, 1)}
    result = {
        "benchmark": "gateway efficiency against its floor",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(), "platform": platform.platform(), "machine_cores": os.cpu_count(),
        "database": args.db_url.split("@")[-1],
        "setup": {"piles": args.piles, "guns_per_pile": 2, "warmup_s": args.warmup, "measured_s": args.measure,
                  "phases": {"heartbeat": "heartbeat every 0.25 s per pile",
                             "realtime": "0x13 every 0.5 s per gun (2 guns), heartbeat every 10 s"},
                  "load_generator": "python -m app.gateway.simulator (separate process, same for both)",
                  "cpu": "utime + stime of the server process from /proc/<pid>/stat over the measured window",
                  "frames": "counted by the server (gateway: ykc_gateway_frames_in_total; floor: own counter)"},
        **results, "ratio": ratios,
        "target": "gateway CPU per frame <= 2x the floor's (>= 50 % of its frames per core)",
        **({"note": args.note} if args.note else {}),
        "target_met": {variant: {name: r["over_floor_cpu"] <= 2.0 for name, r in by_phase.items()}
                       for variant, by_phase in ratios.items()},
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"ratio": ratios, "target_met": result["target_met"]}), "->", args.output, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
