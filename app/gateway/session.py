"""One pile connection: a YKC session in its own greenlet.

The session reads bytes, lets :class:`~app.gateway.ykc.FrameReader` cut them into frames, and
hands each frame to a thin handler that answers the pile and calls
:class:`app.gateway.state_writer.GatewayState` for everything outside the connection.

Lifecycle: connect -> login (0x01) within ``login_timeout`` (frames before it are dropped; a
connection that sends only junk is closed after ``max_garbage`` bytes) -> success (0x02 result
0, time sync 0x56) or refusal (0x02 result 1, close) -> heartbeats; no heartbeat for
``heartbeat_interval * heartbeat_misses`` or no byte for ``idle_timeout`` closes the session, and
the pile and its guns go offline (checked for all sessions by one sweeper greenlet of the gateway,
``Gateway.sweep_deadlines``: a session blocks in ``recv`` without a timeout). A handler error is
logged and never ends the session; a failed send does (the pile is gone).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import socket
import time
from dataclasses import dataclass, field

import gevent
from gevent.lock import Semaphore

from app.gateway.commands import Request, send_reply
from app.gateway.metrics import Metrics, frame_label
from app.gateway.state_writer import gun_number
from app.gateway.ykc import (
    PILE_TO_PLATFORM,
    BillingModelReply,
    BillingModelSet,
    BillingModelVerifyAck,
    ErrorEvent,
    FrameEvent,
    FrameReader,
    HeartbeatAck,
    LoginAck,
    ParallelPileStartReply,
    ParallelPileStartRequest,
    PileStartReply,
    QrCodePrefix,
    RawFrame,
    TimeSync,
    TransactionRecordAck,
    encode_frame,
    encode_raw,
    encode_reply,
    utcnow,
)

log = logging.getLogger(__name__)

_conn_ids = itertools.count(1)
# counter keys of the per-frame path, computed once (Metrics.add)
FRAMES_IN = {t: Metrics.key("ykc_gateway_frames_in_total", type=frame_label(t)) for t in range(256)}
FRAMES_OUT = {t: Metrics.key("ykc_gateway_frames_out_total", type=frame_label(t)) for t in range(256)}
BYTES_IN = Metrics.key("ykc_gateway_bytes_in_total")
BYTES_OUT = Metrics.key("ykc_gateway_bytes_out_total")
# decoded bodies a connection remembers: a repeated one (an idle gun's 0x13, a heartbeat) is not decoded again
REPEATED_BODIES = 32
BMS_FRAMES = (0x15, 0x17, 0x19, 0x1B, 0x1D, 0x21, 0x23, 0x25)


@dataclass
class Waiter:
    """A bus request waiting for the pile's reply frame."""

    request: Request
    expect: frozenset[int]
    match: dict = field(default_factory=dict)
    timer: gevent.Greenlet | None = None

    def matches(self, frame_type: int, msg) -> bool:
        return frame_type in self.expect and all(getattr(msg, k, None) == v for k, v in self.match.items())


class PileSession:
    def __init__(self, gateway, sock, address):
        self.gw = gateway
        self.settings = gateway.settings
        self.sock = sock
        self.peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
        self.conn_id = f"{os.getpid()}.{next(_conn_ids)}"
        self.reader = FrameReader(max_frame_size=self.settings.max_frame_size, repeats=REPEATED_BODIES)
        self.pile = None                        # PileInfo once logged in
        self.seq = 0
        self.send_lock = Semaphore()
        self.connected_at = self.last_rx = time.monotonic()
        self.last_heartbeat = 0.0
        self.next_time_sync = float("inf")
        self.waiters: list[Waiter] = []
        self.price_pending = False
        self.pending_model: str | None = None
        self.closed = False
        self.waiting = False                    # blocked in recv: the deadline sweeper may close it
        self.sending = 0                        # greenlets blocked sending to it: the same
        self.close_reason = ""
        self.replaced = False

    @property
    def code(self) -> str:
        return self.pile.code if self.pile else ""

    # --- connection loop ---------------------------------------------------------------------------

    def serve(self) -> None:
        try:
            self._loop()
        except Exception:
            log.exception("session %s (%s) crashed", self.conn_id, self.code or self.peer)
            self.close_reason = self.close_reason or "internal error"
        finally:
            self._teardown()

    def due(self, now: float) -> None:
        """Deadlines, checked by the gateway's sweeper (one greenlet for all sessions, see
        ``Gateway.sweep_deadlines``) while this session waits for bytes: no byte for ``idle_timeout``,
        no login within ``login_timeout`` or no heartbeat for ``heartbeat_timeout`` closes it; a due
        time sync (0x56) is sent. The sessions themselves block in ``recv`` without a timeout (a
        per-receive timeout is a timer per frame under gevent)."""
        s = self.settings
        deadline, why = self.last_rx + s.idle_timeout, "idle timeout"
        if self.pile is None:
            other, other_why = self.connected_at + s.login_timeout, "login timeout"
        else:
            other, other_why = self.last_heartbeat + s.heartbeat_timeout, "heartbeat timeout"
        if other < deadline:
            deadline, why = other, other_why
        if deadline <= now:
            self.close(why)
        elif self.next_time_sync <= now:
            self.next_time_sync = float("inf")            # sent by its own greenlet (a send may block)
            gevent.spawn(self._timed_sync)

    def _timed_sync(self) -> None:
        if self.closed:
            return
        try:
            self.send_time_sync()
        except OSError:
            self.close("socket error")

    def _loop(self) -> None:
        sock, reader, event_of = self.sock, self.reader, self._event
        metrics = self.gw.metrics
        monotonic = time.monotonic
        while not self.closed:
            self.waiting = True
            try:
                data = sock.recv(4096)
            except OSError:
                self.close_reason = self.close_reason or "socket error"
                return
            finally:
                self.waiting = False
            if not data:
                self.close_reason = self.close_reason or "socket closed"
                return
            self.last_rx = monotonic()
            counters = metrics.counters
            counters[BYTES_IN] = counters.get(BYTES_IN, 0) + len(data)
            for event in reader.feed(data):
                event_of(event)
                if self.closed:
                    return
            if self.pile is None and reader.junk_only(self.settings.max_garbage):
                self.close("garbage only")

    def close(self, reason: str) -> None:
        """End the session (from any greenlet); the serving greenlet cleans up."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = self.close_reason or reason
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def _teardown(self) -> None:
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
        for waiter in self.waiters:
            self._finish(waiter, error="offline")
        self.waiters.clear()
        reason = self.close_reason or "closed"
        self.gw.metrics.inc("ykc_gateway_disconnects_total", reason=reason)
        self.gw.session_ended(self)
        log.info("pile %s (%s) disconnected: %s", self.code or "?", self.peer, reason)

    # --- sending ---------------------------------------------------------------------------------------

    def next_seq(self) -> int:
        seq = self.seq
        self.seq = (seq + 1) & 0xFFFF
        return seq

    def send(self, msg, request_header=None) -> None:
        """Send a frame: a reply (``request_header`` given: same seq bytes) or platform-initiated."""
        if request_header is not None:
            frame = encode_reply(msg, request_header)
        else:
            frame = encode_frame(msg, self.next_seq())
        self.send_raw(frame, msg.frame_type)

    def send_raw(self, frame: bytes, frame_type: int) -> None:
        """Send a whole frame. While no other greenlet is sending (the usual case: a reply from the
        session's own greenlet) it goes out with one nonblocking send on the underlying socket (which
        cannot switch greenlets, so nothing interleaves); the rest, if the socket buffer was full, and
        any send while another is under way, go through the lock and ``sendall``."""
        lock = self.send_lock
        raw = None if lock.locked() else getattr(self.sock, "_sock", None)     # gevent's real socket
        try:
            if raw is not None:
                try:
                    sent = raw.send(frame)
                except BlockingIOError:
                    sent = 0
                if sent < len(frame):
                    self._send_blocking(frame[sent:])
            else:
                self._send_blocking(frame)
        except OSError:
            self.close("socket error")           # the pile is gone: the rest of what it sent is not handled
            raise
        counters = self.gw.metrics.counters
        key = FRAMES_OUT[frame_type & 0xFF]
        counters[key] = counters.get(key, 0) + 1
        counters[BYTES_OUT] = counters.get(BYTES_OUT, 0) + len(frame)

    def _send_blocking(self, data: bytes) -> None:
        """``sendall`` under the lock; a greenlet blocked here (a pile that stops reading) is subject
        to the session's deadlines like one waiting for bytes (the sweeper closes the socket)."""
        self.sending += 1
        try:
            with self.send_lock:
                self.sock.sendall(data)
        finally:
            self.sending -= 1

    def send_time_sync(self) -> None:
        self.next_time_sync = time.monotonic() + self.settings.time_sync_interval
        self.send(TimeSync(pile_code=self.pile.code, current_time=utcnow()))

    # --- frames ------------------------------------------------------------------------------------

    def _event(self, event) -> None:
        metrics = self.gw.metrics
        if isinstance(event, ErrorEvent):
            if event.kind == "garbage":
                metrics.inc("ykc_gateway_garbage_bytes_total", event.size)
            else:
                metrics.inc("ykc_gateway_decode_errors_total")
                log.debug("pile %s: %s: %s", self.code or self.peer, event.kind, event.detail)
            return
        frame_type = event.raw[5]
        counters = metrics.counters
        key = FRAMES_IN[frame_type]
        counters[key] = counters.get(key, 0) + 1
        msg = event.message
        reason = self._refuse_reason(frame_type, msg)
        if reason:
            metrics.inc("ykc_gateway_dropped_frames_total", reason=reason)
            return
        handler = HANDLERS.get(frame_type)
        try:
            if handler is not None:
                handler(self, event)
            if self.waiters:
                self._resolve(frame_type, msg, event.raw)
        except Exception as exc:
            if self.closed and isinstance(exc, OSError):     # a failed send closed the session: the pile is gone
                return
            metrics.inc("ykc_gateway_handler_errors_total", type=frame_label(frame_type))
            log.exception("pile %s: handling frame 0x%02X failed", self.code or self.peer, frame_type)

    def _refuse_reason(self, frame_type: int, msg) -> str | None:
        if isinstance(msg, RawFrame):
            return "unknown type"
        if msg.DIRECTION != PILE_TO_PLATFORM:
            return "wrong direction"
        if self.pile is None:
            return None if frame_type == 0x01 else "before login"
        if frame_type != 0x01 and getattr(msg, "pile_code", self.pile.code) != self.pile.code:
            return "pile code mismatch"
        return None

    def _gun(self, text: str):
        gun = self.pile.connectors.get(gun_number(text))
        if gun is None:
            self.gw.metrics.inc("ykc_gateway_dropped_frames_total", reason="unknown gun")
        return gun

    def on_login(self, event: FrameEvent) -> None:
        msg = event.message
        if self.pile is not None:                # repeated login on a live session
            if msg.pile_code == self.pile.code:
                self.send(LoginAck(pile_code=msg.pile_code, result=0), event.header)
            return
        state = self.gw.state
        info = self.gw.logins.lookup(msg.pile_code)
        if not state.accepts(info):
            self.gw.metrics.inc("ykc_gateway_logins_total", result="refused")
            log.warning("login refused for pile %s from %s", msg.pile_code, self.peer)
            self.send(LoginAck(pile_code=msg.pile_code, result=1), event.header)
            self.close("login refused")
            return
        now = time.monotonic()
        self.pile = info
        self.last_heartbeat = now
        self.gw.adopt(self)
        state.pile_online(info, msg, self.conn_id, self.peer, now)
        self.gw.metrics.inc("ykc_gateway_logins_total", result="ok")
        self.send(LoginAck(pile_code=msg.pile_code, result=0), event.header)
        self.send_time_sync()
        if info.qr_prefix:                       # its model takes the QR prefix (0xF0, kind 0: prefix + pile)
            self.send(QrCodePrefix(pile_code=msg.pile_code, prefix_kind=0, prefix=info.qr_prefix))

    def on_heartbeat(self, event: FrameEvent) -> None:
        msg = event.message
        # 0x04 = the request's pile code and gun (its first 8 body bytes, as decoded) + 0
        raw = event.raw
        self.send_raw(encode_raw(HeartbeatAck.FRAME_TYPE, raw[2:4], raw[6:14] + b"\x00"), HeartbeatAck.FRAME_TYPE)
        self.last_heartbeat = time.monotonic()
        self.gw.state.heartbeat(self.pile, msg.gun, msg.gun_state, self.last_heartbeat)
        self.maybe_push_price()

    def on_billing_verify(self, event: FrameEvent) -> None:
        msg = event.message
        model = self.gw.state.billing_model(self.pile.station_id)
        same = model is not None and model["billing_model_id"] == msg.billing_model_id
        self.send(BillingModelVerifyAck(pile_code=msg.pile_code, billing_model_id=msg.billing_model_id,
                                        result=0 if same else 1), event.header)
        if same:
            self.gw.state.model_synced(self.pile, msg.billing_model_id)

    def on_billing_request(self, event: FrameEvent) -> None:
        model = self.gw.state.billing_model(self.pile.station_id)
        if model is None:
            log.error("pile %s asked for its billing model; station %s has no usable template",
                      self.pile.code, self.pile.station_id)
            return
        self.send(BillingModelReply(pile_code=self.pile.code, **model), event.header)
        self.gw.state.model_synced(self.pile, model["billing_model_id"])

    def on_billing_set_reply(self, event: FrameEvent) -> None:
        if event.message.result == 1 and self.pending_model:
            self.gw.state.model_synced(self.pile, self.pending_model)
            self.pending_model = None
        elif event.message.result != 1:
            log.warning("pile %s refused billing model %s", self.pile.code, self.pending_model)

    def on_realtime(self, event: FrameEvent) -> None:
        gun = self._gun(event.message.gun)
        if gun is not None:
            self.gw.state.realtime(self.pile, gun, event.message)
            self.maybe_push_price()

    def on_bms(self, event: FrameEvent) -> None:
        gun = self._gun(event.message.gun)
        if gun is not None:
            self.gw.state.bms(self.pile, gun, event.message)

    def on_pile_start(self, event: FrameEvent) -> None:
        """0x31 / 0xA1 -> 0x32 / 0xA2. The live state this session wrote so far goes to Redis first:
        the start checks read it there (a 0x13 just before the swipe counts)."""
        msg = event.message
        self.gw.state.live.flush()
        reply = self.gw.state.pile_start_request(msg)
        self.send(start_reply_for(msg, reply), event.header)

    def on_remote_start_reply(self, event: FrameEvent) -> None:
        self.gw.state.remote_reply(event.message, "on_remote_start_reply")

    def on_remote_stop_reply(self, event: FrameEvent) -> None:
        self.gw.state.remote_reply(event.message, "on_remote_stop_reply")

    def on_transaction_record(self, event: FrameEvent) -> None:
        msg = event.message
        self.gw.state.store_bill(self.pile, event.raw, msg)        # committed, or raises: no ack
        self.send(TransactionRecordAck(transaction_serial=msg.transaction_serial, result=0), event.header)
        from app.services.charging import pile_clock_wrong

        if pile_clock_wrong(msg.transaction_time or msg.end_time, utcnow()):
            self.send_time_sync()                                 # its clock is off: set it (0x56)

    def on_ground_lock(self, event: FrameEvent) -> None:
        self.gw.state.ground_lock(self.pile, event.message)

    # --- price push -----------------------------------------------------------------------------------

    def charging(self) -> bool:
        """A gun of the pile is charging (as its last 0x13 said)."""
        return any(g.status == "charging" for g in self.pile.connectors.values())

    def maybe_push_price(self) -> None:
        """Send a queued 0x58 once no gun is charging."""
        if not self.price_pending or self.charging():
            return
        self.price_pending = False
        model = self.gw.state.billing_model(self.pile.station_id)
        if model is not None:
            self.pending_model = model["billing_model_id"]
            self.send(BillingModelSet(pile_code=self.pile.code, **model))

    # --- commands from the bus ----------------------------------------------------------------------

    def command(self, req: Request) -> None:
        """Send a bus request's frame; its reply (if any) is routed back by :meth:`_resolve`."""
        redis = self.gw.redis
        body = bytes.fromhex(req.body)
        if req.frame_type == BillingModelSet.FRAME_TYPE and self.pile is not None and self.charging():
            # never a 0x58 while a gun charges: queued like the automatic push, sent once idle;
            # the caller gets an answer without a reply frame (held)
            self.gw.state.forget_price(self.pile.station_id)
            self.price_pending = True
            self._count_command(req, "held")
            send_reply(redis, req)
            return
        waiter = None
        if req.expect:
            waiter = Waiter(req, frozenset(req.expect), dict(req.match))
            waiter.timer = gevent.spawn_later(max(0.0, req.deadline - time.time()), self._expire, waiter)
            self.waiters.append(waiter)
        try:
            self.send_raw(encode_frame(RawFrame(req.frame_type, body), self.next_seq()), req.frame_type)
        except OSError as exc:
            if waiter is not None:
                self.waiters.remove(waiter)
                waiter.timer.kill(block=False)
            self._count_command(req, "send_failed")
            send_reply(redis, req, error="send_failed", detail=str(exc))
            return
        if req.frame_type == BillingModelSet.FRAME_TYPE:
            self.pending_model = BillingModelSet.decode(body).billing_model_id
        if waiter is None:
            self._count_command(req, "sent")
            send_reply(redis, req)

    def _resolve(self, frame_type: int, msg, raw: bytes) -> None:
        for waiter in self.waiters:
            if waiter.matches(frame_type, msg):
                self.waiters.remove(waiter)
                waiter.timer.kill(block=False)
                self._finish(waiter, frame=raw)
                return

    def _expire(self, waiter: Waiter) -> None:
        if waiter in self.waiters:
            self.waiters.remove(waiter)
            self._finish(waiter, error="timeout")

    def _finish(self, waiter: Waiter, frame: bytes | None = None, error: str | None = None) -> None:
        if waiter.timer is not None:
            waiter.timer.kill(block=False)
        req = waiter.request
        self._count_command(req, error or "ok")
        if error is None:
            self.gw.metrics.observe("ykc_gateway_command_seconds", time.monotonic() - req.received,
                                    type=frame_label(req.frame_type))
        try:
            send_reply(self.gw.redis, req, frame=frame, error=error)
        except Exception:
            log.exception("could not answer command %s", req.id)

    def _count_command(self, req: Request, result: str) -> None:
        self.gw.metrics.inc("ykc_gateway_commands_total", type=frame_label(req.frame_type or 0), result=result)


def start_reply_for(request, reply):
    """The answer to a pile-initiated start in the request's own kind: 0xA2 (with the request's
    parallel serial) for a parallel start (0xA1), 0x32 for 0x31."""
    parallel = isinstance(request, ParallelPileStartRequest)
    if parallel == isinstance(reply, ParallelPileStartReply):
        return reply
    fields = {f.name: getattr(reply, f.name) for f in dataclasses.fields(PileStartReply)}
    if parallel:
        return ParallelPileStartReply(parallel_serial=request.parallel_serial, **fields)
    return PileStartReply(**fields)


HANDLERS = {
    0x01: PileSession.on_login,
    0x03: PileSession.on_heartbeat,
    0x05: PileSession.on_billing_verify,
    0x09: PileSession.on_billing_request,
    0x13: PileSession.on_realtime,
    0x31: PileSession.on_pile_start,
    0xA1: PileSession.on_pile_start,
    0x33: PileSession.on_remote_start_reply,
    0xA3: PileSession.on_remote_start_reply,
    0x35: PileSession.on_remote_stop_reply,
    0x3B: PileSession.on_transaction_record,
    0x57: PileSession.on_billing_set_reply,
    0x61: PileSession.on_ground_lock,
    **{t: PileSession.on_bms for t in BMS_FRAMES},
}

