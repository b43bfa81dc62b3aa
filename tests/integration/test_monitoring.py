"""电站监控 (issue 12 §3): the monitor's JSON reads the gateway's live state in Redis, shows the
figures of every charging gun (also one the pile started itself, with no platform order), the
page polls it with the CSP nonce, and a gun's 状态日志 is a timeline in local time. Data scope holds.

Live state is written by the real gateway: in process through its state writer (the database
batch is never flushed, so nothing reaches the database), and by a real gateway process that a
scripted pile talks to over TCP."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import delete, func, select

from app.extensions import db, get_redis
from app.gateway.registry import Registry
from app.gateway.state_writer import ConnectorRef, GatewayState, PileInfo, StateSettings
from app.gateway.ykc import RealtimeData
from app.models import Alarm, ChargeOrder, Connector, ConnectorStatusLog, Operator, Pile, Station
from tests.conftest import ADMIN_PASSWORD
from tests.integration.gateway.conftest import GatewayProcess, fetch, wait_until
from tests.integration.gateway.ykc_client import PileClient

STAFF_PASSWORD = "staff-pass-1"
PREFIX = "7812"                   # test piles 7812xxxxxxxxxx


def _station(operator_code):
    op = db.session.scalar(select(Operator).where(Operator.code == operator_code))
    return db.session.scalar(select(Station).where(Station.operator_id == op.id).order_by(Station.id))


def new_pile(app, operator_code="MA1NJ0001") -> dict:
    """A two-gun YKC pile at the operator's first station."""
    with app.app_context():
        station = _station(operator_code)
        code = f"{PREFIX}{uuid.uuid4().int % 10**10:010d}"
        pile = Pile(operator_id=station.operator_id, station=station, code=code, name=f"监控测试桩{code[-4:]}",
                    protocol="ykc15", gun_count=2)
        for gun in (1, 2):
            pile.connectors.append(Connector(operator_id=station.operator_id, station=station, gun_no=gun,
                                             code=f"{code}{gun:02d}", name=f"{code}-{gun}"))
        db.session.add(pile)
        db.session.commit()
        return {"code": code, "id": pile.id, "station_id": station.id,
                "guns": {c.gun_no: c.id for c in pile.connectors}}


@pytest.fixture(scope="module")
def redis(app):
    with app.app_context():
        return get_redis()


@pytest.fixture(scope="module")
def gateway(app, redis):
    node = GatewayProcess(app, "gw-monitoring").wait_ready(redis)
    yield node
    node.stop()


@pytest.fixture(scope="module", autouse=True)
def cleanup(app):
    yield
    with app.app_context():
        ids = list(db.session.scalars(select(Pile.id).where(Pile.code.like(f"{PREFIX}%"))))
        for model in (Alarm, ConnectorStatusLog):
            db.session.execute(delete(model).where(model.pile_id.in_(ids)))
        db.session.execute(delete(Connector).where(Connector.pile_id.in_(ids)))
        db.session.execute(delete(Pile).where(Pile.id.in_(ids)))
        db.session.commit()


def live_json(client, **args):
    rv = client.get("/stationmonitor/live", query_string=args)
    assert rv.status_code == 200, rv.get_data(as_text=True)[:300]
    assert rv.content_type.startswith("application/json")
    return rv.get_json()


def card(client, gun_code):
    data = live_json(client, connector_code=gun_code)
    assert [c["code"] for c in data["cards"]] == [gun_code], data
    return data["cards"][0], data["summary"]


def db_counts(app, pile_id):
    return fetch(app, select(func.count()).select_from(ConnectorStatusLog)
                 .where(ConnectorStatusLog.pile_id == pile_id))[0][0], \
        sorted(tuple(r) for r in fetch(app, select(Connector.gun_no, Connector.status)
                                       .where(Connector.pile_id == pile_id)))


def test_monitor_json_follows_redis_without_any_database_write(app, admin_client, redis):
    """The gateway's state writer updates Redis only (its database batch is held back): the JSON
    shows the new status and figures, the database still says offline."""
    pile = new_pile(app)
    code = pile["code"]
    before = db_counts(app, pile["id"])
    assert before == (0, [(1, "offline"), (2, "offline")])
    first, _ = card(admin_client, f"{code}01")
    assert first["status"] == "offline" and first["power"] is None

    state = GatewayState(app, redis, StateSettings(node="gw-monitor-inproc"))
    registry = Registry(redis)
    registry.announce("gw-monitor-inproc", 60)
    registry.claim(code, "gw-monitor-inproc", "c1", 60)
    info = PileInfo(id=pile["id"], code=code, operator_id=0, station_id=pile["station_id"], enabled=True,
                    protocol="ykc15")
    gun = info.connectors[1] = ConnectorRef(id=pile["guns"][1], gun_no=1, code=f"{code}01", status="offline")
    try:
        state.realtime(info, gun, RealtimeData(transaction_serial="1" * 32, pile_code=code, gun="01", status=3,
                                               gun_plugged=1, output_voltage=Decimal("400.0"),
                                               output_current=Decimal("50.0"), soc=42, energy=Decimal("3.2500")))
        assert state.live.flush() > 0
        now, summary = card(admin_client, f"{code}01")
        assert now["status"] == "charging" and now["status_label"] == "Charging"
        assert (now["power"], now["voltage"], now["current"], now["soc"], now["energy"]) == (
            "20.00", "400.0", "50.0", "42", "3.2500")
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", now["updated_local"]), now["updated_local"]
        assert summary["charging"] == "1" and Decimal(summary["live_power"]) == Decimal("20.00")
        other, _ = card(admin_client, f"{code}02")
        assert other["status"] == "offline", "a gun the online pile never reported keeps the database's status"

        state.realtime(info, gun, RealtimeData(transaction_serial="1" * 32, pile_code=code, gun="01", status=2,
                                               gun_plugged=1))
        state.live.flush()
        now, _ = card(admin_client, f"{code}01")
        assert now["status"] == "occupied" and now["power"] is None, "figures only while charging"
        assert state.batch.pending(), "the database writes were held back"
        assert db_counts(app, pile["id"]) == before, "nothing was written to the database"

        registry.withdraw("gw-monitor-inproc")          # the node is gone: the pile is offline
        now, _ = card(admin_client, f"{code}01")
        assert now["status"] == "offline"
    finally:
        registry.release(code, "gw-monitor-inproc", "c1")
        registry.withdraw("gw-monitor-inproc")


def test_power_of_a_charge_the_pile_started_itself(app, admin_client, gateway, redis):
    """A pile charging with no platform order (started at the pile): the monitor shows its power from
    the 0x13 frames, and the page's counters and timeline follow."""
    pile = new_pile(app)
    code, gun_code = pile["code"], f"{pile['code']}01"
    with PileClient(gateway.port, code) as client:
        assert client.login().result == 0
        client.send(RealtimeData(transaction_serial="0" * 32, pile_code=code, gun="01", status=2))
        wait_until(lambda: card(admin_client, gun_code)[0]["status"] == "idle", message="idle on the monitor")
        serial = f"{code}01" + "2" * 16
        client.send(RealtimeData(transaction_serial=serial, pile_code=code, gun="01", status=3, gun_plugged=1,
                                 output_voltage=Decimal("380.0"), output_current=Decimal("100.0"), soc=61,
                                 energy=Decimal("12.3400"), charged_minutes=15))
        live = wait_until(lambda: (c := card(admin_client, gun_code)[0])["status"] == "charging" and c,
                          message="charging on the monitor")
        assert (live["power"], live["voltage"], live["current"], live["soc"], live["energy"]) == (
            "38.00", "380.0", "100.0", "61", "12.3400")
        assert fetch(app, select(func.count()).select_from(ChargeOrder)
                     .where(ChargeOrder.connector_id == pile["guns"][1]))[0][0] == 0, "no platform order"

        html = admin_client.get(f"/stationmonitor/?connector_code={gun_code}").get_data(as_text=True)
        assert 'data-live="power">38.00<' in html and 'data-live="soc">61<' in html
        client.send(RealtimeData(transaction_serial=serial, pile_code=code, gun="01", status=2, gun_plugged=1))
        wait_until(lambda: card(admin_client, gun_code)[0]["status"] == "occupied", message="charge ended")
    # the pile hung up: the gateway logs the guns offline (with the reason)
    wait_until(lambda: db_counts(app, pile["id"])[0] >= 4, message="status log written by the gateway")
    rv = admin_client.get(f"/stationmonitor/timeline/{pile['guns'][1]}")
    assert rv.status_code == 200
    html = rv.get_data(as_text=True)
    entries = re.findall(r'data-status="(\w+)"', html)
    assert entries == ["offline", "occupied", "charging", "idle"], entries        # newest first
    times = re.findall(r'class="cpms-at">([^<]*)<', html)
    assert times and all(re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", t) for t in times), times
    reasons = re.findall(r"Reason: ([^·]*) ·", html)
    reasons = [r.strip() for r in reasons]
    assert reasons[1:] == ["Realtime data (0x13)"] * 3, reasons
    # the pile hung up: "socket closed" or, when the close races a read, "socket error" - in words
    assert reasons[0] in ("Offline: Connection closed by the pile", "Offline: Connection error"), reasons


def test_page_polls_the_json_with_the_csp_nonce(admin_client):
    rv = admin_client.get("/stationmonitor/?station=1")
    html = rv.get_data(as_text=True)
    nonce = re.search(r"'nonce-([^']+)'", rv.headers["Content-Security-Policy"]).group(1)
    assert f'<script nonce="{nonce}">' in html
    assert 'data-live-url="/stationmonitor/live?station=1"' in html
    refresh = int(re.search(r'data-refresh="(\d+)"', html).group(1))
    assert 0 < refresh <= 5000


def test_monitor_is_chinese(app, client, login):
    pile = new_pile(app)
    login("admin", ADMIN_PASSWORD, lang="zh")
    html = client.get(f"/stationmonitor/?connector_code={pile['code']}01").get_data(as_text=True)
    assert "离线" in html and "实时功率" in html
    data = live_json(client, connector_code=f"{pile['code']}01")
    assert data["cards"][0]["status_label"] == "离线"
    html = client.get(f"/stationmonitor/timeline/{pile['guns'][1]}").get_data(as_text=True)
    assert "状态日志" in html
    from tests.integration.test_chinese_everywhere import problems

    for url in (f"/stationmonitor/?connector_code={pile['code']}01", f"/stationmonitor/timeline/{pile['guns'][1]}"):
        html = client.get(url).get_data(as_text=True)
        assert not problems(html), (url, problems(html))


def test_data_scope(app, client, login):
    a = new_pile(app, "MA1NJ0001")
    b = new_pile(app, "MA1NJ0002")
    login("staff_b", STAFF_PASSWORD)
    assert live_json(client, connector_code=f"{a['code']}01")["cards"] == []
    assert len(live_json(client, connector_code=f"{b['code']}01")["cards"]) == 1
    assert client.get(f"/stationmonitor/timeline/{a['guns'][1]}").status_code == 404
    assert client.get(f"/stationmonitor/timeline/{b['guns'][1]}").status_code == 200
    login("viewer_a", STAFF_PASSWORD)              # read-only staff read the monitor too
    assert len(live_json(client, connector_code=f"{a['code']}01")["cards"]) == 1
    client.post("/logout/")
    assert client.get("/stationmonitor/live").status_code in (302, 401, 403)
