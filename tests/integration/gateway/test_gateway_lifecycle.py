"""A node's own lifecycle: a clean stop takes its piles offline; after a crash, the restarted node
marks the piles it held offline."""

from __future__ import annotations

import signal

from sqlalchemy import select

from app.gateway.registry import Registry
from app.models import Pile
from tests.integration.gateway.conftest import GatewayProcess, fetch, wait_until
from tests.integration.gateway.ykc_client import PileClient


def online(app, code):
    return fetch(app, select(Pile.online).where(Pile.code == code))[0][0]


def test_stop_takes_piles_offline(app, redis, piles, gw_station):
    node = GatewayProcess(app, "gw-test-stop").wait_ready(redis)
    code = piles()
    try:
        with PileClient(node.port, code) as pile:
            assert pile.login().result == 0
            wait_until(lambda: online(app, code), message="online")
            node.proc.send_signal(signal.SIGTERM)
            assert pile.closed_within(10)
            node.proc.wait(15)
    finally:
        node.stop()
    assert not online(app, code)
    assert Registry(redis).owner(code) is None and not Registry(redis).node_alive("gw-test-stop")


def test_restart_after_a_crash_marks_orphans_offline(app, redis, piles, gw_station):
    node = GatewayProcess(app, "gw-test-crash").wait_ready(redis)
    code = piles()
    with PileClient(node.port, code) as pile:
        assert pile.login().result == 0
        wait_until(lambda: online(app, code), message="online")
        node.proc.send_signal(signal.SIGKILL)                  # crash: nobody marks the pile offline
        node.proc.wait(10)
        node.stop()
    assert online(app, code)
    again = GatewayProcess(app, "gw-test-crash").wait_ready(redis)
    try:
        wait_until(lambda: not online(app, code), message="orphan marked offline")
        assert Registry(redis).owner(code) is None
    finally:
        again.stop()
