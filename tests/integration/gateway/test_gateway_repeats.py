"""An idle gun repeats the same 0x13 all day: the gateway applies a repeated body once, moves only the
live time on, and hands the frame to the order logic only when it matters (a transaction serial, or a
plug change for occupancy) — over a real socket against ``python run.py gateway`` with the order hooks."""

from __future__ import annotations

import time

from sqlalchemy import select

from app.gateway.ykc import RealtimeData
from app.models import Connector, ConnectorStatusLog
from app.services import occupancy
from app.services.live_state import live_guns
from tests.integration.gateway.conftest import fetch, wait_until
from tests.integration.gateway.ykc_client import PileClient


def idle(code, plugged=0):
    return RealtimeData(transaction_serial="0" * 32, pile_code=code, gun="01", status=2, gun_plugged=plugged)


def test_repeated_idle_frames_refresh_the_time_only(app, gateway, piles, redis):
    code = piles()
    pile = PileClient(gateway.port, code)
    assert pile.login().result == 0
    gun = f"{code}01"
    (connector_id,), = fetch(app, select(Connector.id).where(Connector.code == gun))

    pile.send(idle(code))
    first = wait_until(lambda: (s := live_guns(redis, [gun])[gun]).get("status") == "idle" and s)
    seen = wait_until(lambda: redis.hgetall(occupancy.seen_key(connector_id)), message="plug state reported")
    assert seen[b"plugged"] == b"0"

    time.sleep(1.2)                                              # the live time has second resolution
    for _ in range(3):
        pile.send(idle(code))                                    # the same body, new sequence numbers
    wait_until(lambda: live_guns(redis, [gun])[gun]["updated_at"] > first["updated_at"],
               message="the repeat moved the live time on")
    time.sleep(0.5)
    assert redis.hgetall(occupancy.seen_key(connector_id)) == seen   # no occupancy round trip for repeats
    logs = fetch(app, select(ConnectorStatusLog.status).where(ConnectorStatusLog.connector_id == connector_id))
    assert [r[0] for r in logs] == ["idle"]                      # one status change, not one per frame

    pile.send(idle(code, plugged=1))                              # the plug changes: occupancy hears it
    wait_until(lambda: redis.hget(occupancy.seen_key(connector_id), "plugged") == b"1",
               message="plug change reported")
    wait_until(lambda: live_guns(redis, [gun])[gun]["status"] == "occupied")
    pile.send(idle(code))                                        # back to the first body: applied again
    wait_until(lambda: live_guns(redis, [gun])[gun]["status"] == "idle", message="repeat of an older body")
    wait_until(lambda: redis.hget(occupancy.seen_key(connector_id), "plugged") == b"0")
    pile.close()
