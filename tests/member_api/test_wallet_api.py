"""Wallet reading in the member app: GET /wallet (balance) and GET /wallet/entries (the ledger, newest
first, paged, by kind and local date range), for members of two operators (each sees only its own)."""
import random
import uuid
from datetime import datetime
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.models import ChargeOrder, Connector, Member, WalletEntry
from app.security.scope import platform_scope
from app.services import member_accounts, wallet
from tests.member_api.support import demo_member_ids, headers_for

WALLET = "/api/app/v1/wallet"
ENTRIES = "/api/app/v1/wallet/entries"

# (kind, amount, created_at UTC, remark) of member A, oldest first. Asia/Shanghai is UTC+8: the gift
# at 2026-11-02 16:30 UTC is on the local day 2026-11-03.
A_ENTRIES = [
    ("recharge", Decimal("100.0000"), datetime(2026, 11, 1, 2, 0), "微信充值"),
    ("consume", Decimal("-12.3456"), datetime(2026, 11, 2, 15, 30), None),
    ("gift", Decimal("5.5000"), datetime(2026, 11, 2, 16, 30), "注册赠送"),
    ("recharge", Decimal("20.0000"), datetime(2026, 11, 5, 0, 0), None),
]
# balances after each, by hand: 100.0000, 87.6544, 93.1544, 113.1544


def _phone():
    return f"1{random.randrange(3, 10)}{random.randrange(10 ** 9):09d}"


@pytest.fixture(scope="module")
def ledger(app):
    """Fresh members of operators A and B with ledgers; A's consume entry belongs to a charging order."""
    a_demo, b_demo = demo_member_ids(app)
    with app.app_context():
        op_a = db.session.get(Member, a_demo).operator_id
        op_b = db.session.get(Member, b_demo).operator_id
        a, _ = member_accounts.find_or_register(op_a, phone=_phone())
        b, _ = member_accounts.find_or_register(op_b, phone=_phone())
        a_id, b_id = a.id, b.id
        with platform_scope("test-wallet-api"):
            conn = db.session.scalar(select(Connector).where(Connector.operator_id == op_a).order_by(Connector.id))
            order = ChargeOrder(order_no=f"7{uuid.uuid4().int % 10 ** 12:012d}", operator_id=op_a,
                                station_id=conn.station_id, pile_id=conn.pile_id, connector_id=conn.id,
                                member_id=a_id, status="settled", pay_status="paid", start_method="app",
                                started_at=datetime(2026, 11, 2, 15, 0), ended_at=datetime(2026, 11, 2, 15, 25))
            db.session.add(order)
            db.session.flush()
            ids = []
            for kind, amount, at, remark in A_ENTRIES:
                refs = {"order_id": order.id} if kind == "consume" else {}
                entry = wallet.post_entry(a_id, amount, kind, idempotency_key=f"t-api:{uuid.uuid4().hex}",
                                          remark=remark, **refs)
                ids.append(entry.id)
                db.session.execute(update(WalletEntry).where(WalletEntry.id == entry.id).values(created_at=at))
            b_entry = wallet.post_entry(b_id, Decimal("50"), "recharge", idempotency_key=f"t-api:{uuid.uuid4().hex}")
            db.session.execute(update(WalletEntry).where(WalletEntry.id == b_entry.id)
                               .values(created_at=datetime(2026, 11, 3, 1, 0)))
            db.session.commit()
        return {"a": a_id, "b": b_id, "a_ids": ids, "b_ids": [b_entry.id], "order_no": order.order_no}


def test_wallet_balance_of_each_member(app, client, ledger):
    rv = client.get(WALLET, headers=headers_for(app, ledger["a"]))
    assert rv.status_code == 200 and rv.get_json() == {"balance": "113.1544"}
    assert client.get(WALLET, headers=headers_for(app, ledger["b"])).get_json() == {"balance": "50.0000"}


def test_entries_newest_first_with_every_field(app, client, ledger):
    rv = client.get(ENTRIES, headers=headers_for(app, ledger["a"]))
    assert rv.status_code == 200
    body = rv.get_json()
    assert body["meta"] == {"page": 1, "page_size": 20, "total": 4}
    items = body["items"]
    assert [i["id"] for i in items] == ledger["a_ids"][::-1]
    assert items[0] == {"id": ledger["a_ids"][3], "kind": "recharge", "kind_label": "充值", "amount": "20.0000",
                        "balance_after": "113.1544", "remark": None, "order_no": None,
                        "created_at": "2026-11-05T00:00:00Z"}
    assert items[1] == {"id": ledger["a_ids"][2], "kind": "gift", "kind_label": "赠送", "amount": "5.5000",
                        "balance_after": "93.1544", "remark": "注册赠送", "order_no": None,
                        "created_at": "2026-11-02T16:30:00Z"}
    assert items[2] == {"id": ledger["a_ids"][1], "kind": "consume", "kind_label": "充电消费", "amount": "-12.3456",
                        "balance_after": "87.6544", "remark": None, "order_no": ledger["order_no"],
                        "created_at": "2026-11-02T15:30:00Z"}
    assert items[3]["balance_after"] == "100.0000" and items[3]["remark"] == "微信充值"


def test_entries_kind_label_in_english_on_request(app, client, ledger):
    headers = headers_for(app, ledger["a"], lang="en")
    items = client.get(f"{ENTRIES}?kind=consume", headers=headers).get_json()["items"]
    assert [i["kind_label"] for i in items] == ["Charging payment"]


def test_entries_paged(app, client, ledger):
    headers = headers_for(app, ledger["a"])
    first = client.get(f"{ENTRIES}?page=1&page_size=3", headers=headers).get_json()
    second = client.get(f"{ENTRIES}?page=2&page_size=3", headers=headers).get_json()
    assert [i["id"] for i in first["items"]] == ledger["a_ids"][:0:-1]
    assert [i["id"] for i in second["items"]] == ledger["a_ids"][:1]
    assert second["meta"] == {"page": 2, "page_size": 3, "total": 4}
    third = client.get(f"{ENTRIES}?page=3&page_size=3", headers=headers).get_json()
    assert third["items"] == [] and third["meta"]["total"] == 4


def test_entries_by_kind(app, client, ledger):
    body = client.get(f"{ENTRIES}?kind=recharge", headers=headers_for(app, ledger["a"])).get_json()
    assert [i["id"] for i in body["items"]] == [ledger["a_ids"][3], ledger["a_ids"][0]]
    assert body["meta"]["total"] == 2
    assert client.get(f"{ENTRIES}?kind=refund", headers=headers_for(app, ledger["a"])).get_json()["items"] == []


def test_entries_by_local_date_range(app, client, ledger):
    headers = headers_for(app, ledger["a"])
    ids = ledger["a_ids"]
    day3 = client.get(f"{ENTRIES}?date_from=2026-11-03&date_to=2026-11-03", headers=headers).get_json()
    assert [i["id"] for i in day3["items"]] == [ids[2]]        # 16:30 UTC on the 2nd is the 3rd in Beijing
    upto2 = client.get(f"{ENTRIES}?date_to=2026-11-02", headers=headers).get_json()
    assert [i["id"] for i in upto2["items"]] == [ids[1], ids[0]]
    from3 = client.get(f"{ENTRIES}?date_from=2026-11-03&kind=recharge", headers=headers).get_json()
    assert [i["id"] for i in from3["items"]] == [ids[3]]


@pytest.mark.parametrize("query,field", [
    ("kind=bogus", "kind"), ("date_from=2026-11-05&date_to=2026-11-01", "date_to"),
    ("date_from=yesterday", "date_from"),
    ("page=0", "page"), ("page_size=101", "page_size"), ("page=x", "page"), ("other=1", "other"),
])
def test_entries_invalid_query(app, client, ledger, query, field):
    rv = client.get(f"{ENTRIES}?{query}", headers=headers_for(app, ledger["a"]))
    assert rv.status_code == 400
    body = rv.get_json()
    assert body["code"] == "invalid_request" and field in body["fields"]


def test_each_member_sees_only_its_own_ledger(app, client, ledger):
    body = client.get(ENTRIES, headers=headers_for(app, ledger["b"])).get_json()
    assert [i["id"] for i in body["items"]] == ledger["b_ids"] and body["meta"]["total"] == 1
    assert body["items"][0]["balance_after"] == "50.0000"
    # nothing of A's, whatever the filters
    for query in ("kind=consume", "date_from=2026-11-01&date_to=2026-11-30", "page_size=100"):
        items = client.get(f"{ENTRIES}?{query}", headers=headers_for(app, ledger["b"])).get_json()["items"]
        assert not {i["id"] for i in items} & set(ledger["a_ids"])


def test_wallet_needs_a_valid_token(app, client, ledger):
    for url in (WALLET, ENTRIES):
        rv = client.get(url)
        assert rv.status_code == 401 and rv.get_json()["code"] == "token_missing"
        rv = client.get(url, headers={"Authorization": "Bearer x"})
        assert rv.status_code == 401 and rv.get_json()["code"] == "token_invalid"


def test_wallet_of_a_disabled_member(app, client, ledger):
    headers = headers_for(app, ledger["b"])
    with app.app_context():
        db.session.get(Member, ledger["b"]).status = "frozen"
        db.session.commit()
    try:
        for url in (WALLET, ENTRIES):
            rv = client.get(url, headers=headers)
            assert rv.status_code == 403 and rv.get_json()["code"] == "member_disabled"
    finally:
        with app.app_context():
            db.session.get(Member, ledger["b"]).status = "active"
            db.session.commit()


def test_openapi_documents_the_wallet(app, client):
    paths = client.get("/api/app/v1/_openapi").get_json()["paths"]
    entries = paths["/api/app/v1/wallet/entries"]["get"]
    names = {p["name"] for p in entries["parameters"]}
    assert {"page", "page_size", "kind", "date_from", "date_to"} <= names
    assert entries["security"] == [{"bearerAuth": []}]
    assert "get" in paths["/api/app/v1/wallet"]


@pytest.mark.parametrize("query", ["date_from=0001-01-01", "date_to=9999-12-31", "date_from=1999-12-31"])
def test_entries_dates_out_of_range(app, client, ledger, query):
    rv = client.get(f"{ENTRIES}?{query}", headers=headers_for(app, ledger["a"]))
    assert rv.status_code == 400 and rv.get_json()["code"] == "invalid_request"
