"""One virtual YKC pile on gevent (explicit gevent sockets: works with or without monkey-patching).

Session: connect -> 0x01 login -> on success 0x05 (then 0x09 when the model differs) and one
0x13 per gun -> heartbeats every ``heartbeat`` s, 0x13 every ``realtime_charging`` s per charging
gun and every ``realtime_idle`` s per idle gun. It answers every platform command, reports the
0x3B record after a charge (resent every ``bill_retry`` s, at most ``bill_retries`` times, until
0x40), reconnects after a drop, and can inject faults.
"""

from __future__ import annotations

import random
import socket
import struct
import time
from dataclasses import dataclass
from decimal import Decimal

import gevent
from gevent import socket as gsocket
from gevent.lock import Semaphore

from app.gateway.simulator.charging import (
    FLAG_APP,
    FLAG_CARD,
    FLAG_OFFLINE_CARD,
    STOP_EMERGENCY,
    STOP_MANUAL,
    STOP_REMOTE,
    STOP_TIME_REACHED,
    ChargeSession,
)
from app.gateway.ykc import (
    CRC_HIGH_FIRST,
    CRC_LOW_FIRST,
    BalanceUpdateReply,
    BillingModelRequest,
    BillingModelSetReply,
    BillingModelVerify,
    ErrorEvent,
    FrameReader,
    GroundLockReply,
    GroundLockReport,
    Heartbeat,
    Login,
    OfflineCardClearReply,
    OfflineCardClearResult,
    OfflineCardQueryReply,
    OfflineCardQueryResult,
    OfflineCardSyncReply,
    ParallelRemoteStart,
    ParallelRemoteStartReply,
    PileStartRequest,
    QrCodePrefixReply,
    RealtimeData,
    RemoteRebootReply,
    RemoteStartReply,
    RemoteStopReply,
    RemoteUpdateReply,
    TimeSyncReply,
    WorkParametersReply,
    codes,
    encode_frame,
    encode_reply,
    transaction_serial,
    utcnow,
)
from app.services.money import q_energy


@dataclass
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 8767
    heartbeat: float = 10.0
    realtime_charging: float = 15.0
    realtime_idle: float = 300.0
    protocol_version: int = 0x0F
    pile_type: int = 0                     # 0 DC, 1 AC
    max_power_kw: float = 60.0
    battery_kwh: float = 60.0
    speed: float = 1.0                     # energy grows this many times faster than real time
    charging_ratio: float = 0.0            # share of guns charging (local start) after login
    charge_minutes: float | None = None    # mean length of local charges (None: until stopped)
    idle_minutes: float | None = None      # mean idle gap before the next local charge (None: never)
    bill_retry: float = 30.0
    bill_retries: int = 3
    fault_rate: float = 0.0                # per gun per hour: a hardware fault for ``fault_minutes``
    fault_minutes: float = 2.0
    card_starts: bool = False              # local charges start with a card swipe (0x31) the platform authorises
    disconnect_rate: float = 0.0           # per pile per hour: abrupt disconnect (RST), then reconnect
    garbage_rate: float = 0.0              # per pile per hour: a burst of junk bytes
    split_frames: bool = False             # send each frame in 2-3 pieces
    crc_high_first: float = 0.0            # share of frames sent with the CRC high byte first
    reconnect_min: float = 1.0
    reconnect_max: float = 5.0
    connect_timeout: float = 10.0


@dataclass
class Gun:
    number: int
    plugged: bool = False
    fault_bits: int = 0
    fault_until: float = 0.0
    session: ChargeSession | None = None
    next_realtime: float = 0.0
    last_advance: float = 0.0
    charge_until: float | None = None      # local charges: when to stop
    next_local_start: float | None = None
    meter: Decimal = Decimal("1000.0000")
    counter: int = 0
    swiped: bytes | None = None            # the card of a swipe waiting for the platform's 0x32
    unplug_at: float | None = None         # card starts: the driver unplugs a while after the charge

    @property
    def text(self) -> str:
        return f"{self.number:02d}"

    @property
    def status(self) -> int:
        if self.fault_bits:
            return codes.GunStatus.FAULT
        return codes.GunStatus.CHARGING if self.session else codes.GunStatus.IDLE


@dataclass
class PendingBill:
    frame_msg: object
    attempts: int = 0
    next_at: float = 0.0


@dataclass
class Card:
    logical: str
    physical: bytes


class VirtualPile:
    def __init__(self, code: str, guns: int, config: SimConfig, stats, rng: random.Random | None = None,
                 start_cards: list[bytes] | None = None, on_refused=None):
        """``start_cards``: physical card numbers drivers swipe here (``config.card_starts``);
        ``on_refused(card, reason)``: called when the platform refuses a swipe (0x32 failure reason)."""
        self.code = code
        self.start_cards = list(start_cards or [])
        self.on_refused = on_refused
        self.config = config
        self.stats = stats
        self.rng = rng or random.Random(code)
        self.guns = {n: Gun(n) for n in range(1, guns + 1)}
        self.model = None
        self.model_id = "0000"
        self.power_limit = 100
        self.disabled = False
        self.qr_prefix = None                 # (kind, prefix) of the last 0xF0
        self.cards: dict[bytes, Card] = {}
        self.bills: dict[str, PendingBill] = {}
        self.sock = None
        self._send_lock = Semaphore()
        self.seq = 0
        self.pending_heartbeats: dict[int, float] = {}
        self.logged_in = False
        self.refused = False
        self.running = True
        self.reboot_at: float | None = None
        self._ticker: gevent.Greenlet | None = None
        self._intentional = False
        self._hb_gun = 0
        self.last_tick = 0.0
        self.connections = 0

    # --- lifecycle -------------------------------------------------------------------------------------

    def run(self) -> None:
        """Connect, serve, reconnect after drops, until :meth:`stop` (or a refused login)."""
        while self.running:
            dropped = self._session()
            if not self.running or self.refused:
                return
            if dropped:
                self.stats.dropped += 1
            gevent.sleep(self.rng.uniform(self.config.reconnect_min, self.config.reconnect_max))

    def stop(self) -> None:
        self.running = False
        self._close()

    def _close(self, abort: bool = False, intentional: bool = True) -> None:
        """Close the connection; an unintentional close counts as a dropped connection."""
        self._intentional = self._intentional or intentional
        sock, self.sock = self.sock, None
        if sock is None:
            return
        try:
            if abort:                         # RST instead of FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        except OSError:
            pass

    def _session(self) -> bool:
        """One connection. Returns True when it ended unexpectedly (not by stop/reboot)."""
        cfg = self.config
        try:
            sock = gsocket.create_connection((cfg.host, cfg.port), timeout=cfg.connect_timeout)
        except OSError:
            self.stats.connect_errors += 1
            return False
        sock.settimeout(None)
        self.sock, self.seq, self.logged_in, self._intentional = sock, 0, False, False
        self.pending_heartbeats.clear()
        self.connections += 1
        self.stats.connected += 1
        reader = FrameReader()
        try:
            self._send(Login(pile_code=self.code, pile_type=cfg.pile_type, gun_count=len(self.guns),
                             protocol_version=cfg.protocol_version, firmware_version="SIMV1.0",
                             network_type=0, sim="898604D11722D0348606", carrier=2))
            while self.sock is sock:
                data = sock.recv(4096)
                if not data:
                    break
                self.stats.bytes_in += len(data)
                for event in reader.feed(data):
                    if isinstance(event, ErrorEvent):
                        self.stats.errors += 1
                        continue
                    self.stats.frames_in += 1
                    self._on_frame(event.header, event.message)
        except OSError:
            pass
        finally:
            expected = self._intentional or not self.running or self.refused
            self.stats.connected -= 1
            if self.logged_in:
                self.stats.logged_in -= 1
            self.logged_in = False
            if self._ticker is not None:
                self._ticker.kill(block=False)
                self._ticker = None
            self._close()
        return not expected

    # --- sending ---------------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        seq = self.seq
        self.seq = (seq + 1) & 0xFFFF
        return seq

    def _crc_order(self) -> str:
        rate = self.config.crc_high_first
        return CRC_HIGH_FIRST if rate and self.rng.random() < rate else CRC_LOW_FIRST

    def _send(self, msg, request_header=None) -> int:
        if request_header is not None:
            seq = request_header.seq
            frame = encode_reply(msg, request_header, crc_order=self._crc_order())
        else:
            seq = self._next_seq()
            frame = encode_frame(msg, seq, crc_order=self._crc_order())
        self._write(frame)
        self.stats.frames_out += 1
        return seq

    def _write(self, data: bytes) -> None:
        sock = self.sock
        if sock is None:
            return
        with self._send_lock:                 # the reader and the ticker greenlet both send
            if self.config.split_frames and len(data) > 2:
                cuts = sorted(self.rng.sample(range(1, len(data)), min(2, len(data) - 1)))
                for start, end in zip([0] + cuts, cuts + [len(data)], strict=True):
                    sock.sendall(data[start:end])
                    gevent.sleep(self.rng.uniform(0, 0.005))
            else:
                sock.sendall(data)
        self.stats.bytes_out += len(data)

    def _send_realtime(self, gun: Gun, request_header=None) -> None:
        gun.next_realtime = time.monotonic() + (self.config.realtime_charging if gun.session
                                                else self.config.realtime_idle)
        if gun.session:
            msg = gun.session.realtime(self.code, gun.text, status=gun.status, faults=gun.fault_bits)
        else:
            msg = RealtimeData(transaction_serial="0" * 32, pile_code=self.code, gun=gun.text, status=gun.status,
                               gun_homed=0 if gun.plugged else 1, gun_plugged=int(gun.plugged),
                               gun_temperature=28, battery_max_temperature=-50,
                               hardware_faults=gun.fault_bits)
        self._send(msg, request_header)

    # --- periodic work ------------------------------------------------------------------------------------

    def _tick_loop(self) -> None:
        cfg = self.config
        now = time.monotonic()
        self.last_tick = now
        next_hb = now + self.rng.uniform(0, cfg.heartbeat)
        for gun in self.guns.values():
            gun.last_advance = now
            if gun.session is None and cfg.charging_ratio and self.rng.random() < cfg.charging_ratio:
                self._start_local(gun)
        for gun in self.guns.values():
            self._send_realtime(gun)
            # spread later reports over the interval so thousands of piles do not report together
            interval = cfg.realtime_charging if gun.session else cfg.realtime_idle
            gun.next_realtime = now + self.rng.uniform(0, interval)
        while self.sock is not None:
            now = time.monotonic()
            if now >= next_hb:
                self._heartbeat()
                next_hb += cfg.heartbeat
                if next_hb < now:
                    next_hb = now + cfg.heartbeat
                self._random_events(now)
            for gun in self.guns.values():
                self._tick_gun(gun, now)
            self._resend_bills(now)
            if self.reboot_at is not None and now >= self.reboot_at and not any(g.session for g in self.guns.values()):
                self.reboot_at = None
                self._close()
                return
            wake = min([next_hb] + [g.next_realtime for g in self.guns.values()]
                       + [b.next_at for b in self.bills.values()]
                       + [g.charge_until for g in self.guns.values() if g.charge_until]
                       + [g.next_local_start for g in self.guns.values() if g.next_local_start]
                       + [g.unplug_at for g in self.guns.values() if g.unplug_at]
                       + [g.fault_until for g in self.guns.values() if g.fault_bits])
            gevent.sleep(max(0.0, wake - time.monotonic()))

    def _heartbeat(self) -> None:
        oldest = next(iter(self.pending_heartbeats.values()), None)
        if oldest is not None and time.perf_counter() - oldest > 3 * self.config.heartbeat:
            self.stats.heartbeat_timeouts += 1       # 3 heartbeats unanswered: link down, reconnect
            self._close(intentional=False)
            return
        guns = list(self.guns.values())
        gun = guns[self._hb_gun % len(guns)]
        self._hb_gun += 1
        seq = self._send(Heartbeat(pile_code=self.code, gun=gun.text, gun_state=1 if gun.fault_bits else 0))
        self.pending_heartbeats[seq] = time.perf_counter()
        if len(self.pending_heartbeats) > 16:         # acks lost: forget the oldest
            self.pending_heartbeats.pop(next(iter(self.pending_heartbeats)))

    def _tick_gun(self, gun: Gun, now: float) -> None:
        if gun.fault_bits and now >= gun.fault_until:
            gun.fault_bits = 0
            self._send_realtime(gun)
        if gun.unplug_at is not None and now >= gun.unplug_at:
            gun.unplug_at = None
            if gun.session is None:
                gun.plugged = False
                self._send_realtime(gun)
        if gun.session is not None:
            elapsed = (now - gun.last_advance) * self.config.speed
            gun.last_advance = now
            gun.session.advance(elapsed, utcnow(), self.model, self.power_limit, self.rng)
            if gun.session.stop_reason is not None:
                self._finish(gun, gun.session.stop_reason)
                return
            if gun.charge_until is not None and now >= gun.charge_until:
                self._finish(gun, STOP_TIME_REACHED)
                return
        elif gun.next_local_start is not None and now >= gun.next_local_start:
            self._start_local(gun)
            self._send_realtime(gun)
            return
        if now >= gun.next_realtime:
            self._send_realtime(gun)

    def _random_events(self, now: float) -> None:
        cfg = self.config
        hours = (now - self.last_tick) / 3600
        self.last_tick = now
        rng = self.rng
        if cfg.fault_rate:
            for gun in self.guns.values():
                if not gun.fault_bits and rng.random() < cfg.fault_rate * hours:
                    gun.fault_bits = 1 << rng.randrange(13)
                    gun.fault_until = now + cfg.fault_minutes * 60
                    if gun.session is not None:
                        self._finish(gun, STOP_EMERGENCY)
                    self._send_realtime(gun)
                    self.stats.faults += 1
        if cfg.garbage_rate and rng.random() < cfg.garbage_rate * hours:
            self._write(bytes(rng.randrange(256) for _ in range(rng.randrange(8, 120))))
            self.stats.garbage += 1
        if cfg.disconnect_rate and rng.random() < cfg.disconnect_rate * hours:
            self.stats.injected_disconnects += 1
            self._close(abort=True)

    def _resend_bills(self, now: float) -> None:
        for serial, pending in list(self.bills.items()):
            if now < pending.next_at:
                continue
            if pending.attempts > self.config.bill_retries:
                del self.bills[serial]
                self.stats.bills_unacked += 1
                continue
            self._send_bill(pending, now)

    def _send_bill(self, pending: PendingBill, now: float) -> None:
        pending.attempts += 1
        pending.next_at = now + self.config.bill_retry
        self._send(pending.frame_msg)
        self.stats.bills_sent += 1

    # --- charging --------------------------------------------------------------------------------------

    def _new_serial(self, gun: Gun) -> str:
        gun.counter += 1
        return transaction_serial(self.code, gun.text, utcnow(), gun.counter)

    def _start(self, gun: Gun, serial: str, balance: Decimal | None, flag: int, card: bytes = bytes(8)) -> None:
        cfg = self.config
        gun.plugged = True
        gun.session = ChargeSession(serial=serial, started_at=utcnow(), meter_start=gun.meter,
                                    max_power_kw=cfg.max_power_kw, battery_kwh=cfg.battery_kwh,
                                    soc=self.rng.uniform(10, 60), balance=balance, flag=flag, card=card)
        gun.last_advance = time.monotonic()
        gun.next_local_start = None
        self.stats.charging += 1

    def _start_local(self, gun: Gun) -> None:
        if self.config.card_starts and self.start_cards:
            self._swipe(gun)
            return
        self._start(gun, self._new_serial(gun), None, FLAG_OFFLINE_CARD)
        self._charge_for_a_while(gun)

    def _charge_for_a_while(self, gun: Gun) -> None:
        minutes = self.config.charge_minutes
        gun.charge_until = time.monotonic() + self.rng.expovariate(1 / (minutes * 60)) if minutes else None

    def _swipe(self, gun: Gun) -> None:
        """A driver plugs in and swipes a card: 0x31; the platform's 0x32 starts the charge (or not).
        Without an answer the driver tries again a minute later."""
        gun.plugged = True
        gun.swiped = self.rng.choice(self.start_cards)
        gun.next_local_start = time.monotonic() + 60
        self.start_card(gun.number, gun.swiped)

    def _next_local_start(self, gun: Gun) -> None:
        idle = self.config.idle_minutes
        gun.next_local_start = time.monotonic() + (self.rng.expovariate(1 / (idle * 60)) if idle else 60)

    def _finish(self, gun: Gun, stop_reason: int) -> None:
        session, gun.session = gun.session, None
        gun.charge_until = None
        if session is None:
            return
        self.stats.charging -= 1
        gun.meter += q_energy(session.energy)  # the closing reading, as billed (half up)
        self._send_realtime(gun)
        msg = session.bill(self.code, gun.text, utcnow(), stop_reason)
        pending = PendingBill(msg)
        self.bills[session.serial] = pending
        self._send_bill(pending, time.monotonic())
        idle = self.config.idle_minutes
        if idle:
            gun.next_local_start = time.monotonic() + self.rng.expovariate(1 / (idle * 60))
        if self.config.card_starts:
            gun.unplug_at = time.monotonic() + self.rng.uniform(60, 20 * 60)

    def start_card(self, gun_number: int, card: bytes) -> None:
        """Swipe a card at the pile: sends 0x31; the platform's 0x32 decides."""
        self._send(PileStartRequest(pile_code=self.code, gun=f"{gun_number:02d}", start_mode=1,
                                    account_or_card=card))

    def stop_local(self, gun_number: int) -> None:
        """Stop button at the pile."""
        gun = self.guns[gun_number]
        if gun.session is not None:
            self._finish(gun, STOP_MANUAL)

    # --- frames from the platform -------------------------------------------------------------------

    def _on_frame(self, header, msg) -> None:
        handler = FRAME_HANDLERS.get(header.frame_type)
        if handler is not None:
            self.stats.commands[header.frame_type] = self.stats.commands.get(header.frame_type, 0) + 1
            handler(self, header, msg)

    def _gun(self, text: str) -> Gun | None:
        return self.guns.get(int(text)) if text.isdigit() else None

    def on_login_ack(self, header, msg) -> None:
        if msg.result != 0:
            self.refused = True
            self.stats.refused += 1
            self._close()
            return
        self.logged_in = True
        self.stats.logged_in += 1
        self._send(BillingModelVerify(pile_code=self.code, billing_model_id=self.model_id))
        self._ticker = gevent.spawn(self._tick_loop)

    def on_heartbeat_ack(self, header, msg) -> None:
        sent = self.pending_heartbeats.pop(header.seq, None)
        if sent is not None:
            self.stats.heartbeat_latency(time.perf_counter() - sent)

    def on_model_verify(self, header, msg) -> None:
        if msg.result != 0:
            self._send(BillingModelRequest(pile_code=self.code))

    def on_model(self, header, msg) -> None:
        self.model, self.model_id = msg, msg.billing_model_id

    def on_model_set(self, header, msg) -> None:
        self.on_model(header, msg)
        self._send(BillingModelSetReply(pile_code=self.code, result=1), header)

    def on_read_realtime(self, header, msg) -> None:
        gun = self._gun(msg.gun)
        if gun is not None:
            self._send_realtime(gun, header)

    def on_remote_start(self, header, msg) -> None:
        gun = self._gun(msg.gun)
        reason = codes.RemoteStartFailure.NONE
        if gun is None or msg.pile_code != self.code:
            reason = codes.RemoteStartFailure.PILE_MISMATCH
        elif gun.session is not None:
            reason = codes.RemoteStartFailure.GUN_CHARGING
        elif gun.fault_bits or self.disabled:
            reason = codes.RemoteStartFailure.DEVICE_FAULT
        fields = dict(transaction_serial=msg.transaction_serial, pile_code=self.code, gun=msg.gun,
                      result=0 if reason else 1, failure_reason=int(reason))
        if isinstance(msg, ParallelRemoteStart):
            reply = ParallelRemoteStartReply(parallel_role=0, parallel_serial=msg.parallel_serial, **fields)
        else:
            reply = RemoteStartReply(**fields)
        self._send(reply, header)
        if not reason:
            self._start(gun, msg.transaction_serial, msg.balance, FLAG_APP, bytes(msg.physical_card))
            self._send_realtime(gun)

    def on_remote_stop(self, header, msg) -> None:
        gun = self._gun(msg.gun)
        charging = gun is not None and gun.session is not None
        reason = codes.RemoteStopFailure.NONE if charging else codes.RemoteStopFailure.GUN_NOT_CHARGING
        self._send(RemoteStopReply(pile_code=self.code, gun=msg.gun, result=int(charging),
                                   failure_reason=int(reason)), header)
        if charging:
            self._finish(gun, STOP_REMOTE)

    def on_pile_start_reply(self, header, msg) -> None:
        gun = self._gun(msg.gun)
        if gun is None:
            return
        card, gun.swiped = gun.swiped, None
        if msg.auth_result == 1 and gun.session is None:
            self._start(gun, msg.transaction_serial, msg.balance, FLAG_CARD, card or bytes(8))
            if card is not None:
                self._charge_for_a_while(gun)
            self._send_realtime(gun)
        elif msg.auth_result != 1 and card is not None:
            gun.plugged = False
            self._next_local_start(gun)
            if self.on_refused is not None:
                self.on_refused(card, msg.failure_reason)

    def on_bill_ack(self, header, msg) -> None:
        if self.bills.pop(msg.transaction_serial, None) is not None:
            self.stats.bills_acked += 1

    def on_balance(self, header, msg) -> None:
        gun = self._gun(msg.gun)
        if gun is not None and gun.session is not None:
            gun.session.balance = msg.balance
        self._send(BalanceUpdateReply(pile_code=self.code, physical_card=msg.physical_card, result=0), header)

    def on_card_sync(self, header, msg) -> None:
        for card in msg.cards:
            self.cards[bytes(card.physical_card)] = Card(card.logical_card, bytes(card.physical_card))
        self._send(OfflineCardSyncReply(pile_code=self.code, result=1, failure_reason=0), header)

    def on_card_clear(self, header, msg) -> None:
        results = [OfflineCardClearResult(physical_card=c, result=int(self.cards.pop(bytes(c), None) is not None))
                   for c in msg.physical_cards]
        self._send(OfflineCardClearReply(pile_code=self.code, results=results), header)

    def on_card_query(self, header, msg) -> None:
        results = [OfflineCardQueryResult(physical_card=c, exists=int(bytes(c) in self.cards))
                   for c in msg.physical_cards]
        self._send(OfflineCardQueryReply(pile_code=self.code, results=results), header)

    def on_work_parameters(self, header, msg) -> None:
        self.disabled = bool(msg.disabled)
        self.power_limit = max(30, min(100, msg.max_output_power or 100))
        self._send(WorkParametersReply(pile_code=self.code, result=1), header)

    def on_time_sync(self, header, msg) -> None:
        self._send(TimeSyncReply(pile_code=self.code, current_time=msg.current_time), header)

    def on_ground_lock(self, header, msg) -> None:
        self._send(GroundLockReply(pile_code=self.code, gun_number=msg.gun_number, result=1), header)
        self._send(GroundLockReport(pile_code=self.code, gun_number=msg.gun_number, lock_state=msg.command,
                                    parking_state=0, battery_level=90, alarm=0))

    def on_reboot(self, header, msg) -> None:
        self._send(RemoteRebootReply(pile_code=self.code, result=1), header)
        if msg.control == 1:                  # now: charges end (their bills are resent after the restart)
            for gun in self.guns.values():
                if gun.session is not None:
                    self._finish(gun, STOP_MANUAL)
        self.reboot_at = time.monotonic() + 0.2
        self.stats.reboots += 1

    def on_update(self, header, msg) -> None:
        self._send(RemoteUpdateReply(pile_code=self.code, status=0), header)

    def on_qr_prefix(self, header, msg) -> None:
        self.qr_prefix = (msg.prefix_kind, msg.prefix)
        prefixes = getattr(self.stats, "qr_prefixes", None)
        if prefixes is not None:
            prefixes[self.code] = [msg.prefix_kind, msg.prefix]
        self._send(QrCodePrefixReply(pile_code=self.code, result=1), header)


FRAME_HANDLERS = {
    0x02: VirtualPile.on_login_ack,
    0x04: VirtualPile.on_heartbeat_ack,
    0x06: VirtualPile.on_model_verify,
    0x0A: VirtualPile.on_model,
    0x12: VirtualPile.on_read_realtime,
    0x32: VirtualPile.on_pile_start_reply,
    0x34: VirtualPile.on_remote_start,
    0xA4: VirtualPile.on_remote_start,
    0x36: VirtualPile.on_remote_stop,
    0x40: VirtualPile.on_bill_ack,
    0x42: VirtualPile.on_balance,
    0x44: VirtualPile.on_card_sync,
    0x46: VirtualPile.on_card_clear,
    0x48: VirtualPile.on_card_query,
    0x52: VirtualPile.on_work_parameters,
    0x56: VirtualPile.on_time_sync,
    0x58: VirtualPile.on_model_set,
    0x62: VirtualPile.on_ground_lock,
    0x92: VirtualPile.on_reboot,
    0x94: VirtualPile.on_update,
    0xF0: VirtualPile.on_qr_prefix,
}
