"""Command line: ``python -m app.gateway.simulator --host H --port P --piles N [codes] [behaviour]``.

Pile codes: ``--codes-from-db`` (the enabled YKC piles of DATABASE_URL, with their gun counts),
``--codes C1,C2`` or ``--prefix DIGITS`` (generated 14-digit codes, ``--guns`` each).
A status line shows connected / online / charging piles, frames in and out, bills, errors and the
heartbeat-ack latency; ``--stats-file`` receives the final summary as JSON.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import sys

import gevent

from app.gateway.simulator.pile import SimConfig
from app.gateway.simulator.runner import (
    DemoTopUp,
    Simulator,
    cards_from_db,
    codes_with_prefix,
    piles_from_db,
    write_summary,
)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m app.gateway.simulator", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default=os.environ.get("GATEWAY_CONNECT_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GATEWAY_PORT", 8767)))
    p.add_argument("--piles", type=int, default=10, help="how many piles (default 10)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--codes-from-db", action="store_true", help="use the piles of DATABASE_URL")
    src.add_argument("--codes", help="comma-separated pile codes")
    src.add_argument("--prefix", default="99", help="generate codes: prefix + number (default 99)")
    p.add_argument("--start", type=int, default=1, help="first number for --prefix")
    p.add_argument("--guns", type=int, default=2, help="guns per pile for --codes / --prefix")
    p.add_argument("--heartbeat", type=float, default=10.0, help="heartbeat interval, s")
    p.add_argument("--realtime-charging", type=float, default=15.0, help="0x13 interval while charging, s")
    p.add_argument("--realtime-idle", type=float, default=300.0, help="0x13 interval while idle, s")
    p.add_argument("--charging-ratio", type=float, default=0.0, help="share of guns charging after login")
    p.add_argument("--charge-minutes", type=float, help="mean length of a local charge (default: endless)")
    p.add_argument("--idle-minutes", type=float, help="mean idle time before the next local charge")
    p.add_argument("--speed", type=float, default=1.0, help="energy grows this many times faster")
    p.add_argument("--power-kw", type=float, default=60.0)
    p.add_argument("--protocol", choices=("1.5", "1.6"), default="1.5")
    p.add_argument("--bill-retry", type=float, default=30.0, help="resend an unacked 0x3B after, s")
    p.add_argument("--fault-rate", type=float, default=0.0, help="hardware faults per gun per hour")
    p.add_argument("--fault-minutes", type=float, default=2.0, help="how long a hardware fault lasts")
    p.add_argument("--card-starts", action="store_true",
                   help="local charges start with a swipe of a member card of the database (0x31), not offline")
    p.add_argument("--demo-topup", action="store_true",
                   help="with --card-starts: a member refused for balance recharges 500 yuan (demo only)")
    p.add_argument("--disconnect-rate", type=float, default=0.0, help="abrupt disconnects per pile per hour")
    p.add_argument("--garbage-rate", type=float, default=0.0, help="junk bursts per pile per hour")
    p.add_argument("--split-frames", action="store_true", help="send every frame in pieces")
    p.add_argument("--crc-high-first", type=float, default=0.0, help="share of frames with CRC high byte first")
    p.add_argument("--ramp", type=float, default=500.0, help="new connections per second (0: all at once)")
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--warmup", type=float, default=0.0, help="report heartbeat latency before this apart, s")
    p.add_argument("--progress", type=float, default=1.0, help="status line every N s (0: none)")
    p.add_argument("--quiet", action="store_true", help="no status line")
    p.add_argument("--stats-file", help="write the final summary (JSON) here")
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.codes_from_db:
        piles = piles_from_db(args.piles)
    elif args.codes:
        piles = [(c.strip(), args.guns) for c in args.codes.split(",") if c.strip()][:args.piles]
    else:
        piles = [(c, args.guns) for c in codes_with_prefix(args.prefix, args.piles, args.start)]
    if not piles:
        print("simulator: no piles to simulate", file=sys.stderr)
        return 1
    if raise_nofile() < len(piles) + 64:
        print(f"simulator: open-file limit too low for {len(piles)} piles", file=sys.stderr)
    config = SimConfig(
        host=args.host, port=args.port, heartbeat=args.heartbeat, realtime_charging=args.realtime_charging,
        realtime_idle=args.realtime_idle, protocol_version=0x0F if args.protocol == "1.5" else 0x10,
        max_power_kw=args.power_kw, speed=args.speed, charging_ratio=args.charging_ratio,
        charge_minutes=args.charge_minutes, idle_minutes=args.idle_minutes, bill_retry=args.bill_retry,
        fault_rate=args.fault_rate, fault_minutes=args.fault_minutes, card_starts=args.card_starts,
        disconnect_rate=args.disconnect_rate, garbage_rate=args.garbage_rate,
        split_frames=args.split_frames, crc_high_first=args.crc_high_first)
    cards = cards_from_db([code for code, _ in piles]) if args.card_starts else None
    sim = Simulator(piles, config, ramp=args.ramp, seed=args.seed, warmup=args.warmup, cards=cards,
                    on_refused=DemoTopUp() if args.demo_topup else None)
    print(f"[sim] {len(piles)} piles -> {args.host}:{args.port}", file=sys.stderr, flush=True)
    gevent.signal_handler(signal.SIGTERM, gevent.kill, gevent.getcurrent(), KeyboardInterrupt)
    summary = sim.run(duration=args.duration, progress=0 if args.quiet else args.progress)
    if args.stats_file:
        write_summary(args.stats_file, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
