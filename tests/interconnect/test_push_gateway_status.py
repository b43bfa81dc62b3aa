"""Gun status changes reported by a pile over a real TCP socket to ``python run.py gateway``: the gateway
queues notification_stationStatus cheaply (one Redis transaction after its batch commit, one waiting job per
gun), so a burst of 20 status changes of one gun reaches the partner as at most 2 pushes carrying the last
status. Its own station and pile (code outside the gateway tests' pool) and its own gateway process."""
import pytest
from rq import Queue
from sqlalchemy import select

from app.extensions import db, get_redis
from app.gateway.ykc import RealtimeData
from app.models import Connector, Operator, Partner, Pile, Station
from tests.integration.gateway.conftest import GatewayProcess, fetch, remove_test_station, wait_until
from tests.integration.gateway.ykc_client import PileClient
from tests.interconnect.push_support import OPERATOR, drain, logs, new_partner, quiet_others

PILE_CODE = "77200000000001"          # outside the gateway tests' pool (7700000000xxxx) and the e2e walk's
# YKC 0x13 (status, plugged) -> our status: idle, occupied, fault, idle ... 20 changes, then occupied (T/CEC 2)
BURST = [(2, 0), (2, 1), (1, 0), (2, 0)] * 5
LAST = (2, 1)


@pytest.fixture(autouse=True)
def ctx(app):
    saved = app.config["TCEC_PUSH_RETRY_INTERVAL"]
    app.config["TCEC_PUSH_RETRY_INTERVAL"] = 1
    with app.app_context():
        yield
        db.session.remove()
    app.config["TCEC_PUSH_RETRY_INTERVAL"] = saved


@pytest.fixture(scope="module")
def node(app):
    with app.app_context():
        operator = db.session.scalar(select(Operator).where(Operator.code == OPERATOR))
        station = Station(operator=operator, code="TCECPUSH01", name="推送测试站", address="推送测试地址")
        pile = Pile(operator=operator, station=station, code=PILE_CODE, name="推送测试桩", protocol="ykc15",
                    gun_count=2)
        for gun in (1, 2):
            pile.connectors.append(Connector(operator=operator, station=station, gun_no=gun,
                                             code=f"{PILE_CODE}{gun:02d}", name=f"推送测试枪{gun}"))
        db.session.add(station)
        db.session.commit()
        station_id = station.id
        redis = get_redis()
    gateway = GatewayProcess(app, "gw-tcec-push", TCEC_PARTNER_CACHE_SECONDS=0).wait_ready(redis)
    yield gateway
    gateway.stop()
    with app.app_context():
        station = db.session.get(Station, station_id)
        template_id = station.price_template_id
        remove_test_station(station_id, template_id)


def gun_status(app):
    return fetch(app, select(Connector.status).where(Connector.code == f"{PILE_CODE}01"))[0][0]


def test_burst_of_gun_status_changes_is_coalesced(app, node):
    platform, partner_id = new_partner("gateway")
    queue = Queue("push", connection=get_redis())
    try:
        with quiet_others({partner_id}), PileClient(node.port, PILE_CODE) as pile:
            pile.login()
            pile.send(RealtimeData(transaction_serial="0" * 32, pile_code=PILE_CODE, gun="01", status=2))
            wait_until(lambda: gun_status(app) == "idle", 10, 0.05, "gun idle")
            wait_until(lambda: queue.count > 0, 10, 0.05, "first status job")
            drain(app)
            platform.clear()
            for status, plugged in BURST + [LAST]:
                pile.send(RealtimeData(transaction_serial="0" * 32, pile_code=PILE_CODE, gun="01", status=status,
                                       gun_plugged=plugged))
            wait_until(lambda: gun_status(app) == "occupied", 10, 0.05, "gun occupied in the DB")
            wait_until(lambda: queue.count > 0, 10, 0.05, "the gateway queued the gun's status job")
            drain(app)
            sent = [d["ConnectorStatusInfo"] for d in platform.requests_for("notification_stationStatus")
                    if d["ConnectorStatusInfo"]["ConnectorID"] == f"{PILE_CODE}01"]
            assert 1 <= len(sent) <= 2, sent
            assert sent[-1]["Status"] == 2
            assert all(r.status == "success" for r in logs(partner_id, "notification_stationStatus"))
    finally:
        platform.stop()
        db.session.get(Partner, partner_id).push_enabled = False
        db.session.commit()
