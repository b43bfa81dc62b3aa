"""Missed heartbeats take a pile offline (node B: 0.3 s interval, 3 misses)."""

from __future__ import annotations

import time

from sqlalchemy import select

from app.gateway.registry import Registry
from app.gateway.ykc import Heartbeat, RealtimeData
from app.models import Connector, ConnectorStatusLog, Pile
from tests.integration.gateway.conftest import fetch, wait_until
from tests.integration.gateway.ykc_client import PileClient


def test_missed_heartbeats_take_the_pile_offline(app, fast_gateway, piles, redis):
    code = piles()
    pile = PileClient(fast_gateway.port, code)
    try:
        assert pile.login().result == 0
        for _ in range(8):                                   # 1.6 s of regular heartbeats: stays online
            pile.send(Heartbeat(pile_code=code, gun="01"))
            time.sleep(0.2)
        pile.expect(0x04)
        assert Registry(redis).owner(code)[0] == "gw-test-b"
        wait_until(lambda: fetch(app, select(Pile.online).where(Pile.code == code))[0][0])
        started = time.monotonic()
        assert pile.closed_within(3), "the gateway did not drop a pile that stopped heart-beating"
        assert 0.5 < time.monotonic() - started < 2.5
    finally:
        pile.close()
    wait_until(lambda: not fetch(app, select(Pile.online).where(Pile.code == code))[0][0], message="offline")
    assert Registry(redis).owner(code) is None
    rows = fetch(app, select(Connector.status).where(Connector.code.like(f"{code}%")))
    assert {r[0] for r in rows} == {"offline"}
    pile_row = fetch(app, select(Pile).where(Pile.code == code))[0][0]
    assert pile_row.last_offline_at is not None


def test_heartbeat_timeout_is_logged_for_guns_that_were_online(app, fast_gateway, piles):
    code = piles()
    with PileClient(fast_gateway.port, code) as pile:
        assert pile.login().result == 0
        pile.send(RealtimeData(transaction_serial="0" * 32, pile_code=code, gun="01", status=2))
        wait_until(lambda: fetch(app, select(Connector.status).where(Connector.code == f"{code}01"))[0][0] == "idle")
        assert pile.closed_within(3)
    logs = wait_until(lambda: fetch(app, select(ConnectorStatusLog.reason).join(Connector)
                                    .where(Connector.code == f"{code}01", ConnectorStatusLog.status == "offline")))
    assert logs[0][0] == "offline: heartbeat timeout"
