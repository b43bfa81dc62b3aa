"""The gateway tests' shared fixtures (a plugin of the root conftest, ``pytest_plugins``), so that every
test module that needs a gateway, the test station or its piles gets the SAME session instances: one
station, one pool of pile codes (never a pile twice), one node "gw-test-a". (Fixtures imported into a
test module would be a second, separate session fixture: a second station, the same codes twice.)
Helpers (GatewayProcess, wait_until, ...) stay in ``tests/integration/gateway/conftest.py``."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from app.extensions import db, get_redis
from app.models import Connector, Operator, Pile, PricePeriod, PriceTemplate, Station
from tests.integration.gateway.conftest import (
    PILE_COUNT,
    PILE_PREFIX,
    TOU,
    GatewayProcess,
    remove_test_station,
)


@pytest.fixture(scope="session")
def redis(app):
    with app.app_context():
        return get_redis()


@pytest.fixture(scope="session")
def gw_station(app):
    """A station with its own TOU template and PILE_COUNT two-gun YKC piles (deleted afterwards)."""
    with app.app_context():
        operator = db.session.scalar(select(Operator).order_by(Operator.id))
        template = PriceTemplate(operator=operator, code="GWTEST", name="网关测试模版")
        template.periods = [PricePeriod(start_minute=s, end_minute=e, level=lv, electricity_price=Decimal(ep),
                                        service_price=Decimal(sp)) for s, e, lv, ep, sp in TOU]
        station = Station(operator=operator, code="GWTEST01", name="网关测试站", address="测试地址",
                          price_template=template)
        db.session.add(station)
        db.session.flush()
        for n in range(1, PILE_COUNT + 1):
            code = f"{PILE_PREFIX}{n:04d}"
            pile = Pile(operator=operator, station=station, code=code, name=f"网关测试桩{n}", protocol="ykc15",
                        gun_count=2)
            for gun in (1, 2):
                pile.connectors.append(Connector(operator=operator, station=station, gun_no=gun,
                                                 code=f"{code}{gun:02d}", name=f"{code}-{gun}"))
            db.session.add(pile)
        db.session.commit()
        ids = station.id, template.id
    yield {"station_id": ids[0], "template_id": ids[1],
           "codes": [f"{PILE_PREFIX}{n:04d}" for n in range(1, PILE_COUNT + 1)]}
    with app.app_context():
        remove_test_station(*ids)


@pytest.fixture(scope="session")
def piles(gw_station):
    """Hands out test pile codes, one per call, so tests never share a pile."""
    codes = list(gw_station["codes"])

    def take() -> str:
        return codes.pop(0)

    return take


@pytest.fixture(scope="session")
def gateway(app, redis, gw_station):
    """Node A: normal heartbeat interval, short login timeout and garbage limit."""
    node = GatewayProcess(app, "gw-test-a", GATEWAY_LOGIN_TIMEOUT=2, GATEWAY_MAX_GARBAGE=256,
                          GATEWAY_COMMAND_TIMEOUT=3).wait_ready(redis)
    yield node
    node.stop()


@pytest.fixture(scope="session")
def fast_gateway(app, redis, gw_station):
    """Node B: heartbeat every 0.3 s, offline after 3 missed (0.9 s)."""
    node = GatewayProcess(app, "gw-test-b", GATEWAY_HEARTBEAT_INTERVAL=0.3, GATEWAY_HEARTBEAT_MISSES=3,
                          GATEWAY_COMMAND_TIMEOUT=3).wait_ready(redis)
    yield node
    node.stop()
