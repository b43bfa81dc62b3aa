"""The session deadline sweeper (``Gateway.sweep_deadlines``): one pass closes every waiting session
whose idle, login or heartbeat deadline passed, sends due time syncs, and leaves the others alone.
Real sessions on real socket pairs; the gateway object is not started (no listener, no Redis)."""

from __future__ import annotations

import socket
import time
from datetime import datetime

import gevent
import pytest
from gevent import socket as gsocket

from app.gateway.server import Gateway, GatewaySettings
from app.gateway.session import PileSession
from app.gateway.state_writer import PileInfo
from app.gateway.ykc import FrameReader, TimeSync, encode_frame

PILE = "12345678901234"


@pytest.fixture
def gateway():
    gw = Gateway(("127.0.0.1", 0))
    gw.settings = GatewaySettings(node="unit-deadlines", idle_timeout=1.0, login_timeout=1.0, heartbeat_interval=0.5,
                                  heartbeat_misses=3, time_sync_interval=1.0)
    yield gw
    for session in list(gw.connections):
        session.close("test over")


def session_of(gw, *, logged_in: bool, waiting: bool = True):
    ours, peer = socket.socketpair()
    session = PileSession(gw, ours, ("127.0.0.1", 40000 + len(gw.connections)))
    session.waiting = waiting
    if logged_in:
        session.pile = PileInfo(id=1, code=PILE, operator_id=1, station_id=1, enabled=True, protocol="ykc")
        session.last_heartbeat = time.monotonic()
        session.next_time_sync = time.monotonic() + 1.0
    gw.connections.add(session)
    return session, peer


def peer_closed(peer) -> bool:
    peer.settimeout(1)
    return peer.recv(64) == b""


def test_the_sweep_interval_is_a_quarter_of_the_shortest_deadline_within_bounds():
    assert GatewaySettings(node="n").deadline_interval == 0.5                       # production defaults
    short = GatewaySettings(node="n", idle_timeout=1.0, login_timeout=2.0, heartbeat_interval=0.5, heartbeat_misses=3)
    assert short.deadline_interval == 0.25
    assert GatewaySettings(node="n", idle_timeout=0.1).deadline_interval == 0.05
    assert GatewaySettings(node="n", deadline_interval=0.3).deadline_interval == 0.3


def test_one_sweep_closes_each_session_whose_deadline_passed_with_its_reason(gateway):
    now = time.monotonic()
    idle, idle_peer = session_of(gateway, logged_in=True)
    idle.last_rx = now - 1.01                                    # no byte for the idle timeout
    idle.last_heartbeat = now - 0.5
    login, login_peer = session_of(gateway, logged_in=False)
    login.connected_at = now - 1.01                              # connected, never logged in
    beat, beat_peer = session_of(gateway, logged_in=True)
    beat.last_heartbeat = now - 1.51                             # bytes, but no heartbeat for 3 x 0.5 s
    fine, fine_peer = session_of(gateway, logged_in=True)
    fine.last_rx = fine.last_heartbeat = now - 0.9               # within every deadline
    busy, busy_peer = session_of(gateway, logged_in=True, waiting=False)
    busy.last_rx = now - 5                                       # busy in a handler: its loop is not waiting

    gateway.sweep_deadlines()

    assert (idle.closed, idle.close_reason) == (True, "idle timeout") and peer_closed(idle_peer)
    assert (login.closed, login.close_reason) == (True, "login timeout") and peer_closed(login_peer)
    assert (beat.closed, beat.close_reason) == (True, "heartbeat timeout") and peer_closed(beat_peer)
    assert not fine.closed and not busy.closed


def test_the_earlier_deadline_gives_the_reason(gateway):
    now = time.monotonic()
    session, _ = session_of(gateway, logged_in=True)
    session.last_heartbeat = now - 2.0                           # heartbeat deadline passed 0.5 s ago
    session.last_rx = now - 1.2                                  # idle deadline passed 0.2 s ago
    gateway.sweep_deadlines()
    assert session.close_reason == "heartbeat timeout"


def test_a_due_time_sync_is_sent_and_the_next_one_scheduled(gateway):
    session, peer = session_of(gateway, logged_in=True)
    session.next_time_sync = time.monotonic() - 0.01
    gateway.sweep_deadlines()
    assert session.next_time_sync == float("inf")                # taken: a second sweep does not send it again
    gateway.sweep_deadlines()
    gevent.sleep(0.05)                                           # the sending greenlet runs
    assert not session.closed
    assert time.monotonic() < session.next_time_sync <= time.monotonic() + 1.0
    peer.settimeout(1)
    events = FrameReader().feed(peer.recv(4096))
    assert [type(e.message) for e in events] == [TimeSync]
    assert events[0].message.pile_code == PILE
    assert gateway.metrics.value("ykc_gateway_frames_out_total", type="0x56") == 1


def test_a_session_that_keeps_receiving_is_never_closed(gateway):
    session, _ = session_of(gateway, logged_in=True)
    session.next_time_sync = float("inf")
    for _ in range(12):                                          # 1.8 s: past every deadline but for the frames
        gevent.sleep(0.15)
        session.last_rx = session.last_heartbeat = time.monotonic()
        gateway.sweep_deadlines()
    assert not session.closed


def test_a_session_blocked_sending_to_a_pile_that_does_not_read_is_swept_too(gateway):
    session, peer = session_of(gateway, logged_in=True, waiting=False)
    session.sending = 1                                          # a greenlet is stuck in sendall
    session.last_rx = time.monotonic() - 1.01
    gateway.sweep_deadlines()
    assert (session.closed, session.close_reason) == (True, "idle timeout") and peer_closed(peer)


def test_replies_go_out_whole_and_are_counted(gateway):
    """On a gevent socket a frame goes out with one nonblocking send when no other greenlet is sending,
    through the lock and sendall while one is: the same bytes, in order, counted once each."""
    ours, peer = gsocket.socketpair()
    session = PileSession(gateway, ours, ("127.0.0.1", 40999))
    session.pile = PileInfo(id=1, code=PILE, operator_id=1, station_id=1, enabled=True, protocol="ykc")
    frames = [TimeSync(pile_code=PILE, current_time=datetime(2026, 1, 2, 3, 4, n)) for n in range(3)]
    session.send(frames[0])                                      # nobody else sending: the direct path

    def hold():
        with session.send_lock:
            gevent.sleep(0.05)

    holder = gevent.spawn(hold)
    gevent.sleep(0)                                              # another greenlet holds the lock now
    session.send(frames[1])                                      # waits for it, then sendall
    assert holder.dead
    session.send(frames[2])
    size = 3 * len(encode_frame(frames[0], 0))
    data = b""
    while len(data) < size:
        data += peer.recv(4096)
    assert [e.message for e in FrameReader().feed(data)] == frames
    assert gateway.metrics.value("ykc_gateway_frames_out_total", type="0x56") == 3
    assert gateway.metrics.value("ykc_gateway_bytes_out_total") == size
    ours.close()
    peer.close()
