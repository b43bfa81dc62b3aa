"""Pile gateway state writer: live state in Redis, batched database writes, login lookups, bills.

Gateway plumbing (it was ``app.services.gateway_state``): ``app.gateway.session`` decodes frames
and calls :class:`GatewayState`; the business rules it needs come from ``app.services`` (charging
hooks, billing models, data scope). Imports run gateway -> services only: nothing in
``app.services``, ``app.views``, ``app.api`` or ``app.tasks`` imports this module (enforced by
``tests/unit/test_import_direction.py``); they read live state through
:mod:`app.services.live_state`.

- Live state: one Redis hash per pile and per gun (keys in :mod:`app.gateway.registry`), written
  through :class:`LiveWriter`, which coalesces updates per key and pipelines them every
  ``GATEWAY_LIVE_FLUSH_INTERVAL`` (no Redis round trip per frame).
- Database: no write per realtime or heartbeat frame. :class:`DbBatch` collects pile updates
  (login info, online/offline, heartbeat at most every ``GATEWAY_HEARTBEAT_DB_INTERVAL`` per
  pile), connector status changes (+ ConnectorStatusLog rows) and alarm openings/closings, and
  writes them in one transaction every ``GATEWAY_FLUSH_INTERVAL``.
- Synchronous database work (login lookup, billing model, 0x3B storage, hooks) goes through
  :class:`DbLane`: a bounded semaphore (1 for SQLite, which must never be left mid-transaction
  by a yielding greenlet) around an app context.
- 0x3B is stored raw in PileBill, idempotently by its transaction serial, and committed before
  the session acknowledges it with 0x40.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.gateway.registry import Registry, gun_key, owner_key, pile_key
from app.gateway.ykc import (
    BmsDemandOutput,
    BmsHandshake,
    GroundLockReport,
    Login,
    RealtimeData,
    TransactionRecord,
    codes,
    utcnow,
)
from app.models import Alarm, Connector, ConnectorStatusLog, Pile, PileBill, Station
from app.models.pile import CARRIER_YKC, NETWORK_TYPE_YKC
from app.security.scope import platform_scope
from app.services.charging_hooks import ChargingHooks, overrides, refusal
from app.services.fault_codes import realtime_faults
from app.services.live_state import to_jsonable
from app.services.money import q_live_power
from app.services.ykc_pricing import BillingModelError, billing_model_fields

log = logging.getLogger(__name__)

STATUS_BY_YKC = {codes.GunStatus.OFFLINE: "offline", codes.GunStatus.FAULT: "fault",
                 codes.GunStatus.IDLE: "idle", codes.GunStatus.CHARGING: "charging"}
NETWORK_BY_YKC = {v: k for k, v in NETWORK_TYPE_YKC.items()}
CARRIER_BY_YKC = {v: k for k, v in CARRIER_YKC.items()}
LOCK_BY_YKC = {0x55: "locked", 0xFF: "unlocked"}
PARK_BY_YKC = {0x00: "free", 0xFF: "occupied"}


# --- pure rules ---------------------------------------------------------------------------------------


def connector_status(ykc_status: int, plugged: int) -> str | None:
    """Connector.status for a 0x13 status byte (idle + plugged = occupied); None if unknown."""
    status = STATUS_BY_YKC.get(ykc_status)
    if status == "idle" and plugged == 1:
        return "occupied"
    return status


def fault_alarms(ykc_status: int, hardware_faults: int) -> dict[str, str]:
    """Alarm code -> description (the fault-code table's English msgid, translated when shown) for
    what a 0x13 frame reports as faulty."""
    if not hardware_faults and ykc_status != codes.GunStatus.FAULT:
        return {}
    return realtime_faults(ykc_status, hardware_faults)


def protocol_version_text(value: int) -> str:
    """Login protocol byte (version x 10) -> "1.5"."""
    return f"{value // 10}.{value % 10}"


def gun_number(text: str) -> int | None:
    """BCD gun number "01" -> 1 (None for non-decimal junk)."""
    return int(text) if text.isdigit() else None


def iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""


class SecondStamp:
    """``iso(utcnow())`` (second resolution) for per-frame paths: the clock is read again only once the
    second it returned has passed (by the monotonic clock), not for every frame."""

    __slots__ = ("text", "until")

    def __init__(self):
        self.text = ""
        self.until = 0.0

    def __call__(self) -> str:
        mono = time.monotonic()
        if mono < self.until:
            return self.text
        now = utcnow()
        self.text = iso(now)
        self.until = mono + 1 - now.microsecond / 1e6
        return self.text


def realtime_fields(msg: RealtimeData, status: str | None, at: datetime) -> dict:
    """The live gun hash written for a 0x13 frame."""
    power = q_live_power(msg.output_voltage * msg.output_current / 1000)
    return {
        "status": status or "", "ykc_status": msg.status, "plugged": msg.gun_plugged, "homed": msg.gun_homed,
        "voltage": str(msg.output_voltage), "current": str(msg.output_current), "power": str(power),
        "soc": msg.soc, "energy": str(msg.energy), "lossy_energy": str(msg.lossy_energy),
        "amount": str(msg.amount), "gun_temperature": msg.gun_temperature,
        "battery_temperature": msg.battery_max_temperature, "charged_minutes": msg.charged_minutes,
        "remaining_minutes": msg.remaining_minutes, "faults": msg.hardware_faults,
        "serial": msg.transaction_serial, "updated_at": iso(at),
    }


# --- what a session knows about its pile --------------------------------------------------------------


@dataclass
class ConnectorRef:
    id: int
    gun_no: int
    code: str
    status: str                          # last status written (or read at login)
    faults: set[str] = field(default_factory=set)   # open alarm codes
    synced: bool = False                 # a 0x13 was applied since login
    heartbeat_fault: int = 0
    live_sent: dict | None = None        # the 0x13 live hash last written (only changes are rewritten)
    last_realtime: object = None         # the 0x13 message last applied (a repeated body is the same object)


@dataclass
class PileInfo:
    id: int
    code: str
    operator_id: int
    station_id: int
    enabled: bool
    protocol: str
    connectors: dict[int, ConnectorRef] = field(default_factory=dict)
    ttl_at: float = 0.0                  # monotonic time of the last owner-key refresh
    db_heartbeat_at: float = 0.0         # monotonic time of the last heartbeat written to the DB
    live_heartbeat: str = ""             # the live ``last_heartbeat`` last written (second resolution)
    qr_prefix: str = ""                  # QR prefix pushed (0xF0) at login: its model supports it and one is set


# --- database ------------------------------------------------------------------------------------------


def _semaphore(size: int):
    """gevent's own semaphore in a patched (gevent) process: the patched ``threading`` one costs
    several microseconds per use, and the lane is entered for every hooked frame."""
    from gevent import monkey

    if monkey.is_module_patched("threading"):
        from gevent.lock import BoundedSemaphore

        return BoundedSemaphore(size)
    return threading.BoundedSemaphore(size)


class DbLane:
    """At most ``size`` greenlets use the database at once, each in its own app context/session and
    in the platform's data scope (``platform_scope("gateway")``: piles act for no user)."""

    def __init__(self, app, size: int = 0):
        if size <= 0:
            size = 1 if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite") else 4
        self.app = app
        self.size = size
        self._sem = _semaphore(size)

    @contextmanager
    def __call__(self):
        with self._sem, self.app.app_context(), platform_scope("gateway"):
            try:
                yield db.session
            except BaseException:
                db.session.rollback()
                raise


@dataclass
class StatusChange:
    connector_id: int
    pile_id: int
    operator_id: int
    status: str
    previous: str | None
    at: datetime
    reason: str
    log: bool = True                     # False: only re-assert Connector.status (no log row)


@dataclass
class AlarmEvent:
    opened: bool
    pile_id: int
    connector_id: int
    fault_code: str
    at: datetime
    operator_id: int = 0
    station_id: int | None = None
    pile_code: str = ""
    gun_no: int | None = None
    description: str = ""


class DbBatch:
    """Database writes collected in memory and written together by :meth:`flush`."""

    def __init__(self, lane: DbLane, metrics=None):
        self.lane = lane
        self.metrics = metrics
        self.failures = 0
        self._reset()

    def _reset(self):
        self.piles: dict[int, dict] = {}
        self.connectors: dict[int, dict] = {}
        self.statuses: list[StatusChange] = []
        self.alarms: list[AlarmEvent] = []
        self.touched: set[int] = set()          # pile ids with pending status or alarm rows

    def pile(self, pile_id: int, **values) -> None:
        self.piles.setdefault(pile_id, {}).update(values)

    def connector(self, connector_id: int, **values) -> None:
        self.connectors.setdefault(connector_id, {}).update(values)

    def status(self, change: StatusChange) -> None:
        self.statuses.append(change)
        self.touched.add(change.pile_id)

    def alarm(self, event: AlarmEvent) -> None:
        self.alarms.append(event)
        self.touched.add(event.pile_id)

    def pending(self) -> bool:
        return bool(self.piles or self.connectors or self.statuses or self.alarms)

    def touches(self, pile_id: int) -> bool:
        return pile_id in self.piles or pile_id in self.touched

    def flush(self) -> int:
        """Write everything collected in one transaction; on failure keep it for the next try."""
        if not self.pending():
            return 0
        taken = (self.piles, self.connectors, self.statuses, self.alarms, self.touched)
        self._reset()
        started = time.monotonic()
        try:
            with self.lane() as session:
                counts = self._write(session, *taken[:4])
                session.commit()
                partner_status_pushes([c for c in taken[2] if c.log])
        except Exception:
            self.failures += 1
            log.exception("batched gateway write failed (%d in a row); kept for the next flush", self.failures)
            self._restore(*taken)
            if self.metrics:
                self.metrics.inc("ykc_gateway_db_flush_errors_total")
            return 0
        self.failures = 0
        if self.metrics:
            self.metrics.observe("ykc_gateway_db_flush_seconds", time.monotonic() - started)
            for kind, n in counts.items():
                if n:
                    self.metrics.inc("ykc_gateway_db_rows_total", n, kind=kind)
        return sum(counts.values())

    def _restore(self, piles, connectors, statuses, alarms, touched):
        self.touched |= touched
        for store, old in ((self.piles, piles), (self.connectors, connectors)):
            newer = dict(store)
            store.clear()
            store.update(old)
            for key, values in newer.items():
                store.setdefault(key, {}).update(values)
        self.statuses[:0] = statuses
        self.alarms[:0] = alarms

    @staticmethod
    def _write(session, piles, connectors, statuses, alarms) -> dict[str, int]:
        logs = []
        connectors = {cid: dict(values) for cid, values in connectors.items()}
        for change in statuses:
            values = connectors.setdefault(change.connector_id, {})
            values["status"] = change.status
            if change.log:
                values["status_changed_at"] = change.at
                logs.append({"operator_id": change.operator_id, "connector_id": change.connector_id,
                             "pile_id": change.pile_id, "at": change.at, "status": change.status,
                             "previous_status": change.previous, "reason": change.reason[:64]})
        update_by_id(session, Pile.__table__, piles)
        update_by_id(session, Connector.__table__, connectors)
        execute_chunked(session, insert(ConnectorStatusLog.__table__), logs)
        for event in alarms:                     # in order: an alarm may open and close in one batch
            if event.opened:
                session.execute(insert(Alarm).values(
                    operator_id=event.operator_id, station_id=event.station_id, pile_id=event.pile_id,
                    connector_id=event.connector_id, pile_code=event.pile_code, gun_no=event.gun_no,
                    fault_code=event.fault_code, description=event.description[:255], started_at=event.at))
            else:
                session.execute(
                    update(Alarm)
                    .where(Alarm.pile_id == event.pile_id, Alarm.connector_id == event.connector_id,
                           Alarm.fault_code == event.fault_code, Alarm.ended_at.is_(None))
                    .values(ended_at=event.at)
                    .execution_options(synchronize_session=False))
        return {"pile": len(piles), "connector": len(connectors), "status_log": len(logs), "alarm": len(alarms)}


def partner_status_pushes(changes) -> None:
    """Committed gun status changes -> T/CEC notification_stationStatus jobs (coalesced per gun, one
    Redis pipeline; app.services.interconnect_push). Never fails the flush."""
    if not changes:
        return
    try:
        from app.services.interconnect_push import gun_status_changed

        gun_status_changed(changes)
    except Exception:
        log.exception("could not queue partner status pushes")


CHUNK_ROWS = 500


def execute_chunked(session, statement, rows: list[dict]) -> None:
    """executemany in chunks, letting other greenlets run between them (a login storm writes
    thousands of rows; SQLAlchemy's per-row work must not stall the heartbeats)."""
    for start in range(0, len(rows), CHUNK_ROWS):
        session.execute(statement, rows[start:start + CHUNK_ROWS])
        time.sleep(0)


def update_by_id(session, table, rows: dict[int, dict]) -> None:
    """UPDATE table SET ... WHERE id = ...: one executemany per set of columns."""
    groups: dict[tuple, list[dict]] = {}
    for row_id, values in rows.items():
        groups.setdefault(tuple(sorted(values)), []).append({"_id": row_id, **values})
    for columns, params in groups.items():
        statement = (table.update().where(table.c.id == bindparam("_id"))
                     .values({name: bindparam(name) for name in columns}))
        execute_chunked(session, statement, params)


# --- Redis -----------------------------------------------------------------------------------------


class LiveWriter:
    """Redis hash updates coalesced per key, written in pipelines by :meth:`flush`."""

    CHUNK = 1000

    def __init__(self, redis, metrics=None):
        self.redis = redis
        self.metrics = metrics
        self.hashes: dict[str, dict] = {}
        self.expires: dict[str, int] = {}

    def hset(self, key: str, mapping: dict) -> None:
        self.hashes.setdefault(key, {}).update(mapping)

    def expire(self, key: str, ttl: int) -> None:
        self.expires[key] = ttl

    def flush(self) -> int:
        hashes, expires = self.hashes, self.expires
        if not hashes and not expires:
            return 0
        self.hashes, self.expires = {}, {}
        ops = [("hset", k, m) for k, m in hashes.items()] + [("expire", k, t) for k, t in expires.items()]
        try:
            for start in range(0, len(ops), self.CHUNK):
                pipe = self.redis.pipeline(transaction=False)
                for op, key, arg in ops[start:start + self.CHUNK]:
                    if op == "hset":
                        pipe.hset(key, mapping=arg)
                    else:
                        pipe.expire(key, arg)
                pipe.execute()
                time.sleep(0)                # let connections run between chunks (gevent)
        except Exception:
            log.exception("live state write to Redis failed; %d updates dropped", len(ops))
            return 0
        return len(ops)


# --- the gateway's state service ------------------------------------------------------------------------


@dataclass
class StateSettings:
    node: str
    registry_ttl: int = 90
    heartbeat_db_interval: float = 60.0
    price_cache_ttl: float = 10.0
    db_concurrency: int = 0


class GatewayState:
    """Everything a pile session changes outside its connection."""

    def __init__(self, app, redis, settings: StateSettings, metrics=None, hooks: ChargingHooks | None = None):
        self.app = app
        self.redis = redis
        self.settings = settings
        self.metrics = metrics
        self.hooks = hooks or ChargingHooks()
        self.lane = DbLane(app, settings.db_concurrency)
        self.batch = DbBatch(self.lane, metrics)
        self.live = LiveWriter(redis, metrics)
        self.registry = Registry(redis)
        self.stamp = SecondStamp()
        self._models: dict[int, tuple[float, dict | None]] = {}
        self._model_locks: dict[int, object] = {}        # station id -> semaphore of its model load
        self._hooked = {name for name in ("on_remote_start_reply", "on_remote_stop_reply", "on_realtime",
                                          "on_bms", "on_ground_lock", "on_transaction_record")
                        if overrides(self.hooks, name)}
        self._realtime_hooked = "on_realtime" in self._hooked
        if metrics is not None:               # realtime samples the flush set aside (cluster-wide, in Redis)
            metrics.gauge("cpms_samples_set_aside", lambda: self._set_aside_count()[0])
            metrics.gauge("cpms_samples_set_aside_total", lambda: self._set_aside_count()[1])

    def _set_aside_count(self) -> tuple[int, int]:
        from app.services.charging import DEAD_SAMPLES_KEY, DEAD_SAMPLES_TOTAL

        return int(self.redis.llen(DEAD_SAMPLES_KEY)), int(self.redis.get(DEAD_SAMPLES_TOTAL) or 0)

    # login / logout

    def lookup_pile(self, code: str) -> PileInfo | None:
        """The pile with its connectors and open alarms, or None when unknown."""
        return self.lookup_piles([code])[code]

    def lookup_piles(self, codes: list[str]) -> dict[str, PileInfo | None]:
        """:meth:`lookup_pile` for many codes at once (a login storm: three queries per batch)."""
        with self.lane() as s:
            rows = s.execute(select(Pile.id, Pile.code, Pile.operator_id, Pile.station_id, Pile.enabled,
                                    Pile.protocol).where(Pile.code.in_(codes))).all()
            infos = {r.id: PileInfo(id=r.id, code=r.code, operator_id=r.operator_id, station_id=r.station_id,
                                    enabled=bool(r.enabled), protocol=r.protocol or "") for r in rows}
            stale = any(self.batch.touches(pile_id) for pile_id in infos)   # earlier sessions' writes pending
            if infos and not stale:
                self._load_connectors(s, infos)
            if infos:
                self._load_qr_prefixes(s, infos)
        if stale:
            self.batch.flush()
            with self.lane() as s:
                self._load_connectors(s, infos)
        by_code = {info.code: info for info in infos.values()}
        return {code: by_code.get(code) for code in codes}

    @staticmethod
    def _load_qr_prefixes(s, infos: dict[int, PileInfo]) -> None:
        """The QR prefix of each pile whose model supports 0xF0 (app.services.qrcodes: the operator's
        default channel prefix); one query, plus one per operator of such piles."""
        from app.models import PileModel
        from app.services import qrcodes

        supported = s.scalars(select(Pile.id).join(PileModel, PileModel.id == Pile.model_id)
                              .where(Pile.id.in_(list(infos)), PileModel.supports_qr_prefix.is_(True))).all()
        prefixes: dict[int, str] = {}
        for pile_id in supported:
            info = infos[pile_id]
            if info.operator_id not in prefixes:
                prefixes[info.operator_id] = qrcodes.prefix_for(info.operator_id, session=s)
            info.qr_prefix = prefixes[info.operator_id]

    @staticmethod
    def _load_connectors(s, infos: dict[int, PileInfo]) -> None:
        refs = {}
        for c in s.execute(select(Connector.id, Connector.pile_id, Connector.gun_no, Connector.code,
                                  Connector.status).where(Connector.pile_id.in_(list(infos)))):
            refs[c.id] = infos[c.pile_id].connectors[c.gun_no] = ConnectorRef(id=c.id, gun_no=c.gun_no, code=c.code,
                                                                               status=c.status)
        for a in s.execute(select(Alarm.connector_id, Alarm.fault_code)
                           .where(Alarm.pile_id.in_(list(infos)), Alarm.ended_at.is_(None))):
            if a.connector_id in refs:
                refs[a.connector_id].faults.add(a.fault_code)

    def accepts(self, info: PileInfo | None) -> bool:
        return info is not None and info.enabled and info.protocol.startswith("ykc")

    def pile_online(self, info: PileInfo, msg: Login, conn: str, peer: str, mono: float) -> None:
        now = utcnow()
        version = protocol_version_text(msg.protocol_version)
        self.registry.claim(info.code, self.settings.node, conn, self.settings.registry_ttl)
        self.live.hset(pile_key(info.code), {
            "online": 1, "node": self.settings.node, "peer": peer, "login_at": iso(now),
            "last_heartbeat": iso(now), "firmware": msg.firmware_version, "protocol_version": version,
            "iccid": msg.sim, "gun_count": msg.gun_count, "offline_reason": ""})
        self.batch.pile(info.id, online=True, last_login_at=now, last_heartbeat_at=now, protocol_version=version,
                        firmware=msg.firmware_version[:32], iccid=msg.sim[:20],
                        network_type=NETWORK_BY_YKC.get(msg.network_type, "other"),
                        carrier=CARRIER_BY_YKC.get(msg.carrier, "other"))
        info.ttl_at = info.db_heartbeat_at = mono

    def pile_offline(self, info: PileInfo, conn: str, reason: str) -> bool:
        """Mark the pile and its guns offline, if this connection still owns it."""
        if not self.registry.release(info.code, self.settings.node, conn):
            return False
        self._offline(info, list(info.connectors.values()), reason)
        return True

    def piles_offline(self, sessions: list[tuple[PileInfo, str]], reason: str) -> int:
        """:meth:`pile_offline` for many (pile, connection) pairs (a node shutting down)."""
        count = 0
        for start in range(0, len(sessions), CHUNK_ROWS):
            chunk = sessions[start:start + CHUNK_ROWS]
            released = self.registry.release_many(self.settings.node, [(info.code, conn) for info, conn in chunk])
            for (info, _), ours in zip(chunk, released, strict=True):
                if ours:
                    self._offline(info, list(info.connectors.values()), reason)
                    count += 1
        return count

    def _offline(self, info: PileInfo, guns: list[ConnectorRef], reason: str) -> None:
        now = utcnow()
        self.live.hset(pile_key(info.code), {"online": 0, "offline_at": iso(now), "offline_reason": reason})
        info.live_heartbeat = ""
        for gun in guns:
            self.live.hset(gun_key(gun.code), {"status": "offline", "updated_at": iso(now)})
            gun.live_sent = None
            if gun.status != "offline":
                self.batch.status(StatusChange(gun.id, info.id, info.operator_id, "offline", gun.status, now,
                                               f"offline: {reason}"))
                gun.status = "offline"
        self.batch.pile(info.id, online=False, last_offline_at=now)

    def recover(self) -> int:
        """At node start: piles a crashed earlier run of this node held go offline."""
        orphaned = self.registry.orphans(self.settings.node)
        for start in range(0, len(orphaned), CHUNK_ROWS):
            for info in self.lookup_piles(orphaned[start:start + CHUNK_ROWS]).values():
                if info is not None:
                    self._offline(info, list(info.connectors.values()), "gateway restarted")
        self.batch.flush()
        return len(orphaned)

    # frames

    def heartbeat(self, info: PileInfo, gun_text: str, gun_state: int, mono: float) -> None:
        text = self.stamp()
        if text != info.live_heartbeat:          # second resolution: a rewrite in the same second is a no-op
            info.live_heartbeat = text
            self.live.hset(pile_key(info.code), {"last_heartbeat": text})
        gun = info.connectors.get(gun_number(gun_text))
        if gun is not None and gun.heartbeat_fault != gun_state:
            gun.heartbeat_fault = gun_state
            self.live.hset(gun_key(gun.code), {"heartbeat_fault": gun_state})
        ttl = self.settings.registry_ttl
        if mono - info.ttl_at >= ttl / 3:
            info.ttl_at = mono
            self.live.expire(owner_key(info.code), ttl)
        if mono - info.db_heartbeat_at >= self.settings.heartbeat_db_interval:
            info.db_heartbeat_at = mono
            self.batch.pile(info.id, last_heartbeat_at=utcnow())

    def realtime(self, info: PileInfo, gun: ConnectorRef, msg: RealtimeData) -> None:
        if msg is gun.last_realtime and gun.synced and gun.live_sent is not None:
            # the same body as this gun's last 0x13 (the reader hands a repeat the same object):
            # status, figures and faults are as applied then; only the time moves on
            stamp = self.stamp()
            if gun.live_sent["updated_at"] != stamp:
                gun.live_sent["updated_at"] = stamp
                self.live.hset(gun_key(gun.code), {"updated_at": stamp})
        else:
            self._apply_realtime(info, gun, msg, utcnow())
        if self._realtime_hooked and self.hooks.wants_realtime(info, gun, msg):
            self._hook("on_realtime", info, gun, msg)

    def _apply_realtime(self, info: PileInfo, gun: ConnectorRef, msg: RealtimeData, now: datetime) -> None:
        status = connector_status(msg.status, msg.gun_plugged)
        fields = realtime_fields(msg, status, now)
        sent = gun.live_sent
        if sent is None or not gun.synced:
            changed = fields
        else:                                    # only what changed since the last write (often just the time)
            changed = {name: value for name, value in fields.items() if sent.get(name) != value}
        gun.live_sent = fields
        if changed:
            self.live.hset(gun_key(gun.code), changed)
        if status is not None and (status != gun.status or not gun.synced):
            self.batch.status(StatusChange(gun.id, info.id, info.operator_id, status, gun.status, now, "0x13",
                                           log=status != gun.status))
            gun.status = status
        gun.synced = True
        active = fault_alarms(msg.status, msg.hardware_faults)
        for code in sorted(active.keys() - gun.faults):
            self.batch.alarm(AlarmEvent(True, info.id, gun.id, code, now, info.operator_id, info.station_id,
                                        info.code, gun.gun_no, active[code]))
        for code in sorted(gun.faults - active.keys()):
            self.batch.alarm(AlarmEvent(False, info.id, gun.id, code, now))
        gun.faults = set(active)
        gun.last_realtime = msg

    def bms(self, info: PileInfo, gun: ConnectorRef, msg) -> None:
        fields = {"bms_frame": f"0x{msg.frame_type:02X}", "bms_at": iso(utcnow())}
        if isinstance(msg, BmsHandshake):
            fields["vin"] = msg.vin.strip("\x00 ")
        elif isinstance(msg, BmsDemandOutput):
            fields.update(bms_voltage_demand=str(msg.voltage_demand), bms_current_demand=str(msg.current_demand),
                          bms_soc=msg.soc)
        self.live.hset(gun_key(gun.code), fields)
        self._hook("on_bms", info, gun, msg)

    def ground_lock(self, info: PileInfo, msg: GroundLockReport) -> None:
        gun = info.connectors.get(msg.gun_number)
        if gun is None:
            return
        lock = LOCK_BY_YKC.get(msg.lock_state, "unknown")
        park = PARK_BY_YKC.get(msg.parking_state, "unknown")
        self.live.hset(gun_key(gun.code), {"lock_status": lock, "park_status": park,
                                           "lock_battery": msg.battery_level, "lock_alarm": msg.alarm})
        self.batch.connector(gun.id, lock_status=lock, park_status=park)
        self._hook("on_ground_lock", info, gun, msg)

    def model_synced(self, info: PileInfo, model_id: str) -> None:
        self.live.hset(pile_key(info.code), {"billing_model": model_id})
        if model_id.isdigit():
            self.batch.pile(info.id, billing_model_id=int(model_id), billing_model_synced_at=utcnow())

    def remote_reply(self, msg, name: str) -> None:
        """0x33/0xA3 (``on_remote_start_reply``) and 0x35 (``on_remote_stop_reply``)."""
        self._hook(name, msg)

    def pile_start_request(self, msg):
        """0x31/0xA1 -> the hooks' 0x32/0xA2 answer (refusal when the hook fails)."""
        try:
            with self.lane():
                reply = self.hooks.on_pile_start_request(msg)
        except Exception:
            log.exception("on_pile_start_request failed for %s/%s", msg.pile_code, msg.gun)
            reply = None
        return reply or refusal(msg, ChargingHooks.default_refusal)

    def _hook(self, name: str, *args) -> None:
        if name not in self._hooked:
            return
        try:
            with self.lane():
                getattr(self.hooks, name)(*args)
        except Exception:
            log.exception("charging hook %s failed", name)

    # pricing

    def billing_model(self, station_id: int) -> dict | None:
        """BillingModelReply fields of the station's template (cached), or None without a usable one.
        One load per station at a time: in a login storm a thousand piles of a station ask at once
        (0x05/0x09); the others wait for that load instead of each querying the database."""
        hit = self._models.get(station_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        lock = self._model_locks.get(station_id)
        if lock is None:
            lock = self._model_locks[station_id] = _semaphore(1)
        with lock:
            now = time.monotonic()
            hit = self._models.get(station_id)
            if hit is not None and hit[0] > now:          # loaded while this one waited
                return hit[1]
            return self._load_billing_model(station_id, now)

    def _load_billing_model(self, station_id: int, now: float) -> dict | None:
        fields = None
        with self.lane() as s:
            station = s.get(Station, station_id)
            template = station.price_template if station is not None else None
            if template is not None:
                try:
                    fields = billing_model_fields(template)
                except BillingModelError:
                    log.error("station %s: template %s is not a valid YKC billing model", station_id, template.id)
        self._models[station_id] = (now + self.settings.price_cache_ttl, fields)
        return fields

    def forget_price(self, station_id: int) -> None:
        self._models.pop(station_id, None)

    # bills

    def store_bill(self, info: PileInfo, raw: bytes, msg: TransactionRecord) -> PileBill:
        """Store the 0x3B frame once per transaction serial (committed on return); raises on DB failure."""
        with self.lane() as s:
            bill = s.scalar(select(PileBill).where(PileBill.serial == msg.transaction_serial))
            outcome = "duplicate"
            if bill is None:
                bill = new_bill(info, raw, msg)
                s.add(bill)
                try:
                    s.commit()
                    s.refresh(bill)                  # loaded: usable by hooks and callers after the session
                    outcome = "stored"
                except IntegrityError:           # another node stored the same serial meanwhile
                    s.rollback()
                    bill = s.scalar(select(PileBill).where(PileBill.serial == msg.transaction_serial))
                    if bill is None:
                        raise
            if self.metrics:
                self.metrics.inc("ykc_gateway_bills_total", outcome=outcome)
            if "on_transaction_record" in self._hooked:
                try:
                    self.hooks.on_transaction_record(bill, msg)
                except Exception:
                    s.rollback()
                    log.exception("on_transaction_record failed for %s", msg.transaction_serial)
            return bill


def new_bill(info: PileInfo, raw: bytes, msg: TransactionRecord) -> PileBill:
    card = bytes(msg.physical_card)
    return PileBill(
        operator_id=info.operator_id, serial=msg.transaction_serial, pile_code=msg.pile_code,
        gun_no=gun_number(msg.gun) or 0, raw_hex=raw.hex().upper(), parsed=to_jsonable(msg),
        received_at=utcnow(), started_at=msg.start_time, ended_at=msg.end_time, traded_at=msg.transaction_time,
        total_energy=msg.total_energy, total_amount=msg.total_amount, meter_start=msg.meter_start,
        meter_stop=msg.meter_stop, trade_flag=msg.transaction_flag, stop_reason_code=msg.stop_reason,
        vin=msg.vin.strip("\x00 ")[:17] or None, physical_card_no=card.hex().upper() if any(card) else None)
