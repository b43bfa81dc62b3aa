"""Many virtual piles: start them at a bounded rate, show progress, stop after a duration, report."""

from __future__ import annotations

import gc
import json
import math
import random
import sys
import time
from array import array
from collections import deque
from dataclasses import dataclass, field

import gevent

from app.gateway.simulator.pile import SimConfig, VirtualPile


@dataclass
class Stats:
    """Counters shared by every virtual pile of a run (single-threaded: plain ints)."""

    started: float = field(default_factory=time.monotonic)
    warmup: float = 0.0                     # heartbeat latencies before this many seconds are kept apart
    piles: int = 0
    connected: int = 0
    logged_in: int = 0
    charging: int = 0
    refused: int = 0
    dropped: int = 0
    connect_errors: int = 0
    injected_disconnects: int = 0
    heartbeat_timeouts: int = 0
    frames_in: int = 0
    frames_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    errors: int = 0
    faults: int = 0
    garbage: int = 0
    reboots: int = 0
    bills_sent: int = 0
    bills_acked: int = 0
    bills_unacked: int = 0
    commands: dict[int, int] = field(default_factory=dict)
    qr_prefixes: dict[str, list] = field(default_factory=dict)   # pile code -> [kind, prefix] of its last 0xF0
    latencies: array = field(default_factory=lambda: array("d"))
    warmup_latencies: array = field(default_factory=lambda: array("d"))
    recent: deque = field(default_factory=lambda: deque(maxlen=5000))
    max_logged_in: int = 0

    def heartbeat_latency(self, seconds: float) -> None:
        self.recent.append(seconds)
        if time.monotonic() - self.started < self.warmup:
            self.warmup_latencies.append(seconds)
        else:
            self.latencies.append(seconds)

    def line(self) -> str:
        self.max_logged_in = max(self.max_logged_in, self.logged_in)
        p50, p99 = percentile(self.recent, 50), percentile(self.recent, 99)
        return (f"[sim {time.monotonic() - self.started:6.0f}s] piles {self.piles} connected {self.connected} "
                f"online {self.logged_in} charging {self.charging} | frames in {self.frames_in} "
                f"out {self.frames_out} | bills {self.bills_acked}/{self.bills_sent} | errors {self.errors} "
                f"dropped {self.dropped} refused {self.refused} | hb ack p50 {ms(p50)} p99 {ms(p99)}")

    def summary(self) -> dict:
        out = {k: v for k, v in self.__dict__.items()
               if isinstance(v, int) and not isinstance(v, bool)}
        out["seconds"] = round(time.monotonic() - self.started, 1)
        out["commands"] = {f"0x{k:02X}": v for k, v in sorted(self.commands.items())}
        out["qr_prefixes"] = dict(self.qr_prefixes)
        for name, samples in (("heartbeat_ack", self.latencies), ("heartbeat_ack_warmup", self.warmup_latencies)):
            out[name] = latency_summary(samples)
        return out


def percentile(samples, pct: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(0, math.ceil(pct / 100 * len(ordered)) - 1)
    return ordered[rank]


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}ms"


def latency_summary(samples) -> dict:
    if not samples:
        return {"count": 0}
    ordered = sorted(samples)

    def at(pct):
        return round(ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)] * 1000, 3)

    return {"count": len(ordered), "p50_ms": at(50), "p90_ms": at(90), "p99_ms": at(99), "p999_ms": at(99.9),
            "max_ms": round(ordered[-1] * 1000, 3), "mean_ms": round(sum(ordered) / len(ordered) * 1000, 3)}


class Simulator:
    """Runs ``piles`` = [(code, gun count)] as virtual piles against one gateway."""

    def __init__(self, piles: list[tuple[str, int]], config: SimConfig, *, ramp: float = 500.0, seed: int = 1,
                 warmup: float = 0.0, cards: dict[str, list[bytes]] | None = None, on_refused=None):
        """``cards``: pile code -> the physical card numbers swiped there (``config.card_starts``);
        ``on_refused(card, reason)``: a swipe the platform refused."""
        self.config = config
        self.ramp = ramp
        self.stats = Stats(warmup=warmup)
        rng = random.Random(seed)
        cards = cards or {}
        self.piles = [VirtualPile(code, guns, config, self.stats, random.Random(rng.random()),
                                  start_cards=cards.get(code), on_refused=on_refused)
                      for code, guns in piles]
        self.stats.piles = len(self.piles)
        self.greenlets: list[gevent.Greenlet] = []

    def start(self) -> None:
        """Spawn the piles, at most ``ramp`` per second (in the background)."""
        self.greenlets.append(gevent.spawn(self._spawn_all))

    def _spawn_all(self) -> None:
        delay = 1.0 / self.ramp if self.ramp > 0 else 0
        started = time.monotonic()
        for i, pile in enumerate(self.piles):
            self.greenlets.append(gevent.spawn(pile.run))
            if delay:
                wait = started + (i + 1) * delay - time.monotonic()
                if wait > 0:
                    gevent.sleep(wait)
            elif i % 100 == 99:
                gevent.sleep(0)

    def stop(self) -> None:
        for pile in self.piles:
            pile.stop()
        gevent.killall(self.greenlets, timeout=5)

    def run(self, duration: float | None = None, progress: float = 1.0, stream=None) -> dict:
        """Start, show a status line every ``progress`` s (0: none), stop after ``duration`` s (None: until
        interrupted); returns the summary."""
        stream = stream or sys.stderr
        tty = hasattr(stream, "isatty") and stream.isatty()
        self.start()
        deadline = None if duration is None else time.monotonic() + duration
        last_line = 0.0
        next_freeze = time.monotonic() + 30
        try:
            while deadline is None or time.monotonic() < deadline:
                gevent.sleep(min(1.0, progress or 1.0))
                now = time.monotonic()
                if now >= next_freeze:              # keep GC pauses out of the latency figures
                    gc.freeze()
                    next_freeze = now + 30
                if progress and now - last_line >= (progress if tty else max(progress, 10.0)):
                    last_line = now
                    stream.write(("\r" + self.stats.line() + "\033[K") if tty else self.stats.line() + "\n")
                    stream.flush()
        except KeyboardInterrupt:
            pass
        finally:
            summary = self.stats.summary()
            self.stop()
            if progress:
                stream.write(("\n" if tty else "") + self.stats.line() + "\n")
                stream.flush()
        return summary


def codes_with_prefix(prefix: str, count: int, start: int = 1) -> list[str]:
    """``count`` 14-digit pile codes ``prefix`` + zero-padded number."""
    width = 14 - len(prefix)
    if not prefix.isdigit() or width < len(str(start + count - 1)):
        raise ValueError(f"prefix {prefix!r} leaves no room for {count} piles")
    return [f"{prefix}{n:0{width}d}" for n in range(start, start + count)]


def piles_from_db(limit: int | None = None) -> list[tuple[str, int]]:
    """(code, gun count) of the enabled YKC piles in the configured database (DATABASE_URL)."""
    from sqlalchemy import func, select

    from app import create_app
    from app.extensions import db
    from app.models import Connector, Pile

    app = create_app()
    with app.app_context():
        query = (select(Pile.code, func.count(Connector.id))
                 .join(Connector, Connector.pile_id == Pile.id, isouter=True)
                 .where(Pile.enabled.is_(True), Pile.protocol.like("ykc%"))
                 .group_by(Pile.code).order_by(Pile.code))
        if limit:
            query = query.limit(limit)
        return [(code, max(1, guns)) for code, guns in db.session.execute(query)]


def cards_from_db(codes: list[str]) -> dict[str, list[bytes]]:
    """Pile code -> physical numbers of the active member cards of the pile's operator (who may swipe there)."""
    from sqlalchemy import select

    from app import create_app
    from app.extensions import db
    from app.models import Card, Pile

    app = create_app()
    with app.app_context():
        by_operator: dict[int, list[bytes]] = {}
        for operator_id, physical in db.session.execute(
                select(Card.operator_id, Card.physical_no).where(Card.status == "active", Card.member_id.isnot(None))
                .order_by(Card.id)):
            if physical and len(physical) == 16:
                by_operator.setdefault(operator_id, []).append(bytes.fromhex(physical))
        piles = db.session.execute(select(Pile.code, Pile.operator_id).where(Pile.code.in_(codes))).all()
        return {code: by_operator[op] for code, op in piles if by_operator.get(op)}


class DemoTopUp:
    """``on_refused`` of the demo: a member whose card was refused for balance recharges the wallet
    (a demo recharge, as the demo data's), so the demo keeps charging day after day."""

    AMOUNT = "500"

    def __init__(self):
        self.app = None

    def __call__(self, card: bytes, reason: int) -> None:
        from decimal import Decimal
        from uuid import uuid4

        from sqlalchemy import select

        from app import create_app
        from app.extensions import db
        from app.gateway.ykc import codes
        from app.models import Card
        from app.security.scope import platform_scope
        from app.services import wallet

        if reason != codes.AuthFailure.INSUFFICIENT_BALANCE:
            return
        self.app = self.app or create_app()
        with self.app.app_context(), platform_scope("demo-topup"):
            member_id = db.session.scalar(select(Card.member_id).where(Card.physical_no == card.hex().upper()))
            if member_id is not None:
                wallet.post_entry(member_id, Decimal(self.AMOUNT), "recharge", idempotency_key=f"demo:topup:"
                                  f"{uuid4().hex}", remark="demo recharge")
                db.session.commit()
            db.session.remove()


def write_summary(path: str, summary: dict) -> None:
    with open(path, "w") as fh:
        json.dump(summary, fh, indent=2)
