"""组织机构 with their own account (issue 11 E).

The organization account is a ledger like the member wallet: OrganizationEntry rows are the truth,
Organization.balance their cache; staff record bank-transfer top-ups and adjustments (reason, source,
who, when; once per opened form); settlement debits the organization account when the order's card
says so (the member wallet untouched), with arrears as for wallets; the organization's agreed
discount (折) comes out of ``organizations.discount_rates``; ``flask wallet check`` checks both ledgers.

Worked example (the settlement tests' order, demo operator MA1NJ0001, station template TPL101, Beijing
2024-03-11 09:30-10:30, 20 kWh linear): flat 10 kWh × (0.62 + 0.60) + peak 10 kWh × (1.05 + 0.70)
= electricity 6.20 + 10.50 = 16.70, service 6.00 + 7.00 = 13.00, total 29.70 yuan.
"""
import re
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.models import (
    Card,
    ChargeOrder,
    Connector,
    Member,
    MeterSample,
    OrderEvent,
    Organization,
    OrganizationEntry,
    PileBill,
    Station,
    WalletEntry,
)
from app.models.operator import Operator
from app.models.station import PriceTemplate
from app.security.scope import platform_scope
from app.services import organizations
from tests.conftest import csrf_token

D = Decimal
STAFF_PASSWORD = "staff-pass-1"


# --- factory ---------------------------------------------------------------------------------------------


def bj(text):
    return datetime.strptime(text, "%Y-%m-%d %H:%M") - timedelta(hours=8)


def samples():
    start = bj("2024-03-11 09:30")
    return [(start + timedelta(minutes=m), D(m) / 3) for m in range(0, 61, 15)]   # 20 kW: 0 .. 20 kWh


def operator_id(code="MA1NJ0001"):
    return db.session.scalar(select(Operator.id).where(Operator.code == code))


def new_org(code="MA1NJ0001", balance="0", pay_mode="member", electricity_rate=None, service_rate=None,
            enabled=True):
    org = Organization(operator_id=operator_id(code), name=f"车队{uuid.uuid4().hex[:6]}", pay_mode=pay_mode,
                       electricity_rate=electricity_rate, service_rate=service_rate, enabled=enabled)
    db.session.add(org)
    db.session.flush()
    if D(balance):
        organizations.post_entry(org.id, D(balance), "topup", idempotency_key=f"test:orgtopup:{org.id}",
                                 remark="test transfer")
    db.session.commit()
    return org.id


def new_member(balance="50", org_id=None, code="MA1NJ0001"):
    from app.services.wallet import post_entry

    m = Member(operator_id=operator_id(code), member_no=f"O{uuid.uuid4().hex[:12]}", nickname="车队司机",
               status="active", organization_id=org_id)
    db.session.add(m)
    db.session.flush()
    if D(balance):
        post_entry(m.id, D(balance), "recharge", idempotency_key=f"test:recharge:{m.member_no}")
    db.session.commit()
    return m.id


def new_card(member_id, org_id, pay_mode=None, code="MA1NJ0001"):
    n = uuid.uuid4().int
    card = Card(operator_id=operator_id(code), member_id=member_id, organization_id=org_id, pay_mode=pay_mode,
                logical_no=f"{n % 10**16:016d}", physical_no=f"{n % 16**16:016X}", card_type="online")
    db.session.add(card)
    db.session.commit()
    return card.id


def tou_connector():
    return db.session.scalars(
        select(Connector).join(Station, Connector.station_id == Station.id)
        .join(PriceTemplate, Station.price_template_id == PriceTemplate.id)
        .join(Operator, Station.operator_id == Operator.id)
        .where(Operator.code == "MA1NJ0001", PriceTemplate.code == "TPL101",
               Station.occupancy_enabled.is_(False)).order_by(Connector.id)).first()


def finished_order(member_id, card_id=None, org_id=None):
    """A priced (finished) 29.70 yuan order of the member, started with the card."""
    from app.services import order_numbers, pricing

    conn = tou_connector()
    rows = samples()
    start, end = rows[0][0], rows[-1][0]
    order = ChargeOrder(
        order_no=order_numbers.new_order_no(start), serial=order_numbers.new_serial(conn.pile.code, conn.gun_no, start),
        operator_id=conn.operator_id, station_id=conn.station_id, pile_id=conn.pile_id, connector_id=conn.id,
        member_id=member_id, card_id=card_id, organization_id=org_id, start_method="card" if card_id else "app",
        status="stopping", started_at=start, ended_at=end, price_template_id=conn.station.price_template_id,
        tariff_snapshot=pricing.snapshot(conn.station.price_template), pile_amount=D("29.7000"),
        pile_energy=D("20.0000"), pay_type="wallet")
    db.session.add(order)
    db.session.flush()
    db.session.add_all(MeterSample(order_id=order.id, at=at, energy=e.quantize(D("0.0001")), power=D("20"))
                       for at, e in rows)
    db.session.add(PileBill(operator_id=order.operator_id, serial=order.serial, pile_code=conn.pile.code,
                            gun_no=conn.gun_no, raw_hex="00", order_id=order.id, status="matched",
                            started_at=start, ended_at=end, total_energy=order.pile_energy,
                            total_amount=order.pile_amount))
    pricing.reprice_order(order)
    db.session.commit()
    assert order.status == "finished" and order.total_amount == D("29.7000")
    return order.id


def fresh(model, row_id):
    db.session.expire_all()
    return db.session.get(model, row_id)


def org_entries(org_id):
    db.session.expire_all()
    return db.session.scalars(select(OrganizationEntry).where(OrganizationEntry.organization_id == org_id)
                              .order_by(OrganizationEntry.id)).all()


def wallet_entries(order_id):
    return db.session.scalars(select(WalletEntry).where(WalletEntry.idempotency_key == f"settle:{order_id}")).all()


# --- settlement pays from the organization account -----------------------------------------------------------


def test_a_card_order_debits_the_organization_account_and_not_the_member_wallet(app):
    from app.services.settlement import settle_order

    with app.app_context(), platform_scope("test"):
        org_id = new_org(balance="100", pay_mode="organization")
        mid = new_member("50", org_id)
        card_id = new_card(mid, org_id)                      # no own mode: the organization's (its account)
        oid = finished_order(mid, card_id, org_id)
        result = settle_order(oid)
        assert (result.payable_amount, result.pay_status, result.pay_type) == (D("29.7000"), "paid", "organization")
        assert result.wallet_entry_id is None
        order = fresh(ChargeOrder, oid)
        assert (order.status, order.paid_amount) == ("settled", D("29.7000"))
        topup, consume = org_entries(org_id)
        assert (topup.kind, topup.amount, topup.balance_after) == ("topup", D("100.0000"), D("100.0000"))
        assert (consume.kind, consume.amount, consume.balance_after) == ("consume", D("-29.7000"), D("70.3000"))
        assert (consume.order_id, consume.card_id, consume.member_id) == (oid, card_id, mid)
        assert consume.idempotency_key == f"settle:{oid}" and consume.source == order.order_no
        assert fresh(Organization, org_id).balance == D("70.3000")
        assert fresh(Member, mid).balance == D("50.0000") and wallet_entries(oid) == []
        event = db.session.scalar(select(OrderEvent).where(OrderEvent.order_id == oid, OrderEvent.event == "settled"))
        assert event.detail["organization_entry_id"] == consume.id and "arrears" not in event.detail

        again = settle_order(oid)                            # exactly once
        assert again.already and len(org_entries(org_id)) == 2
        assert fresh(Organization, org_id).balance == D("70.3000")
        assert organizations.ledger_balance(org_id) == D("70.3000")


def test_the_organization_account_goes_into_arrears_like_a_wallet(app):
    from app.services.settlement import settle_order

    with app.app_context(), platform_scope("test"):
        org_id = new_org(balance="10", pay_mode="member")
        mid = new_member("50", org_id)
        card_id = new_card(mid, org_id, pay_mode="organization")    # the card's own mode wins
        oid = finished_order(mid, card_id, org_id)
        settle_order(oid)
        order = fresh(ChargeOrder, oid)
        assert (order.pay_status, order.paid_amount, order.pay_type) == ("paid", D("29.7000"), "organization")
        assert fresh(Organization, org_id).balance == D("-19.7000")      # 10.00 - 29.70
        event = db.session.scalar(select(OrderEvent).where(OrderEvent.order_id == oid, OrderEvent.event == "settled"))
        assert event.detail["arrears"] == "19.7000"
        assert fresh(Member, mid).balance == D("50.0000")
        # a negative organization account limits the next start of its cards, not the member's wallet
        card = fresh(Card, card_id)
        assert organizations.available_balance(card.member, card) == D("-19.7000")


@pytest.mark.parametrize("org_mode,card_mode,payer", [
    ("member", None, "member"),
    ("organization", "member", "member"),
    ("member", "organization", "organization"),
    ("organization", None, "organization"),
])
def test_who_pays_a_card_order(app, org_mode, card_mode, payer):
    from app.services.settlement import settle_order

    with app.app_context(), platform_scope("test"):
        org_id = new_org(balance="100", pay_mode=org_mode)
        mid = new_member("50", org_id)
        card_id = new_card(mid, org_id, pay_mode=card_mode)
        oid = finished_order(mid, card_id, org_id)
        settle_order(oid)
        if payer == "member":
            assert fresh(Member, mid).balance == D("20.3000")           # 50.00 - 29.70
            assert fresh(Organization, org_id).balance == D("100.0000")
            [entry] = wallet_entries(oid)
            assert entry.amount == D("-29.7000")
        else:
            assert fresh(Member, mid).balance == D("50.0000")
            assert fresh(Organization, org_id).balance == D("70.3000")
            assert wallet_entries(oid) == []


def test_an_app_order_of_an_organization_member_pays_from_the_wallet(app):
    from app.services.settlement import settle_order

    with app.app_context(), platform_scope("test"):
        org_id = new_org(balance="100", pay_mode="organization")
        mid = new_member("50", org_id)
        oid = finished_order(mid, None, org_id)              # no card: the member's own wallet
        settle_order(oid)
        assert fresh(Member, mid).balance == D("20.3000")
        assert fresh(Organization, org_id).balance == D("100.0000")


def test_a_card_paid_by_its_organization_starts_against_the_organization_balance(app):
    from app.services.charging import spend_limit

    with app.app_context(), platform_scope("test"):
        org_id = new_org(balance="80", pay_mode="organization")
        mid = new_member("0", org_id)
        card_id = new_card(mid, org_id)
        card, member = fresh(Card, card_id), fresh(Member, mid)
        assert organizations.available_balance(member, card) == D("80.0000")
        assert organizations.available_balance(member, None) == D("0.0000")
        order = ChargeOrder(card_id=card_id, member_id=mid)
        order.card = card
        assert spend_limit(order, member) == D("80.0000")


# --- the organization discount -------------------------------------------------------------------------------


def test_discount_rates_of_the_orders_organization(app):
    with app.app_context(), platform_scope("test"):
        org_id = new_org(electricity_rate=D("0.9000"), service_rate=D("0.8000"))
        mid = new_member("0", org_id)
        other_org = new_org()
        card_id = new_card(None, org_id)
        # through the order's organization, its card's, its member's
        assert organizations.discount_rates(ChargeOrder(organization_id=org_id)) == (D("0.9000"), D("0.8000"))
        assert organizations.discount_rates(ChargeOrder(card_id=card_id)) == (D("0.9000"), D("0.8000"))
        assert organizations.discount_rates(ChargeOrder(member_id=mid)) == (D("0.9000"), D("0.8000"))
        assert organizations.discount_rates(ChargeOrder(organization_id=other_org)) is None   # none agreed
        assert organizations.discount_rates(ChargeOrder()) is None
        half = new_org(service_rate=D("0.8500"))                          # only service: electricity 1
        assert organizations.discount_rates(ChargeOrder(organization_id=half)) == (D("1.0000"), D("0.8500"))
        ten = new_org(electricity_rate=D("1"), service_rate=D("1"))       # 10 折 = no discount
        assert organizations.discount_rates(ChargeOrder(organization_id=ten)) is None
        off = new_org(electricity_rate=D("0.9000"), service_rate=D("0.8000"), enabled=False)
        assert organizations.discount_rates(ChargeOrder(organization_id=off)) is None


def test_the_organization_discount_applies_at_settlement(app):
    """9 折 electricity, 8 折 service on the worked example: electricity 16.70 × 0.1 = 1.67 off,
    service 13.00 × 0.2 = 2.60 off; payable 29.70 - 4.27 = 25.43, from the organization account."""
    from app.services.settlement import settle_order

    with app.app_context(), platform_scope("test"):
        org_id = new_org(balance="100", pay_mode="organization", electricity_rate=D("0.9000"),
                         service_rate=D("0.8000"))
        mid = new_member("50", org_id)
        card_id = new_card(mid, org_id)
        oid = finished_order(mid, card_id, org_id)
        result = settle_order(oid)
        order = fresh(ChargeOrder, oid)
        assert (order.discount_electricity, order.discount_service) == (D("1.6700"), D("2.6000"))
        assert result.discount_total == D("4.2700") and result.payable_amount == D("25.4300")
        assert fresh(Organization, org_id).balance == D("74.5700")        # 100 - 25.43
        assert fresh(Member, mid).balance == D("50.0000")


# --- the ledger service ---------------------------------------------------------------------------------------


def test_top_up_and_adjust_book_once_with_reason_source_who_and_when(app):
    with app.app_context(), platform_scope("test"):
        org_id = new_org()
        user_id = app.appbuilder.sm.find_user(username="staff_a").id
        key = uuid.uuid4().hex
        entry = organizations.top_up(org_id, D("500.00"), "对公转账", user_id, key, source="BANK-20261128-001")
        again = organizations.top_up(org_id, D("500.00"), "对公转账", user_id, key, source="BANK-20261128-001")
        assert again.id == entry.id
        assert (entry.kind, entry.amount, entry.balance_after, entry.source, entry.remark, entry.created_by_id) == (
            "topup", D("500.0000"), D("500.0000"), "BANK-20261128-001", "对公转账", user_id)
        assert entry.created_at is not None and entry.idempotency_key == f"orgtopup:{key}"
        with pytest.raises(organizations.OrganizationError):
            organizations.top_up(org_id, D("-1"), "负数充值", user_id, uuid.uuid4().hex)
        with pytest.raises(organizations.OrganizationError):
            organizations.adjust(org_id, D("-500.01"), "扣减超过余额", user_id, uuid.uuid4().hex)
        with pytest.raises(organizations.OrganizationError):
            organizations.adjust(org_id, D("5"), "  ", user_id, uuid.uuid4().hex)
        organizations.adjust(org_id, D("-120.50"), "退还部分预付款", user_id, uuid.uuid4().hex)
        assert fresh(Organization, org_id).balance == D("379.5000")
        assert [(e.kind, e.amount) for e in org_entries(org_id)] == [("topup", D("500.0000")),
                                                                     ("adjust", D("-120.5000"))]


def test_wallet_check_finds_an_organization_balance_that_is_not_its_ledger(app):
    runner = app.test_cli_runner()
    with app.app_context(), platform_scope("test"):
        org_id = new_org(balance="30")
        name = fresh(Organization, org_id).name
    result = runner.invoke(args=["wallet", "check"])
    assert result.exit_code == 0, result.output
    with app.app_context(), platform_scope("test"):
        db.session.execute(update(Organization).where(Organization.id == org_id)
                           .values(balance=Organization.balance + 1))
        db.session.commit()
    try:
        result = runner.invoke(args=["wallet", "check"])
        assert result.exit_code == 1
        assert f"organization {name} (id {org_id})" in result.output and "difference 1.0000" in result.output
    finally:
        with app.app_context(), platform_scope("test"):
            db.session.execute(update(Organization).where(Organization.id == org_id)
                               .values(balance=Organization.balance - 1))
            db.session.commit()
    with app.app_context(), platform_scope("test"):
        assert organizations.balance_differences() == []


# --- screens -------------------------------------------------------------------------------------------------


def account_form(client, org_id):
    rv = client.get(f"/organizationview/account/{org_id}")
    assert rv.status_code == 200, rv.status_code
    html = rv.get_data(as_text=True)
    key = re.search(r'name="request_key"[^>]*value="([0-9a-f]+)"', html) or \
        re.search(r'value="([0-9a-f]{32})"[^>]*name="request_key"', html)
    return csrf_token(html), key.group(1)


def test_operator_admin_tops_up_once_and_the_ledger_shows_it(app, login):
    with app.app_context(), platform_scope("test"):
        org_id = new_org()
    staff = login("staff_a", STAFF_PASSWORD, lang="zh")
    token, key = account_form(staff, org_id)
    form = {"csrf_token": token, "request_key": key, "kind": "topup", "amount": "1000.00",
            "source": "BANK-7788", "reason": "对公转账充值"}
    rv = staff.post(f"/organizationview/account/{org_id}", data=form, follow_redirects=True)
    assert rv.status_code == 200
    staff.post(f"/organizationview/account/{org_id}", data=form)      # the same form sent again
    with app.app_context(), platform_scope("test"):
        assert fresh(Organization, org_id).balance == D("1000.0000")
        [entry] = org_entries(org_id)
        assert (entry.kind, entry.source, entry.remark) == ("topup", "BANK-7788", "对公转账充值")
        assert entry.created_by.username == "staff_a"
    html = staff.get(f"/organizationentryview/list/?_flt_0_organization={org_id}").get_data(as_text=True)
    assert "对公转账充值" in html and "BANK-7788" in html and "staff_a" in html and "对公转账充值" in html
    # a deduction beyond the balance is refused and books nothing
    token, key = account_form(staff, org_id)
    rv = staff.post(f"/organizationview/account/{org_id}", data={
        "csrf_token": token, "request_key": key, "kind": "adjust", "amount": "-1000.01", "reason": "测试扣减"})
    assert "余额不足，无法扣减。" in rv.get_data(as_text=True)
    with app.app_context(), platform_scope("test"):
        assert fresh(Organization, org_id).balance == D("1000.0000")


def test_the_show_page_has_members_cards_balance_and_discount(app, login):
    with app.app_context(), platform_scope("test"):
        org_id = new_org(balance="66.6", electricity_rate=D("0.9000"), service_rate=D("0.8500"),
                         pay_mode="organization")
        mid = new_member("0", org_id)
        member_no = fresh(Member, mid).member_no
        card_id = new_card(mid, org_id)
        logical = fresh(Card, card_id).logical_no
    staff = login("staff_a", STAFF_PASSWORD, lang="zh")
    html = staff.get(f"/organizationview/show/{org_id}").get_data(as_text=True)
    assert member_no in html and logical in html                 # its members and cards
    assert "66.6000" in html and "组织余额明细" in html and "充值/调整余额" in html
    text = re.sub(r"<[^>]+>", "|", html)
    text = re.sub(r"[|\s]+", "|", text)
    assert "|电费折扣(折)|9|服务费折扣(折)|8.5|电卡扣款账户|组织账户|" in text


def test_staff_enter_the_discount_in_zhe_and_the_pay_mode(app, login):
    with app.app_context(), platform_scope("test"):
        org_id = new_org()
        name = fresh(Organization, org_id).name
    staff = login("staff_a", STAFF_PASSWORD)
    html = staff.get(f"/organizationview/edit/{org_id}").get_data(as_text=True)
    form = {"csrf_token": csrf_token(html), "name": name, "electricity_rate": "9", "service_rate": "8.5",
            "pay_mode": "organization", "enabled": "y"}
    with app.app_context(), platform_scope("test"):
        form["operator"] = str(operator_id())
    rv = staff.post(f"/organizationview/edit/{org_id}", data=form)
    assert rv.status_code == 302, rv.get_data(as_text=True)[:3000]
    with app.app_context(), platform_scope("test"):
        org = fresh(Organization, org_id)
        assert (org.electricity_rate, org.service_rate, org.pay_mode) == (D("0.9000"), D("0.8500"), "organization")
    form["electricity_rate"] = "11"
    rv = staff.post(f"/organizationview/edit/{org_id}", data=form)
    assert rv.status_code == 200 and "at most 10" in rv.get_data(as_text=True)


def test_a_card_paid_by_its_organization_needs_one(app):
    from app.services.masterdata import MasterDataError, prepare_card

    with app.app_context(), platform_scope("test"):
        n = uuid.uuid4().int
        card = Card(operator_id=operator_id(), logical_no=f"{n % 10**16:016d}", physical_no=f"{n % 16**16:016X}",
                    pay_mode="organization")
        with pytest.raises(MasterDataError) as exc:
            prepare_card(db.session, card)
        assert "pay_mode" in exc.value.errors
        card.pay_mode = ""
        prepare_card(db.session, card)
        assert card.pay_mode is None
        db.session.rollback()


def test_only_operator_admins_of_the_operator_top_up(app, login):
    with app.app_context(), platform_scope("test"):
        org_id = new_org(balance="5")
        other_org = new_org(code="MA1NJ0002", balance="7")
    viewer = login("viewer_a", STAFF_PASSWORD)
    assert viewer.get(f"/organizationview/account/{org_id}").status_code in (302, 403)
    assert viewer.get(f"/organizationentryview/list/?_flt_0_organization={org_id}").status_code == 200
    other = login("staff_b", STAFF_PASSWORD)
    assert other.get(f"/organizationview/account/{org_id}").status_code == 404
    assert other.get(f"/organizationview/show/{org_id}").status_code == 404
    html = other.get("/organizationentryview/list/").get_data(as_text=True)
    with app.app_context(), platform_scope("test"):
        a_names = db.session.scalars(select(Organization.name).where(Organization.operator_id == operator_id())).all()
        b_name = fresh(Organization, other_org).name
    assert b_name in html and not any(name in html for name in a_names)
    assert other.post(f"/organizationentryview/delete/{org_id}").status_code in (404, 405)


def test_the_card_api_sets_who_pays(app):
    from tests.conftest import ADMIN_PASSWORD, api_token

    headers = api_token(app, "admin", ADMIN_PASSWORD)
    c = app.test_client()
    with app.app_context(), platform_scope("test"):
        op, org_id = operator_id(), new_org(pay_mode="member")
    n = uuid.uuid4().int
    card = {"logical_no": f"{n % 10**16:016d}", "physical_no": f"{n % 16**16:016X}", "operator": op,
            "pay_mode": "organization"}
    rv = c.post("/api/v1/card/", json=card, headers=headers)
    assert rv.status_code == 422 and "pay_mode" in rv.get_json()["message"], rv.get_json()
    rv = c.post("/api/v1/card/", json=dict(card, organization=org_id), headers=headers)
    assert rv.status_code == 201, rv.get_json()
    card_id = rv.get_json()["id"]
    assert c.get(f"/api/v1/card/{card_id}", headers=headers).get_json()["result"]["pay_mode"] == "organization"
    rv = c.put(f"/api/v1/card/{card_id}", json={"pay_mode": None}, headers=headers)
    assert rv.status_code == 200, rv.get_json()
    with app.app_context(), platform_scope("test"):
        card_row = fresh(Card, card_id)
        assert card_row.pay_mode is None and organizations.card_pay_mode(card_row) == "member"


def test_concurrent_settlements_of_one_organizations_cards_each_book_once(app):
    """Four orders of four cards of one organization settled at once: the account row lock serialises
    them; 200.00 - 4 × 29.70 = 81.20, every balance_after distinct, the cache equals the ledger."""
    import threading

    from app.services.settlement import settle_order

    with app.app_context(), platform_scope("test"):
        org_id = new_org(balance="200", pay_mode="organization")
        order_ids = []
        for _ in range(4):
            mid = new_member("0", org_id)
            order_ids.append(finished_order(mid, new_card(mid, org_id), org_id))
    barrier = threading.Barrier(len(order_ids))
    errors = []

    def run(order_id):
        with app.app_context(), platform_scope("test"):
            try:
                barrier.wait(timeout=30)
                settle_order(order_id)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(oid,)) for oid in order_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    with app.app_context(), platform_scope("test"):
        entries = org_entries(org_id)
        consumes = [e for e in entries if e.kind == "consume"]
        assert sorted(e.order_id for e in consumes) == sorted(order_ids)
        assert sorted(e.balance_after for e in consumes) == [D("81.2000"), D("110.9000"), D("140.6000"),
                                                             D("170.3000")]
        assert fresh(Organization, org_id).balance == D("81.2000") == organizations.ledger_balance(org_id)
