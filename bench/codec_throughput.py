"""YKC codec throughput on one core: 0x13 realtime decode (stream reader and decode_frame) and 0x04 encode.

Usage: .venv/bin/python bench/codec_throughput.py [--seconds 5] [--output bench/results/codec_throughput.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "codec_throughput.json"
FRAMES_PER_CHUNK = 60          # ~4 KB per feed, like one socket read


def measure(step: Callable[[], int], seconds: float) -> dict:
    """Call ``step`` (which returns how many frames it handled) until ``seconds`` have passed."""
    step()                                     # warm up
    frames = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        frames += step()
        now = time.perf_counter()
        if now >= deadline:
            break
    elapsed = now - start
    return {
        "frames": frames,
        "seconds": round(elapsed, 3),
        "frames_per_second": round(frames / elapsed),
        "microseconds_per_frame": round(elapsed / frames * 1e6, 2),
    }


def run(seconds: float) -> dict:
    sys.path.insert(0, str(ROOT))
    from app.gateway.ykc import (
        FrameEvent,
        FrameReader,
        HeartbeatAck,
        RealtimeData,
        decode_frame,
        encode_frame,
    )

    realtime = RealtimeData(
        transaction_serial="32010600019236012001061803423060", pile_code="32010600019236", gun="01",
        status=3, gun_homed=0, gun_plugged=1,
        output_voltage=Decimal("373.2"), output_current=Decimal("101.2"),
        gun_temperature=34, soc=78, battery_max_temperature=35, charged_minutes=16, remaining_minutes=32,
        energy=Decimal("8.8000"), lossy_energy=Decimal("8.8000"), amount=Decimal("9.3280"),
    )
    frame = encode_frame(realtime, 0x1234)
    chunk = frame * FRAMES_PER_CHUNK
    reader = FrameReader()

    def reader_step() -> int:
        events = reader.feed(chunk)
        assert len(events) == FRAMES_PER_CHUNK and isinstance(events[-1], FrameEvent)
        return FRAMES_PER_CHUNK

    def decode_step() -> int:
        for _ in range(100):
            decode_frame(frame)
        return 100

    def encode_step() -> int:
        for seq in range(100):
            encode_frame(HeartbeatAck(pile_code="32010600019236", gun="01"), seq)
        return 100

    return {
        "realtime_0x13_decode_via_frame_reader": measure(reader_step, seconds),
        "realtime_0x13_decode_frame": measure(decode_step, seconds),
        "heartbeat_ack_0x04_encode_frame": measure(encode_step, seconds),
    }


def pin_to_one_core() -> int | None:
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each measurement")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON result file")
    args = parser.parse_args(argv)
    core = pin_to_one_core()
    results = run(args.seconds)
    report = {
        "benchmark": "ykc codec throughput",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine_cores": os.cpu_count(),
        "pinned_core": core,
        "seconds_per_measurement": args.seconds,
        "frames_per_reader_feed": FRAMES_PER_CHUNK,
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    for name, figures in results.items():
        print(f"{name:42s} {figures['frames_per_second']:>10,d} frames/s  "
              f"({figures['microseconds_per_frame']} us/frame)")
    print(f"written to {args.output}")
    return report


if __name__ == "__main__":
    main()
