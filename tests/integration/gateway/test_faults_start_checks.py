"""Start checks read the live state, and the pile hears the right protocol answers (issue 8 §6).

Over real TCP with a gateway process running the order hooks. Its batched database writes are
slowed down to a minute here, so the database lags the way it does for a second in production:
only the live state in Redis knows the pile logged in or that a gun is charging.

- a card swiped right after login (no 0x13 yet) is accepted, not refused as "offline";
- pile offline, gun busy (charging, or a session in progress), member frozen and balance low each
  get their own 0x32 failure reason;
- a staff start on a pile Redis knows is gone is refused before any order is made, even while the
  database still says online;
- a parallel start (0xA1) is answered with 0xA2 (refused or accepted), never 0x32;
- the command panel's "push price" is held while a gun charges and sent once the pile is idle;
- two templates whose old derived model ids collide (id 1 v3 / id 101 v3 -> 0103) get different
  ids, so a pile holding the other one's model is told its model differs (0x06 result 1).
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import delete, func, select

from app.extensions import db
from app.gateway.registry import owner_key
from app.gateway.ykc import (
    BillingModelRequest,
    BillingModelSetReply,
    BillingModelVerify,
    ParallelPileStartRequest,
    PileStartRequest,
    RealtimeData,
    codes,
    encode_reply,
)
from app.models import Card, ChargeOrder, Connector, Member, Pile, PricePeriod, PriceTemplate
from app.services import charging
from app.services.accounts import sync_roles_and_permissions
from app.services.errors import PileNotOnline
from app.services.ykc_pricing import billing_model_id, derived_model_id
from app.views.pile_admin import VIEW_NAME, register
from tests.conftest import ADMIN_PASSWORD, build_app
from tests.integration.gateway.conftest import GatewayProcess, fetch, wait_until
from tests.integration.gateway.ykc_client import PileClient

AUTH = codes.AuthFailure
_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def slow_db_gateway(app, redis, gw_station):
    """Order hooks on; the gateway writes the database only every 60 s (Redis every 0.05 s)."""
    node = GatewayProcess(app, "gw-start-checks", CHARGING_HOOKS="app.services.charging:OrderHooks",
                          GATEWAY_FLUSH_INTERVAL="60", GATEWAY_COMMAND_TIMEOUT="3").wait_ready(redis)
    yield node
    node.stop()


def operator_of(app, code):
    return fetch(app, select(Connector.operator_id).where(Connector.code == f"{code}01"))[0][0]


def good_card(app, operator_id):
    """Physical number of an active card whose active member has money."""
    with app.app_context():
        card = db.session.scalar(select(Card).join(Member, Card.member_id == Member.id).where(
            Card.operator_id == operator_id, Card.status == "active", Member.status == "active",
            Member.balance >= 10).order_by(Card.id))
        return card.physical_no


def own_card(app, operator_id, member_status="active"):
    """A new member without money (balance 0, no ledger lines) and an active card of theirs."""
    n = next(_numbers)
    with app.app_context():
        member = Member(operator_id=operator_id, member_no=f"T8S6{n:06d}", nickname=f"start-check {n}",
                        status=member_status, balance=Decimal("0.00"))
        physical = f"8E6F{n:012X}"
        card = Card(operator_id=operator_id, member=member, logical_no=f"86{n:014d}", physical_no=physical)
        db.session.add_all([member, card])
        db.session.commit()
        return physical


def swipe(pile, code, gun, physical):
    pile.send(PileStartRequest(pile_code=code, gun=gun, start_mode=1, account_or_card=bytes.fromhex(physical)))
    return pile.expect(0x32, gun=gun)[1]


def db_online(app, code):
    return fetch(app, select(Pile.online).where(Pile.code == code))[0][0]


def test_card_swiped_right_after_login_is_accepted(app, slow_db_gateway, piles):
    code = piles()
    physical = good_card(app, operator_of(app, code))
    with PileClient(slow_db_gateway.port, code) as pile:
        assert pile.login().result == 0
        answer = swipe(pile, code, "01", physical)                 # no 0x13 yet; the DB still says offline
        assert db_online(app, code) is False
    assert answer.auth_result == 1 and answer.failure_reason == 0, answer
    assert answer.transaction_serial.startswith(f"{code}01")
    orders = fetch(app, select(ChargeOrder.status).where(ChargeOrder.serial == answer.transaction_serial))
    assert orders == [("starting",)]


def test_each_refusal_has_its_own_reason(app, redis, slow_db_gateway, piles):
    code = piles()
    operator_id = operator_of(app, code)
    physical = good_card(app, operator_id)
    frozen, broke = own_card(app, operator_id, "frozen"), own_card(app, operator_id)
    with PileClient(slow_db_gateway.port, code) as pile:
        assert pile.login().result == 0
        pile.send(RealtimeData(transaction_serial="0" * 32, pile_code=code, gun="01", status=3, gun_plugged=1,
                               output_voltage=Decimal("400.0"), output_current=Decimal("50.0")))
        busy = swipe(pile, code, "01", physical)                   # swiped right after the 0x13 "charging"
        assert (busy.auth_result, busy.failure_reason) == (0, AUTH.PILE_UNSETTLED_RECORD), busy
        assert swipe(pile, code, "02", frozen).failure_reason == AUTH.ACCOUNT_FROZEN
        assert swipe(pile, code, "02", broke).failure_reason == AUTH.INSUFFICIENT_BALANCE
        started = swipe(pile, code, "02", physical)
        assert started.auth_result == 1, started
        again = swipe(pile, code, "02", physical)                  # gun 2 has a session in progress now
        assert (again.auth_result, again.failure_reason) == (0, AUTH.PILE_UNSETTLED_RECORD), again
        redis.delete(owner_key(code))                              # no gateway holds the pile any more
        offline = swipe(pile, code, "01", physical)
        assert (offline.auth_result, offline.failure_reason) == (0, AUTH.PILE_DISABLED), offline
    assert db_online(app, code) is False                           # all of it decided on the live state


def test_staff_start_on_a_pile_gone_from_redis_is_refused_before_any_order(app, redis, slow_db_gateway, piles):
    code = piles()
    with PileClient(slow_db_gateway.port, code) as pile:
        assert pile.login().result == 0
        pile.send(RealtimeData(transaction_serial="0" * 32, pile_code=code, gun="01", status=2, gun_plugged=1))
        wait_until(lambda: redis.hget(f"cpms:gw:gun:{code}01", "status") == b"occupied", message="live status")
    wait_until(lambda: redis.get(owner_key(code)) is None, message="pile released")
    with app.app_context():                                        # the batched "offline" is not written yet
        connector = db.session.scalar(select(Connector).where(Connector.code == f"{code}01"))
        connector.pile.online, connector.status = True, "occupied"
        db.session.commit()
        member = db.session.scalar(select(Member).where(Member.operator_id == connector.operator_id,
                                                        Member.status == "active", Member.balance >= 10))
        with pytest.raises(PileNotOnline, match="offline"):
            charging.start_charge(connector.id, origin="staff", member_id=member.id, user_id=1)
        made = db.session.scalar(select(func.count()).select_from(ChargeOrder).where(
            ChargeOrder.connector_id == connector.id))
        connector.pile.online, connector.status = False, "offline"
        db.session.commit()
    assert made == 0


def test_parallel_start_is_answered_with_0xA2(app, slow_db_gateway, piles):
    code = piles()
    physical = good_card(app, operator_of(app, code))
    with PileClient(slow_db_gateway.port, code) as pile:
        assert pile.login().result == 0
        pile.send(ParallelPileStartRequest(pile_code=code, gun="02", start_mode=1, parallel_role=1,
                                           account_or_card=bytes.fromhex("00000000DEADBEEF"),
                                           parallel_serial="260101120000"))
        _, refused = pile.expect(0xA2, gun="02", timeout=3)
        assert (refused.auth_result, refused.failure_reason) == (0, AUTH.ACCOUNT_NOT_FOUND)
        assert refused.parallel_serial == "260101120000"
        pile.send(ParallelPileStartRequest(pile_code=code, gun="01", start_mode=1, parallel_role=0,
                                           account_or_card=bytes.fromhex(physical), parallel_serial="260101120001"))
        _, accepted = pile.expect(0xA2, gun="01", timeout=3)
        assert accepted.auth_result == 1 and accepted.parallel_serial == "260101120001"
        assert accepted.transaction_serial.startswith(f"{code}01")
        assert not [e for e in pile.backlog if e.header.frame_type == 0x32]


@pytest.fixture(scope="module")
def web(app):
    """An app with the command panel registered (the shared test app may predate its registration)."""
    if VIEW_NAME in app.blueprints:
        return app
    web_app = build_app()
    with web_app.app_context():
        register(web_app.appbuilder)
        sync_roles_and_permissions()
    return web_app


def test_panel_price_push_waits_until_no_gun_charges(app, redis, web, slow_db_gateway, gw_station, piles):
    code = piles()
    pile_id = fetch(app, select(Pile.id).where(Pile.code == code))[0][0]
    admin = web.test_client()
    assert admin.post("/login/", data={"username": "admin", "password": ADMIN_PASSWORD}).status_code == 302
    admin.get("/lang/en")
    with PileClient(slow_db_gateway.port, code) as pile:
        assert pile.login().result == 0
        pile.send(RealtimeData(transaction_serial="0" * 32, pile_code=code, gun="02", status=3, gun_plugged=1))
        wait_until(lambda: redis.hget(f"cpms:gw:gun:{code}02", "status") == b"charging", message="gun 2 charging")
        with ThreadPoolExecutor(1) as pool:
            sent = pool.submit(admin.post, f"/pilecommand/{pile_id}/command", data={"action": "push_price"},
                               follow_redirects=True)
            with pytest.raises(AssertionError):
                pile.expect(0x58, timeout=1.0)                     # not while gun 2 charges
            page = sent.result(10).get_data(as_text=True)
        assert "the price will be sent to the pile once no gun is charging" in page
        pile.send(RealtimeData(transaction_serial="0" * 32, pile_code=code, gun="02", status=2, gun_plugged=1))
        header, model = pile.expect(0x58)
        pile.send_bytes(encode_reply(BillingModelSetReply(pile_code=code, result=1), header))
    with app.app_context():
        assert model.billing_model_id == billing_model_id(db.session.get(PriceTemplate, gw_station["template_id"]))


def test_templates_with_colliding_derived_ids_get_different_model_ids(app, slow_db_gateway, gw_station, piles):
    code = piles()
    with app.app_context():
        ours = db.session.get(PriceTemplate, gw_station["template_id"])
        free = db.session.scalar(select(func.max(PriceTemplate.id))) + 1000
        other_id = free - free % 100 + ours.id % 100 + 100        # same id modulo 100, same version
        other = PriceTemplate(id=other_id, operator_id=ours.operator_id, code=f"T8S6-{other_id}",
                              name="collides", version=ours.version)
        other.periods = [PricePeriod(start_minute=0, end_minute=1440, level="flat",
                                     electricity_price=Decimal("2.00000"), service_price=Decimal("1.00000"))]
        db.session.add(other)
        db.session.commit()
        assert derived_model_id(other) == derived_model_id(ours)   # what both were pushed as before
        other_model = billing_model_id(other)
    try:
        with PileClient(slow_db_gateway.port, code) as pile:
            assert pile.login().result == 0
            pile.send(BillingModelRequest(pile_code=code))
            _, model = pile.expect(0x0A)
            assert model.billing_model_id != other_model
            assert len(model.billing_model_id) == 4 and model.billing_model_id != "0000"
            pile.send(BillingModelVerify(pile_code=code, billing_model_id=other_model))   # holds the other's
            assert pile.expect(0x06)[1].result == 1
            pile.send(BillingModelVerify(pile_code=code, billing_model_id=model.billing_model_id))
            assert pile.expect(0x06)[1].result == 0
    finally:
        with app.app_context():
            db.session.execute(delete(PricePeriod).where(PricePeriod.template_id == other_id))
            db.session.execute(delete(PriceTemplate).where(PriceTemplate.id == other_id))
            db.session.commit()
