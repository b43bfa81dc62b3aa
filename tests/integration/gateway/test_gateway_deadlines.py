"""Session deadlines are kept by one sweeper greenlet per node (no timeout per receive): over real
sockets against ``python run.py gateway`` with short deadlines (idle and login 1 s, heartbeat 3 x
0.5 s, time sync every 1 s: a sweep every 0.25 s)."""

from __future__ import annotations

import time

import pytest

from app.gateway.registry import pile_key
from app.gateway.ykc import RealtimeData
from tests.integration.gateway.conftest import GatewayProcess, wait_until
from tests.integration.gateway.ykc_client import PileClient

IDLE = LOGIN = SYNC = 1.0
HEARTBEAT_TIMEOUT = 1.5
SWEEP = 0.25                       # a quarter of the shortest deadline
SLACK = 0.75                       # a busy test machine (the node, the client and the clock)


@pytest.fixture(scope="module")
def deadline_gateway(app, redis, gw_station):
    node = GatewayProcess(app, "gw-test-deadlines", GATEWAY_IDLE_TIMEOUT=IDLE, GATEWAY_LOGIN_TIMEOUT=LOGIN,
                          GATEWAY_HEARTBEAT_INTERVAL=0.5, GATEWAY_HEARTBEAT_MISSES=3,
                          GATEWAY_TIME_SYNC_INTERVAL=SYNC).wait_ready(redis)
    yield node
    node.stop()


def offline_reason(redis, code: str) -> str:
    return (redis.hget(pile_key(code), "offline_reason") or b"").decode()


def test_a_connection_that_never_logs_in_is_closed_within_one_sweep(deadline_gateway):
    with PileClient(deadline_gateway.port, "00000000000000") as pile:
        started = time.monotonic()
        assert pile.closed_within(LOGIN + SWEEP + SLACK + 1)
        assert LOGIN - 0.05 <= time.monotonic() - started <= LOGIN + SWEEP + SLACK


def test_time_sync_is_sent_on_schedule(deadline_gateway, piles):
    code = piles()
    with PileClient(deadline_gateway.port, code) as pile:
        assert pile.login().result == 0
        pile.expect(0x56)                                       # right after the login
        pile.start_heartbeats(0.2)
        arrivals = [time.monotonic()]
        for _ in range(3):
            pile.expect(0x56, timeout=SYNC + SWEEP + SLACK + 1, pile_code=code)
            arrivals.append(time.monotonic())
        gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
        assert all(SYNC - 0.1 <= gap <= SYNC + SWEEP + SLACK for gap in gaps), gaps


def test_a_pile_that_keeps_sending_never_times_out_and_one_that_stops_is_closed(deadline_gateway, piles, redis):
    code = piles()
    with PileClient(deadline_gateway.port, code) as pile:
        assert pile.login().result == 0
        pile.start_heartbeats(0.2)
        assert not pile.closed_within(4 * HEARTBEAT_TIMEOUT), "a pile that heart-beats was dropped"
        pile.stop_heartbeats()
        stopped = time.monotonic()
        assert pile.closed_within(IDLE + SWEEP + SLACK + 1)
        assert time.monotonic() - stopped <= IDLE + SWEEP + SLACK
    wait_until(lambda: offline_reason(redis, code) == "idle timeout", message="offline for idle timeout")


def test_frames_without_heartbeats_end_in_a_heartbeat_timeout(deadline_gateway, piles, redis):
    """Bytes keep coming (0x13 every 0.2 s, so never idle), heartbeats do not: closed for the heartbeat."""
    code = piles()
    with PileClient(deadline_gateway.port, code) as pile:
        assert pile.login().result == 0
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < HEARTBEAT_TIMEOUT + SWEEP + SLACK + 1:
            try:
                pile.send(RealtimeData(transaction_serial="0" * 32, pile_code=code, gun="01", status=2))
            except OSError:
                closed = True
                break
            if pile.closed_within(0.2):
                closed = True
                break
        assert closed, "a pile sending no heartbeat was kept"
        assert HEARTBEAT_TIMEOUT - 0.05 <= time.monotonic() - started <= HEARTBEAT_TIMEOUT + SWEEP + SLACK + 0.2
    wait_until(lambda: offline_reason(redis, code) == "heartbeat timeout", message="offline for heartbeat timeout")
